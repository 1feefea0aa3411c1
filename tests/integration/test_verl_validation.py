"""passk's validation metrics through verl's own validation path (CPU, no Ray, no GPU).

The inputs are built the way verl 0.9.1's ``_validate`` builds them (``DataProto`` repeated
``val_kwargs.n`` times, ``extract_reward``), then verl's own ``_val_metrics_update`` runs
with :class:`PassKValidationMixin` on top, for the legacy trainer and for ``passk_sync``.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from fractions import Fraction

import numpy as np
import pytest
import torch

from passk.core.metrics import pass_at_k
from passk.integrations.verl_validation import (
    ValidationOptions,
    grouped_metrics,
    maj_at_k,
    pass_hat_k,
    validation_options_from_config,
    verl_validation_metrics,
)

# Per problem: (data source, per-sample acc, per-sample extracted answer).
PROBLEMS = [
    ("math", [1, 0, 0, 0], ["3", "5", "5", "5"]),  # 1 of 4: verl's best@4 says ~0.684
    ("math", [0, 0, 0, 0], ["1", "2", "2", None]),
    ("math", [1, 1, 1, 1], ["9", "9", "9", "9"]),
    ("math", [1, 0, 1, 0], ["7", "5", "7", "6"]),
    ("gsm8k", [1, 0, 0, 0], ["4", None, None, "8"]),
    ("gsm8k", [0, 1, 1, 1], ["2", "3", "3", "3"]),
]
N = 4


def brute_maj(answers, correct, k) -> float:
    """maj@k by enumerating every k-subset; ties split the win, None never wins."""
    value = {
        a: Fraction(sum(c for x, c in zip(answers, correct) if x == a), answers.count(a))
        for a in set(answers) - {None}
    }
    total, count = Fraction(0), 0
    for subset in itertools.combinations(range(len(answers)), k):
        count += 1
        votes = Counter(answers[i] for i in subset if answers[i] is not None)
        if votes:
            top = max(votes.values())
            winners = [a for a, v in votes.items() if v == top]
            total += sum(value[a] for a in winners) / len(winners)
    return float(total / count)


def test_pass_hat_k_is_the_all_correct_probability() -> None:
    for n in range(1, 9):
        for c in range(n + 1):
            for k in range(1, n + 1):
                exact = sum(all(s) for s in itertools.combinations([1] * c + [0] * (n - c), k))
                assert pass_hat_k(n, c, k) == pytest.approx(
                    exact / len(list(itertools.combinations(range(n), k)))
                )


def test_maj_at_k_equals_enumeration() -> None:
    rng = random.Random(0)
    for _ in range(200):
        n = rng.randint(1, 8)
        answers = [rng.choice(["a", "b", "c", None]) for _ in range(n)]
        correct = [a == "a" for a in answers]  # a consistent grader
        k = rng.randint(1, n)
        assert maj_at_k(answers, correct, k) == pytest.approx(
            brute_maj(answers, correct, k), abs=1e-9
        )


def test_grouped_metrics_worked_values() -> None:
    rows = [p for p in PROBLEMS if p[0] == "math"]
    out = grouped_metrics(
        [[bool(x) for x in acc] for _, acc, _ in rows], [ans for *_, ans in rows], [1, 2, 4]
    )
    assert out["pass@1"] == pytest.approx((0.25 + 0 + 1 + 0.5) / 4)
    assert out["pass@2"] == pytest.approx((0.5 + 0 + 1 + 5 / 6) / 4)
    assert out["pass@4"] == pytest.approx(0.75)
    assert out["pass^2"] == pytest.approx((1 + 1 / 6) / 4)
    assert out["pass^4"] == pytest.approx(0.25)
    assert out["maj@4"] == pytest.approx(0.5)  # "7" (correct) wins problem 4 two to one to one
    assert out["pass@4/ci_lo"] <= out["pass@4"] <= out["pass@4/ci_hi"]


def verl_inputs(problems=PROBLEMS, with_pred: bool = True):
    """data_sources, sample_uids, reward_extra_infos_dict as verl's legacy _validate makes them."""
    from verl import DataProto
    from verl.trainer.ppo.reward import extract_reward

    P = len(problems)
    test_batch = DataProto.from_single_dict(
        {
            "input_ids": torch.zeros(P, 3, dtype=torch.long),
            "data_source": np.array([p[0] for p in problems], dtype=object),
            "uid": np.array([f"uid-{i}" for i in range(P)], dtype=object),
        }
    )
    test_batch = test_batch.repeat(repeat_times=N, interleave=True)  # as _validate does
    acc = [float(a) for _, accs, _ in problems for a in accs]
    preds = [p for *_, answers in problems for p in answers]
    rm_scores = torch.zeros(P * N, 5)
    rm_scores[:, -1] = torch.tensor(acc) * 2 - 1  # DAPO-style -1/+1 reward
    extra = {"acc": np.array([bool(a) for a in acc], dtype=object)}
    if with_pred:
        extra["pred"] = np.array(preds, dtype=object)
    scored = DataProto.from_dict(
        tensors={"rm_scores": rm_scores},
        non_tensors=extra,
        meta_info={"reward_extra_keys": list(extra)},
    )
    test_batch = test_batch.union(scored)
    reward_tensor, reward_extra_info = extract_reward(test_batch)
    infos: dict[str, list] = {"reward": reward_tensor.sum(-1).tolist()}
    for key, values in reward_extra_info.items():
        infos[key] = values.tolist()
    data_sources = test_batch.non_tensor_batch["data_source"]
    return data_sources, list(test_batch.non_tensor_batch["uid"]), infos


def legacy_trainer(passk_val: dict | None = None):
    pytest.importorskip("verl", reason="verl not installed: pip install 'passk[verl]'")
    from omegaconf import OmegaConf
    from verl.trainer.ppo.ray_trainer import RayPPOTrainer

    from passk.integrations.verl_validation import PassKValidationMixin

    class Trainer(PassKValidationMixin, RayPPOTrainer):
        pass

    trainer = object.__new__(Trainer)
    trainer.config = OmegaConf.create(
        {"trainer": {} if passk_val is None else {"passk_val": passk_val}}
    )
    return trainer


def test_legacy_trainer_val_metrics_gain_passk_keys_next_to_verls() -> None:
    trainer = legacy_trainer({"ks": [1, 2, 4], "num_resamples": 200})
    data_sources, uids, infos = verl_inputs()
    metrics = trainer._val_metrics_update(data_sources, uids, infos, [])
    # verl's own keys are still there, unchanged
    assert "val-core/math/acc/mean@4" in metrics and "val-core/math/acc/best@4/mean" in metrics
    print("\nverl + passk validation metrics (math):")
    for key in sorted(metrics):
        if (
            key.split("/")[1] == "math"
            and "/acc/" in key
            and ("@4" in key or "^4" in key or "@1/" in key)
        ):
            print(f"  {key} = {metrics[key]:.4f}")
    assert metrics["val-core/math/acc/pass@4/exact"] == pytest.approx(0.75)
    assert metrics["val-aux/math/acc/pass@1/exact"] == pytest.approx(
        metrics["val-core/math/acc/mean@4"]
    )
    assert metrics["val-core/math/acc/pass^4/exact"] == pytest.approx(0.25)
    assert metrics["val-core/math/acc/maj@4/exact"] == pytest.approx(0.5)
    lo, hi = metrics["val-aux/math/acc/pass@4/ci_lo"], metrics["val-aux/math/acc/pass@4/ci_hi"]
    assert lo <= 0.75 <= hi
    # per data source: gsm8k has its own values
    assert metrics["val-core/gsm8k/acc/pass@4/exact"] == pytest.approx(1.0)
    assert metrics["val-aux/gsm8k/acc/pass@2/exact"] == pytest.approx((0.5 + 1.0) / 2)
    # no passk key overwrote one of verl's
    ours = {k for k in metrics if "/exact" in k or "/ci_" in k}
    assert all(k.rsplit("/", 1)[-1] in ("exact", "ci_lo", "ci_hi") for k in ours)


def test_one_correct_of_four_is_pass4_one_where_verls_best4_is_biased_low() -> None:
    trainer = legacy_trainer()
    data_sources, uids, infos = verl_inputs(PROBLEMS[:1])
    metrics = trainer._val_metrics_update(data_sources, uids, infos, [])
    best, exact = (
        metrics["val-core/math/acc/best@4/mean"],
        metrics["val-core/math/acc/pass@4/exact"],
    )
    print(f"\n1 correct of 4: verl best@4/mean = {best:.4f}, passk pass@4/exact = {exact:.4f}")
    assert exact == 1.0
    assert best == pytest.approx(1 - (3 / 4) ** 4, abs=0.05)  # 0.684: with replacement


def test_reward_is_the_core_variable_without_acc() -> None:
    data_sources, uids, infos = verl_inputs(with_pred=False)
    infos = {"reward": infos["reward"]}  # -1/+1; > 0.5 counts as correct
    metrics = verl_validation_metrics(data_sources, uids, infos)
    assert metrics["val-core/math/reward/pass@4/exact"] == pytest.approx(0.75)
    assert not any("maj@" in k for k in metrics)  # no pred: no maj@k


def test_passk_sync_val_metrics_count_failed_sessions_as_wrong() -> None:
    pytest.importorskip("transfer_queue", reason="verl's v1 trainer needs TransferQueue")
    from omegaconf import OmegaConf
    from verl.trainer.ppo.v1 import get_trainer_cls

    import passk.integrations.verl as pv

    trainer = object.__new__(get_trainer_cls(pv.TRAINER_MODE))
    trainer.config = OmegaConf.create({"trainer": {"passk_val": {"ks": [1, 4]}}})
    data_sources, uids, infos = verl_inputs(PROBLEMS[2:3])  # 4 of 4 correct...
    keep = [0, 1, 2]  # ...but one agent session failed and produced no sample
    data_sources = [data_sources[i] for i in keep]
    uids = [uids[i] for i in keep]
    infos = {k: [v[i] for i in keep] for k, v in infos.items()}
    expected = {("math", uids[0]): N}
    metrics = trainer._val_metrics_update(
        data_sources, uids, infos, [], expected_acc_counts=expected
    )
    assert metrics["val-core/math/acc/mean@4"] == pytest.approx(0.75)  # verl pads acc with 0
    assert metrics["val-aux/math/acc/pass@1/exact"] == pytest.approx(0.75)
    assert metrics["val-core/math/acc/pass@4/exact"] == 1.0
    assert metrics["val-core/math/acc/pass^4/exact"] == 0.0


def test_options_are_checked_and_named() -> None:
    assert validation_options_from_config({}) == ValidationOptions()
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['kk'\]"):
        validation_options_from_config({"passk_val": {"kk": 1}})
    with pytest.raises(ValueError, match="ks must be integers"):
        validation_options_from_config({"passk_val": {"ks": [0]}})
    data_sources, uids, infos = verl_inputs()
    with pytest.raises(ValueError, match=r"ks \[8\] exceed the 4 validation samples"):
        verl_validation_metrics(data_sources, uids, infos, options=ValidationOptions(ks=(1, 8)))
    off = legacy_trainer({"enabled": False})
    metrics = off._val_metrics_update(data_sources, uids, infos, [])
    assert not any(k.endswith("/exact") for k in metrics)


def test_unbiased_values_match_the_core_estimator() -> None:
    data_sources, uids, infos = verl_inputs()
    metrics = verl_validation_metrics(data_sources, uids, infos, options=ValidationOptions(ks=(2,)))
    rows = [p for p in PROBLEMS if p[0] == "gsm8k"]
    expected = np.mean([pass_at_k(N, sum(acc), 2) for _, acc, _ in rows])
    assert metrics["val-core/gsm8k/acc/pass@2/exact"] == pytest.approx(expected)
