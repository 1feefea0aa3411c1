"""verl's own trainer, end to end, with passk: ``python -m verl.trainer.main_ppo`` on CPU.

Two 2-step runs of verl 0.9.1's v1 trainer (Ray, TransferQueue, FSDP2 actor, agent loop,
reward loop) under ``trainer.v1.trainer_mode=passk_sync`` with a tiny random Llama:

- ``passk_analytic`` (k=2) with the ``passk_gspo`` policy loss and the validation mixin
  (``trainer.passk_val``): pass@k / pass^k / maj@k in verl's own logged metrics;
- ``unlikeliness``, which needs per-response sequence log-probs that verl's
  ``compute_advantage`` never passes (``passk_sync`` supplies them).

Each run's advantages are checked group by group against ``passk.compute_advantages`` on the
same rewards, and the weights the rollout received after training against the initial ones.
What makes verl run on CPU lives in tests/integration/verl_cpu/ (pinned to verl 0.9.1).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest
import torch

from passk import compute_advantages
from passk.core.aggregate import response_token_mean

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("verl") is None or importlib.util.find_spec("transfer_queue") is None,
    reason="needs verl 0.9.1 and TransferQueue (scripts/setup.sh)",
)

# loaded by path: its directory holds the modules verl's processes import, which must not
# shadow anything in this process
_spec = importlib.util.spec_from_file_location(
    "verl_cpu_harness", Path(__file__).parent / "verl_cpu" / "harness.py"
)
harness = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(harness)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("verl_e2e")
    harness.prepare(root)
    out = {}
    for estimator, extra, validate in (
        (
            "passk_analytic",
            [
                "+algorithm.passk.k=2",
                "actor_rollout_ref.actor.policy_loss.loss_mode=passk_gspo",
                "actor_rollout_ref.actor.clip_ratio_low=3e-4",
                "actor_rollout_ref.actor.clip_ratio_high=4e-4",
            ],
            True,
        ),
        ("unlikeliness", [], False),
    ):
        start = time.monotonic()
        status = harness.run(root, estimator, extra, validate)
        log = (root / f"{estimator}.log").read_text(errors="replace")
        assert status == 0, f"main_ppo ({estimator}) exited {status}:\n{log[-6000:]}"
        print(f"main_ppo {estimator}: {time.monotonic() - start:.0f} s")
        out[estimator] = root / estimator
    return out


def metrics(dump: Path) -> list[dict]:
    return [json.loads(line) for line in (dump / "metrics.jsonl").read_text().splitlines()]


def check_advantages(dump: Path, name: str, **params) -> int:
    """Every group's advantages equal passk's on the same rewards; returns the groups seen."""
    steps = sorted(dump.glob("advantages_step*.pt"))
    assert len(steps) == harness.STEPS, steps
    groups_seen = 0
    for path in steps:
        rec = torch.load(path)
        mask = rec["response_mask"].bool()  # [B, T]
        scores = rec["rm_scores"].sum(-1).double()  # [B]
        adv = rec["advantages"].double()  # [B, T]
        per_response = adv[:, 0]
        # outcome advantage: one value on every valid token, 0 elsewhere
        assert torch.equal(adv * mask, per_response[:, None] * mask)
        assert torch.all(adv[~mask] == 0)
        seq_logp = response_token_mean(rec["old_log_probs"].double(), mask)  # [B]
        rows = defaultdict(list)
        for i, uid in enumerate(rec["uid"]):
            rows[uid].append(i)
        assert len(rows) == harness.PROMPTS
        for idx in rows.values():
            assert len(idx) == harness.N
            extra = {"seq_logp": seq_logp[idx][None]} if name == "unlikeliness" else {}
            expected = compute_advantages(name, scores[idx][None], **params, **extra)[0]
            torch.testing.assert_close(per_response[idx], expected, rtol=1e-5, atol=1e-5)
            groups_seen += 1
    return groups_seen


def check_weights_moved(dump: Path) -> None:
    """The rollout got the initial weights, then the trained ones after each step."""
    from safetensors.torch import load_file

    loads = sorted(dump.glob("weights_*.pt"), key=lambda p: int(p.stem.split("_")[1]))
    assert len(loads) == harness.STEPS + 1, loads
    first, last = torch.load(loads[0]), torch.load(loads[-1])
    initial = load_file(dump.parent / "model" / "model.safetensors")
    assert set(initial) <= set(first)
    for name, value in initial.items():  # the trainer's weights before any step: the checkpoint
        torch.testing.assert_close(first[name], value, rtol=0, atol=0)
    moved = [name for name in first if not torch.equal(first[name], last[name])]
    assert moved, "no weight changed in 2 training steps"
    assert any("layers.0" in name for name in moved), moved


@pytest.mark.slow
def test_passk_analytic_gspo_and_validation(runs: dict[str, Path]) -> None:
    dump = runs["passk_analytic"]
    assert check_advantages(dump, "passk_analytic", k=2) == harness.PROMPTS * harness.STEPS
    check_weights_moved(dump)
    logged = metrics(dump)
    assert [row["step"] for row in logged] == list(range(1, harness.STEPS + 1))
    last = logged[-1]["data"]
    # passk_gspo computed the loss: passk's own metric names next to verl's
    assert {"actor/pg_loss", "actor/ppo_kl", "actor/clip_frac_high", "actor/approx_kl"} <= set(last)
    # the validation mixin's keys, next to verl's own
    for key in (
        "val-core/tiny/acc/pass@4/exact",
        "val-aux/tiny/acc/pass@1/exact",
        "val-aux/tiny/acc/pass^2/exact",
        "val-aux/tiny/acc/maj@2/exact",
        "val-aux/tiny/acc/pass@2/ci_lo",
    ):
        assert key in last, sorted(k for k in last if k.startswith("val"))
    assert 0.0 <= last["val-aux/tiny/acc/pass@1/exact"] <= last["val-core/tiny/acc/pass@4/exact"]


@pytest.mark.slow
def test_unlikeliness_gets_per_response_log_probs(runs: dict[str, Path]) -> None:
    dump = runs["unlikeliness"]
    assert check_advantages(dump, "unlikeliness") == harness.PROMPTS * harness.STEPS
    check_weights_moved(dump)
    last = metrics(dump)[-1]["data"]
    assert "passk/response_seq_logp_mean" in last


def test_another_verl_version_is_refused() -> None:
    """The CPU patches name verl 0.9.1 internals: any other verl stops them with one message."""
    code = "import verl; verl.__version__ = '0.10.0'; import verl_cpu"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parent), PASSK_VERL_TRAINER="0")
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("RuntimeError: tests/integration/verl_cpu patches verl 0.9.1"), last
    assert "cannot run verl 0.10.0" in last
