"""Training-step throughput of passk's trainer vs TRL's ``GRPOTrainer``, same work, one run.

Both trainers train the same model (the embedded SmolLM2-135M-Instruct by default) on
the same ``mul1`` prompts, drawn in the same order (passk's ``PromptSampler``), with
the same group size, completion cap, sampling (temperature 1, top-p 1), learning rate,
clip range (0.2 / 0.2), token-level loss (passk ``token-mean`` = TRL ``loss_type="dapo"``),
GRPO advantages (passk ``pass1`` = TRL ``scale_rewards="group"``), no KL / no reference
model, one update per batch (on-policy: no extra log-prob pass in either) and the same
micro-batch size. Steps alternate in ABBA order -- passk 1, TRL 1, TRL 2, passk 2, passk 3,
TRL 3, ... (passk's steps run from a TRL ``on_step_end`` callback) -- so load drift on a
shared machine hits both alike; the output checks that both saw the same prompts at
every step.

Throughput = completion tokens generated / training-step wall time, summed over the
measured steps (warm-up steps excluded for both). Sampling differs between the two
(different RNG streams), so mean completion lengths differ a little; tokens/s
normalises for that. Step time: passk's ``time/step`` (the whole ``Trainer.step``); TRL's
from ``on_step_begin`` to ``on_step_end`` (generation, reward, loss, backward, clip,
optimizer) -- the "cycle" column adds TRL's per-step loop work outside that window
(logging, dataloader). "Outside model": step time not spent in generation or the
forward/backward passes (passk: ``time/generate`` + ``time/forward_backward`` +
``time/logprob_passes``; TRL: its generate call + ``compute_loss`` + backward), so the
optimizer step counts as outside for both. ``cpu/wall`` (process CPU seconds per wall
second, about ``--threads`` on an idle machine) shows steps slowed by other load.

Precision: ``fp32`` runs passk with ``model.autocast=none`` and an fp32 sampler, TRL
with ``bf16=False``; ``bf16`` runs passk with bf16 autocast and a bf16 sampling copy
(fp32 master weights), TRL with ``bf16=True`` (bf16 autocast, fp32 master weights).
TRL's ``gradient_checkpointing`` (default True in ``GRPOConfig``) is turned off, as passk
does not checkpoint; ``--trl-gradient-checkpointing`` keeps TRL's default.

    python benchmarks/trainer_vs_trl.py                   # 1 warm-up + 3 steps, fp32 and bf16
    python benchmarks/trainer_vs_trl.py --dtypes bf16 --steps 5 --json out.json
    python benchmarks/trainer_vs_trl.py --quick           # tiny smoke run

The last line is ``throughput_ratio_vs_trl: X`` (passk over TRL; bf16's if it ran).
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

DTYPES = ("fp32", "bf16")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--steps", type=int, default=None, help="measured steps per trainer (3)")
    p.add_argument("--warmup", type=int, default=None, help="warm-up steps, excluded (1)")
    p.add_argument("--dtypes", nargs="+", choices=DTYPES, default=list(DTYPES))
    p.add_argument("--completion-len", type=int, default=None, help="max new tokens (64)")
    p.add_argument("--n", type=int, default=None, help="completions per prompt (8)")
    p.add_argument("--prompts", type=int, default=None, help="prompts per step (4)")
    p.add_argument("--micro-batch", type=int, default=8, help="sequences per forward/backward")
    p.add_argument("--lr", type=float, default=1e-6)
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--model", default="embedded", help="'embedded' or a local HF checkpoint")
    p.add_argument("--task", default="mul1")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--trl-gradient-checkpointing",
        action="store_true",
        help="keep GRPOConfig's default gradient_checkpointing=True (slower backward)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="tiny run: 1 warm-up + 1 step, 2 prompts x 4, 16-token completions",
    )
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    return p


def resolve_args(args: argparse.Namespace) -> argparse.Namespace:
    quick = {"steps": 1, "warmup": 1, "completion_len": 16, "n": 4, "prompts": 2}
    full = {"steps": 3, "warmup": 1, "completion_len": 64, "n": 8, "prompts": 4}
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.steps < 1 or args.warmup < 0 or args.n < 2 or args.prompts < 1:
        raise SystemExit("need --steps >= 1, --warmup >= 0, --n >= 2, --prompts >= 1")
    # TRL: one optimizer step = gradient_accumulation_steps micro-batches of
    # per_device_train_batch_size rows that together hold the step's prompts x n completions.
    batch = args.prompts * args.n
    args.micro_batch = math.gcd(max(args.micro_batch, 1), batch)
    args.grad_accum = batch // args.micro_batch
    return args


# ---------------------------------------------------------------------------------------------
# passk
# ---------------------------------------------------------------------------------------------


def passk_config(args: argparse.Namespace, dtype: str) -> Any:
    from passk.train.config import load_config

    bf16 = dtype == "bf16"
    return load_config(
        None,
        [
            f"seed={args.seed}",
            f"steps={args.warmup + args.steps}",
            f"model.name={args.model}",
            "model.device=cpu",
            "model.dtype=fp32",
            f"model.autocast={'bf16' if bf16 else 'none'}",
            f"model.rollout_dtype={'bf16' if bf16 else 'fp32'}",
            f"model.threads={args.threads}",
            f"task.name={args.task}",
            "task.score_timeout=null",  # in-process scoring, as TRL's reward function
            f"rollout.prompts_per_step={args.prompts}",
            f"rollout.n={args.n}",
            f"rollout.max_new_tokens={args.completion_len}",
            "rollout.temperature=1.0",
            "rollout.top_p=1.0",
            "algorithm.estimator=pass1",  # GRPO z-score advantages (TRL's default)
            "algorithm.params={}",
            "loss.params={eps_low: 0.2, eps_high: 0.2}",  # TRL: epsilon=0.2, epsilon_high=None
            "loss.aggregation=token-mean",  # TRL 1.16 default loss_type="dapo"
            f"optim.lr={args.lr}",
            f"optim.micro_batch_size={args.micro_batch}",
            "optim.grad_clip=1.0",  # TRL: max_grad_norm=1.0
            "eval.problems=0",
            "eval.at_start=false",
            "eval.at_end=false",
            "log.progress=false",
            "checkpoint.every=1000",
        ],
    )


OUR_PARTS = (
    "time/generate",
    "time/score",
    "time/forward_backward",
    "time/logprob_passes",
    "time/optimizer",
    "time/sync",
)


def our_record(rec: dict[str, Any]) -> dict[str, Any]:
    """The figures of one passk step."""
    samples = int(rec["rollout/samples"])
    length = float(rec["response/length_mean"])
    out = {
        "time": float(rec["time/step"]),
        "tokens": round(samples * length),
        "completions": samples,
        "mean_length": length,
        "reward": rec.get("reward/mean"),
    }
    for key in OUR_PARTS:
        out[key.split("/", 1)[1]] = float(rec.get(key) or 0.0)
    out["model_time"] = out["generate"] + out["forward_backward"] + out["logprob_passes"]
    return out


# ---------------------------------------------------------------------------------------------
# TRL
# ---------------------------------------------------------------------------------------------


class _Timers:
    """Seconds spent in TRL's model work, accumulated (read by the callback per step)."""

    def __init__(self) -> None:
        self.t: dict[str, float] = {"generate": 0.0, "loss_forward": 0.0, "backward": 0.0}
        self.t["reward"] = 0.0
        self.tokens = 0
        self.completions = 0
        self.prompt_ids: list[list[str]] = []  # problem ids of each generation batch

    def snapshot(self) -> dict[str, float]:
        return {**self.t, "tokens": self.tokens, "completions": self.completions}

    def timed(self, key: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*a: Any, **kw: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                self.t[key] += time.perf_counter() - t0

        return wrapper


def trl_dataset(cfg: Any, total_steps: int) -> tuple[Any, dict[str, Any]]:
    """The prompts passk's trainer draws, in its order, as a conversational dataset."""
    from datasets import Dataset

    from passk.tasks.registry import get_task
    from passk.train.schedule import PromptSampler

    task = get_task(cfg.task.name, **cfg.task.options)
    problems = task.problems("train", cfg.task.train_problems, cfg.seed)
    drawn = PromptSampler(problems, cfg.seed).draw(cfg.rollout.prompts_per_step * total_steps)
    rows = [{"prompt": [{"role": "user", "content": p.prompt}], "problem_id": p.id} for p in drawn]
    return Dataset.from_list(rows), {"task": task, "by_id": {p.id: p for p in problems}}


def build_trl(
    args: argparse.Namespace,
    cfg: Any,
    dtype: str,
    out_dir: str,
    timers: _Timers,
    callback: Any,
) -> Any:
    from transformers.trainer_callback import PrinterCallback, ProgressCallback
    from trl import GRPOConfig, GRPOTrainer

    from passk.rollout.models import load_model

    class TimedGRPOTrainer(GRPOTrainer):
        """GRPOTrainer with timers around generation and the loss forward (no logic change)."""

        def _generate_single_turn(self, *a: Any, **kw: Any) -> Any:
            return timers.timed("generate", super()._generate_single_turn)(*a, **kw)

        def compute_loss(self, *a: Any, **kw: Any) -> Any:
            return timers.timed("loss_forward", super().compute_loss)(*a, **kw)

    dataset, info = trl_dataset(cfg, args.warmup + args.steps)
    task, by_id = info["task"], info["by_id"]

    def task_reward(completions: list[Any], completion_ids: list[list[int]], problem_id, **_):
        """Binary correctness from the same task scorer passk uses; counts completion tokens."""
        t0 = time.perf_counter()
        timers.tokens += sum(len(ids) for ids in completion_ids)
        timers.completions += len(completion_ids)
        timers.prompt_ids.append(list(dict.fromkeys(problem_id)))
        out = []
        for completion, pid in zip(completions, problem_id):
            text = completion[-1]["content"] if isinstance(completion, list) else completion
            out.append(float(task.score(by_id[pid], text).correct))
        timers.t["reward"] += time.perf_counter() - t0
        return out

    loaded = load_model(args.model, dtype="fp32", device="cpu")
    # TRL's GRPOConfig defaults gradient_checkpointing to True; transformers 5 renamed it
    # activation_checkpointing (the old name is a deprecated alias).
    fields = {f.name for f in dataclasses.fields(GRPOConfig)}
    ckpt_key = (
        "activation_checkpointing"
        if "activation_checkpointing" in fields
        else "gradient_checkpointing"
    )
    config = GRPOConfig(
        **{ckpt_key: args.trl_gradient_checkpointing},
        output_dir=out_dir,
        seed=args.seed,
        use_cpu=True,
        bf16=dtype == "bf16",
        fp16=False,
        max_steps=args.warmup + args.steps,
        per_device_train_batch_size=args.micro_batch,
        gradient_accumulation_steps=args.grad_accum,  # steps_per_generation defaults to it
        num_generations=args.n,
        max_completion_length=args.completion_len,
        temperature=1.0,
        top_p=1.0,
        top_k=0,
        learning_rate=args.lr,
        lr_scheduler_type="constant",  # passk: constant (no warm-up)
        warmup_steps=0,
        weight_decay=0.0,
        max_grad_norm=1.0,
        beta=0.0,
        num_iterations=1,
        epsilon=0.2,
        loss_type="dapo",
        scale_rewards="group",
        shuffle_dataset=False,
        logging_steps=1,
        save_strategy="no",
        eval_strategy="no",
        report_to=[],
        disable_tqdm=True,
        dataloader_num_workers=0,
        log_completions=False,
    )
    trainer = TimedGRPOTrainer(
        model=loaded.model,
        reward_funcs=task_reward,
        args=config,
        train_dataset=dataset,
        processing_class=loaded.tokenizer,
        callbacks=[callback],
    )
    for cb in (PrinterCallback, ProgressCallback):
        trainer.remove_callback(cb)
    trainer.accelerator.backward = timers.timed("backward", trainer.accelerator.backward)
    return trainer


def abba_schedule(total: int) -> list[int]:
    """``before[j]``: passk steps done before TRL step ``j + 1`` in the order O T T O O T T O ...

    >>> abba_schedule(4)
    [1, 1, 3, 3]
    """
    order = "".join("OT" if k % 2 == 0 else "TO" for k in range(total))
    before, seen = [], 0
    for c in order:
        if c == "O":
            seen += 1
        else:
            before.append(seen)
    return before


def make_callback(timers: _Timers, records: list[dict[str, Any]], between: Callable[[int], None]):
    from transformers import TrainerCallback

    class Interleave(TrainerCallback):
        """Times each TRL optimizer step; runs ``between(step)`` after it (passk's next steps)."""

        def __init__(self) -> None:
            self.t_resume = time.perf_counter()
            self.t_begin = 0.0
            self.before: dict[str, float] = {}

        def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.before = timers.snapshot()
            self.cpu_begin = time.process_time()
            self.t_begin = time.perf_counter()

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            t_end = time.perf_counter()
            cpu = time.process_time() - self.cpu_begin
            now = timers.snapshot()
            d = {k: now[k] - self.before[k] for k in now}
            rec = {
                "time": t_end - self.t_begin,
                "cpu_s": cpu,
                "cycle": t_end - self.t_resume,
                "tokens": int(d["tokens"]),
                "completions": int(d["completions"]),
                "generate": d["generate"],
                "reward": d["reward"],
                "loss_forward": d["loss_forward"],
                "backward": d["backward"],
            }
            rec["mean_length"] = rec["tokens"] / max(rec["completions"], 1)
            rec["model_time"] = rec["generate"] + rec["loss_forward"] + rec["backward"]
            records.append(rec)
            between(state.global_step)
            self.t_resume = time.perf_counter()

    return Interleave()


# ---------------------------------------------------------------------------------------------
# one precision: both trainers, interleaved
# ---------------------------------------------------------------------------------------------


def run_dtype(args: argparse.Namespace, dtype: str) -> dict[str, Any]:
    from passk.train.loop import Trainer

    total = args.warmup + args.steps
    cfg = passk_config(args, dtype)
    ours: list[dict[str, Any]] = []
    theirs: list[dict[str, Any]] = []
    timers = _Timers()
    with tempfile.TemporaryDirectory(prefix="passk-vs-trl-") as tmp:
        t0 = time.perf_counter()
        mine = Trainer(cfg, Path(tmp) / "passk")
        load_ours = time.perf_counter() - t0

        before = abba_schedule(total)

        def our_steps(done_trl: int) -> None:
            """passk's steps due after TRL step ``done_trl`` (ABBA order)."""
            due = before[done_trl] if done_trl < total else total
            while len(ours) < due:
                torch.set_num_threads(args.threads)
                cpu0 = time.process_time()
                ours.append(our_record(mine.step()))
                ours[-1]["cpu_s"] = time.process_time() - cpu0
                ours[-1]["prompts"] = [p.id for p in mine.last_collected.batch.problems]
                print(
                    f"  [{dtype}] passk step {len(ours)}/{total}: {ours[-1]['time']:.2f} s, "
                    f"{ours[-1]['tokens']} tokens",
                    flush=True,
                )

        callback = make_callback(timers, theirs, our_steps)
        t0 = time.perf_counter()
        trl = build_trl(args, cfg, dtype, str(Path(tmp) / "trl"), timers, callback)
        load_trl = time.perf_counter() - t0
        threads_after_trl = torch.get_num_threads()
        trl_setup = {
            "mixed_precision": str(trl.accelerator.mixed_precision),
            "optim": str(getattr(trl.args.optim, "value", trl.args.optim)),
            "gradient_checkpointing": bool(
                getattr(trl.model, "is_gradient_checkpointing", False)
                or getattr(trl.args, "gradient_checkpointing", False)
            ),
            "per_device_train_batch_size": trl.args.per_device_train_batch_size,
            "gradient_accumulation_steps": trl.args.gradient_accumulation_steps,
            "generation_batch_size": trl.args.generation_batch_size,
            "loss_type": trl.args.loss_type,
        }
        torch.set_num_threads(args.threads)
        try:
            load_begin = os.getloadavg()[0]
            our_steps(0)  # passk 1, TRL 1, TRL 2, passk 2, passk 3, TRL 3, ...
            callback.t_resume = time.perf_counter()
            trl.train()
            our_steps(total)  # none left unless TRL stopped early
            for i, rec in enumerate(theirs, 1):
                print(
                    f"  [{dtype}] TRL step {i}/{total}: {rec['time']:.2f} s, {rec['tokens']} tokens"
                )
            if len(theirs) != total:
                raise RuntimeError(f"TRL ran {len(theirs)} optimizer steps, expected {total}")
            log = [h for h in trl.state.log_history if "completions/mean_length" in h]
            for rec, ids in zip(theirs, timers.prompt_ids):
                rec["prompts"] = ids
            same_prompts = [a["prompts"] == b.get("prompts") for a, b in zip(ours, theirs)]
        finally:
            mine.scorer.close()
    return {
        "dtype": dtype,
        "ours": ours,
        "trl": theirs,
        "trl_logged_mean_length": [h["completions/mean_length"] for h in log],
        "load_s": {"ours": load_ours, "trl": load_trl},
        "torch_threads_after_trl_init": threads_after_trl,
        "trl_setup": trl_setup,
        "same_prompts_per_step": same_prompts,
        "load_avg": {"begin": load_begin, "end": os.getloadavg()[0]},
        "threads": args.threads,
        "summary": summarize(ours, theirs, args.warmup),
    }


def _agg(rows: list[dict[str, Any]], parts: tuple[str, ...]) -> dict[str, Any]:
    t = sum(r["time"] for r in rows)
    tok = sum(r["tokens"] for r in rows)
    comp = sum(r["completions"] for r in rows)
    model = sum(r["model_time"] for r in rows)
    out = {
        "steps": len(rows),
        "step_s_mean": t / len(rows),
        "tokens_per_s": tok / t,
        "mean_length": tok / max(comp, 1),
        "non_model_share": max(t - model, 0.0) / t,
        "split_s": {k: sum(r[k] for r in rows) / len(rows) for k in parts},
    }
    out["tokens_per_s_median"] = statistics.median(r["tokens"] / r["time"] for r in rows)
    out["cpu_per_wall"] = sum(r["cpu_s"] for r in rows) / t
    if "cycle" in rows[0]:
        out["cycle_s_mean"] = sum(r["cycle"] for r in rows) / len(rows)
    return out


def summarize(ours: list[dict], theirs: list[dict], warmup: int) -> dict[str, Any]:
    a = _agg(ours[warmup:], tuple(k.split("/", 1)[1] for k in OUR_PARTS))
    b = _agg(theirs[warmup:], ("generate", "reward", "loss_forward", "backward"))
    return {
        "ours": a,
        "trl": b,
        "throughput_ratio": a["tokens_per_s"] / b["tokens_per_s"],
        "median_throughput_ratio": a["tokens_per_s_median"] / b["tokens_per_s_median"],
        "step_time_ratio_trl_over_ours": b["step_s_mean"] / a["step_s_mean"],
    }


# ---------------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------------


def print_dtype(res: dict[str, Any], warmup: int) -> None:
    s, ours, trl = res["summary"], res["ours"], res["trl"]
    dtype = res["dtype"]
    how = {
        "fp32": "passk: fp32 weights, no autocast, fp32 sampler | TRL: bf16=False (fp32)",
        "bf16": "passk: fp32 master weights, bf16 autocast, bf16 sampling copy | "
        "TRL: bf16=True (bf16 autocast incl. generation, fp32 master weights)",
    }[dtype]
    print(f"\n=== {dtype} ===  ({how})")
    ts = res["trl_setup"]
    print(
        f"  TRL as built: mixed_precision={ts['mixed_precision']}, optim={ts['optim']}, "
        f"gradient_checkpointing={ts['gradient_checkpointing']}, loss_type={ts['loss_type']}, "
        f"generation_batch_size={ts['generation_batch_size']}, "
        f"torch threads after its init: {res['torch_threads_after_trl_init']}"
    )
    same = res["same_prompts_per_step"]
    print(
        f"  same prompts at every step: {all(same)}" + ("" if all(same) else f" (per step: {same})")
    )
    print(
        f"{'step':>5} | {'passk s':>8} {'tokens':>6} {'len':>5} {'tok/s':>6} {'cpu/wall':>8} | "
        f"{'TRL s':>8} {'cycle s':>8} {'tokens':>6} {'len':>5} {'tok/s':>6} {'cpu/wall':>8}"
    )
    for i in range(max(len(ours), len(trl))):
        mark = "*" if i < warmup else " "
        a = ours[i] if i < len(ours) else None
        b = trl[i] if i < len(trl) else None
        left = (
            f"{a['time']:8.2f} {a['tokens']:6d} {a['mean_length']:5.1f} "
            f"{a['tokens'] / a['time']:6.2f} {a['cpu_s'] / a['time']:8.2f}"
            if a
            else " " * 37
        )
        right = (
            f"{b['time']:8.2f} {b['cycle']:8.2f} {b['tokens']:6d} {b['mean_length']:5.1f} "
            f"{b['tokens'] / b['time']:6.2f} {b['cpu_s'] / b['time']:8.2f}"
            if b
            else ""
        )
        print(f"{i + 1:>4}{mark} | {left} | {right}")
    a, b = s["ours"], s["trl"]
    print(
        f"  (* warm-up, excluded; figures over the {a['steps']} measured steps; cpu/wall: "
        f"process CPU seconds per wall second, {res['threads']} when nothing else competes "
        f"for the cores; load avg {res['load_avg']['begin']:.2f} -> {res['load_avg']['end']:.2f})"
    )
    print(
        f"  mean step    passk {a['step_s_mean']:7.2f} s   TRL {b['step_s_mean']:7.2f} s "
        f"(cycle incl. TRL loop overhead {b['cycle_s_mean']:.2f} s)"
    )
    print(
        f"  tokens/s     passk {a['tokens_per_s']:7.2f}     TRL {b['tokens_per_s']:7.2f}   "
        f"(mean completion length passk {a['mean_length']:.1f}, TRL {b['mean_length']:.1f})"
    )
    print(
        f"  median per-step tokens/s  passk {a['tokens_per_s_median']:.2f}  "
        f"TRL {b['tokens_per_s_median']:.2f}  (ratio {s['median_throughput_ratio']:.3f})"
    )
    sp = a["split_s"]
    other = a["step_s_mean"] - sum(sp.values())
    print(
        "  passk split  "
        + "  ".join(f"{k} {v:.2f}" for k, v in sp.items())
        + f"  other {other:.2f} s"
    )
    tp = b["split_s"]
    t_other = b["step_s_mean"] - sum(tp.values())
    print(
        "  TRL split    "
        + "  ".join(f"{k} {v:.2f}" for k, v in tp.items())
        + f"  other {t_other:.2f} s"
    )
    print(
        f"  outside model generate/forward/backward: passk {100 * a['non_model_share']:.1f}% "
        f"of step time (target <= 10%), TRL {100 * b['non_model_share']:.1f}%"
    )
    print(
        f"  {dtype} throughput ratio passk/TRL: {s['throughput_ratio']:.3f}  "
        f"(TRL step time / passk step time: {s['step_time_ratio_trl_over_ours']:.3f})"
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = resolve_args(build_parser().parse_args(argv))
    torch.set_num_threads(args.threads)
    import transformers
    import trl

    print(
        f"passk vs TRL {trl.__version__} (transformers {transformers.__version__}, "
        f"torch {torch.__version__}), CPU, {args.threads} threads, "
        f"load avg {os.getloadavg()[0]:.2f}"
    )
    print(
        f"model {args.model}, task {args.task}, {args.prompts} prompts x {args.n} completions "
        f"per step, <= {args.completion_len} new tokens, lr {args.lr}, micro-batch "
        f"{args.micro_batch} (TRL: per_device_train_batch_size={args.micro_batch}, "
        f"gradient_accumulation_steps={args.grad_accum}), {args.warmup} warm-up + "
        f"{args.steps} measured steps each, interleaved; TRL gradient_checkpointing="
        f"{args.trl_gradient_checkpointing}",
        flush=True,
    )
    t_start = time.perf_counter()
    results = []
    for dtype in args.dtypes:
        results.append(run_dtype(args, dtype))
        gc.collect()  # both trainers of this precision are gone
        print_dtype(results[-1], args.warmup)
        sys.stdout.flush()
    wall = time.perf_counter() - t_start
    by = {r["dtype"]: r for r in results}
    headline = "bf16" if "bf16" in by else "fp32"
    ratio = by[headline]["summary"]["throughput_ratio"]
    report = {
        "trl_version": trl.__version__,
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "results": results,
        "headline_dtype": headline,
        "throughput_ratio_vs_trl": ratio,
        "wall_s": wall,
        "load_avg_end": os.getloadavg()[0],
    }
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
    print(f"\nwall time {wall:.0f} s, load avg at end {os.getloadavg()[0]:.2f}")
    for r in results:
        print(f"{r['dtype']} throughput_ratio_vs_trl: {r['summary']['throughput_ratio']:.3f}")
    print(f"headline precision: {headline} (target >= 1.25)")
    print(f"throughput_ratio_vs_trl: {ratio:.3f}", flush=True)
    return report


if __name__ == "__main__":
    main()
