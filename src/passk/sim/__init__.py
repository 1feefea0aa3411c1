"""The mechanism lab: exact models of what an advantage design does to exploration.

A policy is a softmax over S strategies per problem (logits = shared ``theta`` + per-problem
``phi``); a task population says which strategy solves which problem. Any registered
estimator that is exchangeable for 0/1 rewards is run through its *exact* expected update
(a sum over the Binomial number of correct draws); batch-level and stochastic estimators
run on sampled groups. Pass@k, pass^k, shares and entropy are exact at every step.

>>> import torch
>>> from passk.sim import expected_logit_update, two_mode
>>> pop = two_mode(frac_common=0.75, problems=4)
>>> logits = torch.tensor([2.0, -1.0, 0.0]).expand(4, 3)
>>> expected_logit_update(logits, pop.solves, "passk_analytic", n=16, k=4).shape
torch.Size([4, 3])
"""

from passk.sim.dynamics import (
    Arm,
    EntropyControl,
    Optimizer,
    Phase,
    PolicySpec,
    population_metrics,
    run_arm,
)
from passk.sim.population import Population, from_table, random_population, two_mode
from passk.sim.updates import (
    advantage_table,
    binomial_pmf,
    expected_logit_update,
    policy_probabilities,
    problem_weight,
    sampled_logit_update,
    strategy_entropy,
    strategy_entropy_gradient,
    success_probability,
    update_from_table,
)

__all__ = [
    "Arm",
    "EntropyControl",
    "Optimizer",
    "Phase",
    "PolicySpec",
    "Population",
    "advantage_table",
    "binomial_pmf",
    "expected_logit_update",
    "from_table",
    "policy_probabilities",
    "population_metrics",
    "problem_weight",
    "random_population",
    "run_arm",
    "sampled_logit_update",
    "strategy_entropy",
    "strategy_entropy_gradient",
    "success_probability",
    "two_mode",
    "update_from_table",
]
