"""``docs/methods.md``: every estimator and policy loss, generated from the registries.

    python -m passk.methods_table            # print the page
    python -m passk.methods_table --write    # rewrite docs/methods.md

The rows (names, parameters and their defaults, summaries, which entry points support each
method) come from the registries and the integrations, so the page cannot drift from the
code: ``tests/test_methods_table.py`` fails when docs/methods.md differs from what this
module renders, and when a registered method has no entry in :data:`OBJECTIVES` below.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from pathlib import Path
from typing import Any

# name -> (objective, source); the formula and summary come from the code's docstrings
OBJECTIVES: dict[str, tuple[str, str]] = {
    # estimators
    "pass1": ("pass@1, std-normalised (GRPO)", "arXiv 2402.03300"),
    "passk_full": ("pass@k of disjoint k-groups", "arXiv 2508.10751 §2.2"),
    "passk_bootstrap": ("pass@k of random k-subsets", "arXiv 2508.10751 §2.3"),
    "passk_analytic": ("pass@k, std-normalised group reward", "arXiv 2508.10751 §2.4"),
    "passk_exceed": ("pass@k reweighted toward hard groups", "arXiv 2508.10751 §4"),
    "passk_combination": ("mix of pass@k and pass@1 by group accuracy", "arXiv 2508.10751 §4"),
    "passk_adaptive": ("pass@1 or pass@k chosen by prompt entropy", "arXiv 2508.10751 §4"),
    "maxk_analytic": ("max@k of continuous rewards", "arXiv 2505.15201"),
    "pkpo_loo": ("max@k, leave-one-out baseline (PKPO)", "arXiv 2505.15201"),
    "passk_mixture": ("sum_k c_k pass@k (unbiased)", "arXiv 2602.02710, SPEC 1.8"),
    "maxrl": ("log pass rate: sum_k pass@k / k (truncated at T)", "arXiv 2602.02710"),
    "rs_grpo": ("(1/beta) log E[e^{beta r}] (risk-seeking)", "arXiv 2506.10406"),
    "w_reinforce": ("weighted REINFORCE (NSR/PSR extremes)", "arXiv 2506.01347"),
    "rloo": ("expected reward, leave-one-out baseline", "arXiv 2402.14740"),
    "reinforce_pp": ("expected reward, batch-whitened (REINFORCE++)", "arXiv 2501.03262"),
    "pass1_matched": ("pass@1 direction, Pass@k's total |A| (step-size control)", "passk"),
    "unlikeliness": ("pass@k-friendly: favour unlikely correct samples", "arXiv 2506.02355"),
    "qae": ("expected reward, K-quantile baseline (QAE)", "arXiv 2509.22611"),
    "combine": ("weighted sum of registered estimators", "TRL #4525, passk"),
    "gated": ("any estimator, gated by the group's pass@k headroom", "after arXiv 2606.15455"),
    # policy losses
    "ppo_clip": ("PPO, decoupled clip (DAPO clip-higher)", "arXiv 2503.14476"),
    "simko": ("PPO + top-K smoothing of high-entropy tokens", "arXiv 2510.14807"),
    "gspo": ("sequence-level ratio, clipped", "arXiv 2507.18071"),
    "cispo": ("clipped, detached importance weight x log-prob", "arXiv 2506.13585"),
    "sapo": ("soft sigmoid gate instead of the clip", "arXiv 2511.20347"),
    "clip_cov": ("PPO; high-covariance tokens lose their gradient", "arXiv 2505.22617"),
    "kl_cov": ("PG + |log r| on the highest-covariance tokens", "arXiv 2505.22617"),
    "dppo_tv": ("PG masked outside a binary-TV trust region", "arXiv 2602.04879"),
    "dppo_kl": ("PG masked outside a binary-KL trust region", "arXiv 2602.04879"),
}

FAMILIES = """\
## When to use which

**Pass@1 baselines** (`pass1`, `rloo`, `reinforce_pp`). GRPO's z-score, REINFORCE with a
leave-one-out baseline, and REINFORCE++'s batch whitening all optimise the expected reward.
They are the control every exploration method must beat, and the ones that sharpen fastest.
`pass1_matched` is the step-size control of a comparison with Pass@k: GRPO's direction,
scaled per batch to the total |A| analytic Pass@k would give the same batch, so that a
difference between the two arms is not only a difference in how far the policy moved.

**Pass@k training** (`passk_analytic`, `passk_full`, `passk_bootstrap`, `passk_exceed`,
`passk_combination`, `passk_adaptive`). These optimise the best of k samples. They push
hard prompts and stop pushing prompts that a k-group already solves, which keeps
exploration alive. `passk_analytic` is exact and costs what GRPO costs. The full and
bootstrap versions sample k-groups, as the paper does. The implicit designs reshape the
analytic advantage, and `passk_adaptive` needs per-prompt entropy. For continuous rewards
use `maxk_analytic` or `pkpo_loo`.

**What separates them, with 0/1 rewards.** Inside a group, analytic Pass@k's advantage is
exactly GRPO's times a weight of the number of correct responses: A_passk = w(N_pos) A_pass1
(N = 16, k = 4: w = 0.447 at 1 correct, 0.353 at 4, 0.200 at 8, 0.041 at 12, 0 from 13 on).
More generally, every estimator whose advantages depend only on the group's rewards moves
each problem's logits along that problem's pass@1 gradient, times a weight m(p) of its
success rate (`passk.sim.problem_weight`). On one problem, all of them point the same way:
Pass@k changes which solutions a model keeps only by weighing problems differently, through
parameters the problems share. `passk simulate` runs any estimator through an exact model of
this, and [docs/mechanism.md](mechanism.md) shows where Pass@1 loses coverage and which
estimators keep it.

**Pass@k mixtures and MaxRL** (`passk_mixture`, `maxrl`). These are unbiased gradients of a
weighted sum of pass@k. Weighting with 1/k gives the log pass rate (MaxRL), between RL and
maximum likelihood. Use them when you want an objective with a stated meaning rather than
a heuristic weighting. `maxrl`'s p-normalised default divides by the group's pass rate, so
rare successes get large advantages.

**Risk-seeking and sample weighting** (`rs_grpo`, `w_reinforce`, `unlikeliness`).
`rs_grpo` moves from the mean reward toward the best reward with beta. `w_reinforce`
mostly pushes down wrong samples (negative-sample reinforcement keeps entropy up).
`unlikeliness` favours the correct samples the policy finds least likely, which counters
the loss of pass@k at large k.

**Entropy controllers** (`loss.entropy_target`, `loss.entropic_target`; trainer features
of `passk train`, with any estimator and loss, documented in [train.md](train.md)). The
adaptive entropy coefficient (Skywork-OR1, arXiv 2505.22312) moves an entropy bonus's
coefficient by a fixed step toward holding a target entropy and applies the bonus only
below it. EntroPIC (arXiv 2511.15248) holds a target entropy with a PI controller on the
weights of positive vs negative samples. Their state is checkpointed; docs/mechanism.md
shows what each does on the lab's collapse case.
**Baselines that gate by difficulty** (`qae`). QAE replaces GRPO's group mean with the
group's K-quantile. With 0/1 rewards it splits the prompts in two: a group with at most
about (1 - K)(N - 1) correct reinforces only its successes, a group above that pushes down
only its failures, and an advantage is zero for the rest (the official code's unbiased std
is kept).

**Composites** (`combine`, `gated`). `combine` sums registered estimators with weights,
e.g. analytic Pass@k + GRPO (`configs/combine.yaml`). Each term is validated as its own
estimator and gets the inputs it needs and its own seed. `gated` wraps any estimator and
scales each group by h = C(N - N_pos, k) / C(N, k), which is 1 minus the group's unbiased
pass@k estimate. It gives zero once every k-subset of the group holds a success
(`threshold` < 1 closes the gate earlier; `weight: hard` keeps the inner advantages
unscaled while the gate is open). That zero set is exactly where analytic Pass@k's own
weight w(N_pos) vanishes (N_neg < k). The two fall off differently before it: the gate by
h, analytic Pass@k by w = sqrt(h / (1 - h)) / sqrt((1 - p) / p) with p = N_pos / N. The
idea is BBG's (arXiv 2606.15455: stop updating problems whose pass@k has saturated).
BBG's own gate is Bayesian, and its exact formula could not be recovered from the parts
of the paper that could be read (abstract and introduction), so `gated` is the count-based
version described above, not a reproduction of BBG.

**Not implemented: REPO** (arXiv 2603.11682, an advantage decorrelated from the response
log-probability). Neither the paper's text nor official code could be found, so its exact
formula could not be recovered. It is left out rather than guessed.

**Answer-level exploration** (`algorithm.exploration`: `batch`, `ucb`, `ucb_mean`,
`ucb_con`). Bonuses from counts of final answers are added to any estimator's advantages.
The historical UCB versions reward answers seldom seen for a problem over training: their
counts are trainer state, checkpointed with the run. The batch version penalises answers
repeated within a group. The exploration bonus is a trainer feature of `passk train`, not
an estimator.

**Policy losses** (`ppo_clip`, `simko`, `gspo`, `cispo`, `sapo`, `clip_cov`, `kl_cov`,
`dppo_tv`, `dppo_kl`).
`ppo_clip` with clip-higher is the default. GSPO clips a sequence-level ratio (stable for
long responses and MoE models). CISPO keeps every token's gradient and clips the weight.
SAPO replaces the clip with a smooth gate. Clip-Cov and KL-Cov control entropy collapse by
holding back the few tokens whose log-prob co-varies most with the advantage; passk selects
these tokens over the whole mini-batch. DPPO replaces the ratio clip by a trust region on
the divergence of the sampled token's probability (TV or KL), so rare tokens may move far
in ratio and likely tokens may not move far in probability. `loss.entropy_mask_top` (the
80/20 forking-token mask) restricts any loss to the highest-entropy tokens.
"""


def _params(params_type: type) -> str:
    parts = []
    for f in dataclasses.fields(params_type):
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = "required"
        parts.append(f"`{f.name}={default}`")
    return ", ".join(parts) or "none"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _summary(fn: Any) -> str:
    doc = (fn.__doc__ or "").strip().split("\n\n")[0]
    return _cell(re.sub(r"\s+", " ", doc))


def _supported() -> tuple[dict[str, str], dict[str, str], set[str]]:
    """(passk estimator -> verl name, passk loss -> verl name, TRL-supplied needs)."""
    from passk.integrations import trl, verl

    estimators = {passk: name for name, passk in verl.VERL_ESTIMATOR_NAMES.items()}
    losses = {name.removeprefix("passk_"): name for name in verl.PASSK_POLICY_LOSSES}
    losses |= verl.VERL_NATIVE_LOSSES  # verl's own, equal to passk's: not registered again
    return estimators, losses, set(trl.SUPPLIED_NEEDS)


def render() -> str:
    """The whole page, as markdown."""
    from passk.core.advantages import get_estimator, list_estimators
    from passk.core.losses import get_policy_loss, list_policy_losses

    verl_est, verl_loss, trl_needs = _supported()
    lines = [
        "# Methods",
        "",
        "<!-- generated by `python -m passk.methods_table --write`; do not edit by hand -->",
        "",
        "Every advantage estimator and policy loss in passk, side by side. *core*: callable on",
        "tensors (`passk.compute_advantages`, `get_policy_loss(name).compute`); *train*:",
        "`passk train` (`algorithm.estimator` / `loss.policy_loss`); *verl*: the plugin's",
        "name for `algorithm.adv_estimator` / `actor.policy_loss.loss_mode`; *TRL*:",
        "`PassKGRPOTrainer(advantage=...)`. Derivations, and where a paper and its official",
        "code differ, are in each function's docstring; see also `docs/core.md`.",
        "",
        "## Advantage estimators",
        "",
        "| name | objective | what it computes | params | source | core | train | verl | TRL |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in list_estimators():
        spec = get_estimator(name)
        objective, source = _cell(OBJECTIVES[name][0]), OBJECTIVES[name][1]
        verl_name = verl_est.get(name)
        trl = "yes" if spec.needs <= trl_needs else "no"
        lines.append(
            f"| `{name}` | {objective} | {_summary(spec.fn)} | {_params(spec.params)} | "
            f"{source} | yes | yes | {f'`{verl_name}`' if verl_name else 'no'} | {trl} |"
        )
    lines += [
        "",
        "## Policy losses",
        "",
        "| name | objective | what it computes | params | source | core | train | verl |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in list_policy_losses():
        spec = get_policy_loss(name)
        objective, source = _cell(OBJECTIVES[name][0]), OBJECTIVES[name][1]
        verl_name = verl_loss.get(name)
        lines.append(
            f"| `{name}` | {objective} | {_summary(spec.fn)} | {_params(spec.params)} | "
            f"{source} | yes | yes | {f'`{verl_name}`' if verl_name else 'no'} |"
        )
    lines += [
        "",
        "TRL keeps its own loss (`GRPOConfig.loss_type`); the passk losses are not wired into",
        "it. verl calls a policy loss once per micro-batch, so the losses that need a",
        "mini-batch-wide token selection (`clip_cov`, `kl_cov`) and SimKO's top-K inputs",
        "cannot be registered there; use verl's own `clip_cov`/`kl_cov` (per micro-batch).",
        "`dppo_tv` and `dppo_kl` are verl's own losses, equal to passk's in value and gradient",
        "(thresholds in `clip_ratio_low`/`_high`, the cap in `clip_ratio_c`; verl's default cap",
        "is 3.0, passk's 20).",
        "",
        FAMILIES,
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--write", action="store_true", help="rewrite docs/methods.md")
    args = ap.parse_args()
    page = render()
    if args.write:
        path = Path(__file__).resolve().parents[2] / "docs" / "methods.md"
        path.write_text(page)
        print(f"wrote {path}")
    else:
        print(page)


if __name__ == "__main__":
    main()
