"""A short supervised warm-up of the embedded model on ``countdown_modes`` (TRL's SFTTrainer).

    python scripts/countdown_warmup.py --out runs/countdown-sft --rare-share 0.1 --steps 120
    python scripts/countdown_warmup.py --check runs/countdown-sft   # the checkpoint's checks
    python scripts/countdown_warmup.py --out runs/countdown-sft --rare-share 0.1 --steps 120 --resume
                                            # continue one cut short (checkpoints every 10 steps)

The untrained SmolLM2-135M-Instruct does not answer this task in the asked format (no
boxed expression in about 35-43% of samples, with or without worked examples in the
prompt), so RL would first have to teach the format. The warm-up teaches the format on the
*train* split only, and its template mix sets how rare the rare strategy starts: a share
``--rare-share`` of the examples are rare problems answered ``x * y - z``, the rest common
ones answered ``a + b + c``. The answer is the boxed expression alone (about 10 tokens).

``--out`` gets ``model/`` (a checkpoint ``passk eval --model`` and ``passk train`` take) and
``warmup.json`` (settings, data counts, the training loss). ``--check DIR`` evaluates the
checkpoint on the test split with ``passk eval`` and adds to ``warmup.json`` the no-answer
rate and the template frequencies per mode (the study's start conditions: no-answer < 2%,
rare-problem pass@16-64 mid-range).

``--precision fp32`` (the default) trains and checks in fp32 on every machine, so the
recipe gives the same model (up to float round-off) on CPUs with and without native bf16;
``auto`` uses bf16 autocast where the CPU has it. ``warmup.json`` records the weights'
SHA-256 and the CPU, so a re-created warm-up can be told apart from the committed one.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from machine import machine_info  # benchmarks/machine.py: the CPU's bf16 flags


def examples(rare_share: float, count: int, seed: int, test_fraction: float) -> list[dict]:
    """``count`` prompt/completion pairs from the train split, ``rare_share`` of them rare
    (the split of the study's task: the same ``test_fraction``)."""
    from passk.tasks.countdown import CountdownModesTask

    task = CountdownModesTask(rare_fraction=rare_share, test_fraction=test_fraction)
    problems = task.problems("train", 10_000, seed=seed)
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        p = problems[i % len(problems)]
        if p.meta["source"] == "rare":
            x, y, z = p.meta["solution"]
            answer = f"{x} * {y} - {z}"
        else:
            a, b, c = rng.sample(p.meta["numbers"], 3)
            answer = f"{a} + {b} + {c}"
        rows.append(
            {
                "prompt": [{"role": "user", "content": p.prompt}],
                "completion": [{"role": "assistant", "content": f"\\boxed{{{answer}}}"}],
                "mode": p.meta["source"],
            }
        )
    rng.shuffle(rows)
    return rows


def weights_sha256(model_dir: Path) -> str:
    """SHA-256 over the checkpoint's safetensors files, in name order."""
    digest = hashlib.sha256()
    for f in sorted(model_dir.glob("*.safetensors")):
        with f.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def train(args: argparse.Namespace) -> None:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from passk.rollout.models import bf16_supported, build_embedded_cache

    checkpoints = sorted((args.out / "trainer").glob("checkpoint-*"))
    if args.resume and not checkpoints:
        raise SystemExit(f"--resume: {str(args.out)!r} holds no warm-up checkpoint to continue")
    if not args.resume and args.out.exists() and any(args.out.iterdir()):
        raise SystemExit(
            f"--out {str(args.out)!r} is not empty; give a new directory (or --resume to "
            "continue a warm-up cut short there)"
        )
    torch.manual_seed(args.seed)
    source = build_embedded_cache()
    tokenizer = AutoTokenizer.from_pretrained(source)
    model = AutoModelForCausalLM.from_pretrained(source, torch_dtype=torch.float32)
    rows = examples(args.rare_share, args.steps * args.batch_size, args.seed, args.test_fraction)
    data = Dataset.from_list([{k: r[k] for k in ("prompt", "completion")} for r in rows])
    bf16 = args.precision == "auto" and bf16_supported(torch.device("cpu"))
    config = SFTConfig(
        output_dir=str(args.out / "trainer"),
        max_steps=args.steps,
        per_device_train_batch_size=args.batch_size,
        learning_rate=args.lr,
        lr_scheduler_type="constant_with_warmup",
        warmup_steps=min(10, args.steps // 5),
        logging_steps=10,
        save_strategy="steps",  # a cut run continues with --resume (HF restores the data
        save_steps=args.save_every,  # order and RNG states of its last checkpoint)
        save_total_limit=1,
        report_to=[],
        seed=args.seed,
        bf16=bf16,
        completion_only_loss=True,
        max_length=384,
        use_cpu=True,
    )
    trainer = SFTTrainer(model=model, args=config, train_dataset=data, processing_class=tokenizer)
    result = trainer.train(resume_from_checkpoint=bool(args.resume))
    model_dir = args.out / "model"
    trainer.model.save_pretrained(model_dir, safe_serialization=True)
    tokenizer.save_pretrained(model_dir)
    summary = {
        "task": "countdown_modes",
        "split": "train",
        "seed": args.seed,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "rare_share": args.rare_share,
        "test_fraction": args.test_fraction,
        "examples": dict(Counter(r["mode"] for r in rows)),
        "precision": args.precision,
        "bf16": bf16,
        "machine": machine_info(),
        "weights_sha256": weights_sha256(model_dir),
        "train_loss": result.training_loss,
        "loss_log": [e for e in trainer.state.log_history if "loss" in e],
    }
    (args.out / "warmup.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(
        f"wrote {model_dir} and {args.out / 'warmup.json'} (train loss {result.training_loss:.3f})"
    )


def check(args: argparse.Namespace) -> None:
    from passk.tasks.countdown import parse_expression

    run = args.check
    out = run / "check"
    subprocess.run(
        [sys.executable, "-m", "passk.cli", "eval", "--model", str(run / "model"),
         "--task", "countdown_modes", "--task-option", f"test_fraction={args.test_fraction}",
         "--split", "test", "--problems", str(args.problems),
         "--n", str(args.n), "--max-new-tokens", "24", "--no-plots", "--threads", "1",
         "--dtype", "fp32" if args.precision == "fp32" else "auto",
         "--out", str(out), "--overwrite"],
        check=True,
    )  # fmt: skip
    report = json.loads((out / "eval.json").read_text())
    templates: dict[str, Counter] = {}
    missing = total = 0
    for p in report["per_problem"]:
        counts = templates.setdefault(p["source"], Counter())
        for e in p["extracted"]:
            total += 1
            if e is None:
                missing += 1
                counts["none"] += 1
                continue
            try:
                counts[parse_expression(e)[2]] += 1
            except ValueError:
                counts["invalid"] += 1
    summary_path = run / "warmup.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    summary["check"] = {
        "problems": report["num_problems"],
        "n": args.n,
        "no_answer_rate": missing / total,
        "templates": {mode: dict(c) for mode, c in templates.items()},
        "pass_at_k": report["pass_at_k"],
        "by_source": {s: v["pass_at_k"] for s, v in report.get("by_source", {}).items()},
    }
    summary_path.write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps(summary["check"], indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, help="new directory for the warm-up")
    ap.add_argument("--check", type=Path, default=None, help="check this warm-up's checkpoint")
    ap.add_argument("--rare-share", type=float, default=0.1)
    ap.add_argument("--steps", type=int, default=120)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--resume", action="store_true", help="continue the warm-up in --out from its checkpoint"
    )
    ap.add_argument(
        "--precision",
        choices=["fp32", "auto"],
        default="fp32",
        help="fp32 everywhere (default), or bf16 autocast where the CPU has it",
    )
    ap.add_argument("--save-every", type=int, default=10, help="checkpoint interval (steps)")
    ap.add_argument(
        "--test-fraction",
        type=float,
        default=0.4,
        help="the task's test_fraction (the study's split; the warm-up sees train only)",
    )
    ap.add_argument("--problems", type=int, default=40, help="test problems in --check")
    ap.add_argument("--n", type=int, default=32, help="samples per problem in --check")
    args = ap.parse_args()
    if args.check is not None:
        check(args)
    elif args.out is not None:
        train(args)
    else:
        ap.error("give --out DIR (train) or --check DIR")


if __name__ == "__main__":
    main()
