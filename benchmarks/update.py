"""Policy-update throughput with and without prefix sharing, against a bare forward+backward.

Shapes of the default recipe: the embedded model (SmolLM2-135M, fp32 weights), 4 ``mul1``
prompts (chat template, ~48 tokens) x 8 responses, micro-batch 8, bf16 autocast where
the CPU supports it. Responses are synthetic token ids with sampler-like lengths (16-64
tokens, one in eight truncated at the 96-token budget), so the run needs no sampling and
its shapes do not depend on the sampler; the update's cost does not depend on which ids
they are.

Three arms, interleaved ``ABC CBA ABC ...`` after one warm-up each, so load drift on a
shared machine hits all alike:

- ``shared``: :func:`passk.train.update.policy_update` with ``optim.share_prefix=True``;
- ``unshared``: the same with ``share_prefix=False``;
- ``bare``: ``model(...).logits.sum().backward()`` on the same micro-batches (logits at
  response positions only, as the update computes them), no loss, no optimizer step.

Throughput = real (prompt + response) tokens of the batch / wall time. The update's
``time/forward_backward`` is printed too, and its throughput as a fraction of the bare
pass. ``--profile`` prints a ``torch.profiler`` table of one shared update.

    python benchmarks/update.py --threads 2
    python benchmarks/update.py --quick        # tiny random model, smoke run

The last line is ``share_prefix_speedup: X`` (unshared time / shared time).
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import torch


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model", default="embedded", help="'embedded' or a local HF checkpoint")
    p.add_argument("--prompts", type=int, default=4)
    p.add_argument("--n", type=int, default=8, help="responses per prompt")
    p.add_argument("--max-new-tokens", type=int, default=96)
    p.add_argument("--micro-batch", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3, help="measured runs per arm")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--autocast", choices=("auto", "bf16", "none"), default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--profile", action="store_true", help="profile one shared update")
    p.add_argument("--quick", action="store_true", help="tiny random model, 1 repeat")
    return p


def _model_and_prompts(args: argparse.Namespace) -> tuple[Any, list[list[int]], int]:
    """The model (fp32, train-ready), the prompts' token ids and the vocabulary size."""
    from passk.rollout.generate import chat_prompt_ids
    from passk.tasks.registry import get_task

    task = get_task("mul1")
    problems = task.problems("train", args.prompts, args.seed)
    if args.quick:
        from transformers import LlamaConfig, LlamaForCausalLM

        torch.manual_seed(args.seed)
        cfg = LlamaConfig(
            vocab_size=512,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
        )
        prompts = [[3 + (ord(c) % 500) for c in p.prompt][:48] for p in problems]
        return LlamaForCausalLM(cfg), prompts, cfg.vocab_size
    from passk.rollout.models import load_model

    loaded = load_model(args.model, dtype="fp32", device="cpu")
    prompts = [chat_prompt_ids(loaded.tokenizer, p.prompt) for p in problems]
    return loaded.model, prompts, loaded.model.config.vocab_size


def _batch(args: argparse.Namespace, prompts: list[list[int]], vocab: int) -> Any:
    from passk.rollout.batch import Rollouts

    g = torch.Generator().manual_seed(args.seed)
    ps, rs, group = [], [], []
    for i, prompt in enumerate(prompts):
        for _ in range(args.n):
            truncated = bool(torch.rand((), generator=g) < 1 / 8)
            length = (
                args.max_new_tokens if truncated else int(torch.randint(16, 65, (), generator=g))
            )
            ps.append(prompt)
            rs.append(torch.randint(3, vocab, (length,), generator=g).tolist())
            group.append(i)
    batch = Rollouts.from_sequences(ps, rs, group=group, n=args.n)
    batch.advantages = torch.randn(len(batch), generator=g)
    batch.correct = batch.advantages > 0
    return batch


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.quick:
        args.repeats = 1
    torch.set_num_threads(args.threads)
    from passk.rollout.logprobs import autocast_context, micro_batch_rows
    from passk.rollout.models import bf16_supported
    from passk.train.config import DPHConfig, LossConfig, OptimConfig
    from passk.train.update import policy_update

    model, prompts, vocab = _model_and_prompts(args)
    model.eval()
    batch = _batch(args, prompts, vocab)
    device = next(model.parameters()).device
    autocast = None
    if args.autocast == "bf16" or (args.autocast == "auto" and bf16_supported(device)):
        autocast = torch.bfloat16
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-7)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: 1.0)
    tokens = int(batch.prompt_mask.sum() + batch.response_mask.sum())
    prompt_tokens = int(batch.prompt_mask.sum())
    print(
        f"batch: {len(batch)} rows, {tokens} tokens ({prompt_tokens / tokens:.0%} prompt), "
        f"prompt width {batch.prompt_ids.shape[1]}, response width {batch.response_ids.shape[1]}, "
        f"micro-batch {args.micro_batch}, autocast {autocast}, threads {args.threads}"
    )

    def update(share: bool) -> tuple[float, float, float]:
        t0 = time.perf_counter()
        m = policy_update(
            model,
            optimizer,
            scheduler,
            batch,
            loss=LossConfig(),
            optim=OptimConfig(micro_batch_size=args.micro_batch, share_prefix=share),
            dph=DPHConfig(),
            temperature=1.0,
            autocast=autocast,
            generator=torch.Generator().manual_seed(0),
        )
        return time.perf_counter() - t0, m["time/forward_backward"], m["time/optimizer"]

    def bare() -> tuple[float, float, float]:
        t0 = time.perf_counter()
        model.train()
        for index in micro_batch_rows(batch, args.micro_batch):
            mb = batch.rows(index)
            T = mb.response_ids.shape[1]
            with autocast_context(device, autocast):
                logits = model(
                    input_ids=mb.input_ids,
                    attention_mask=mb.attention_mask.long(),
                    logits_to_keep=T + 1,
                ).logits
            logits.float().sum().backward()
        model.zero_grad(set_to_none=True)
        model.eval()
        t = time.perf_counter() - t0
        return t, t, 0.0

    arms = {"shared": lambda: update(True), "unshared": lambda: update(False), "bare": bare}
    names = list(arms)
    for name in names:  # warm-up
        arms[name]()
    order: list[str] = []
    while len(order) < args.repeats * len(names):
        order += names if (len(order) // len(names)) % 2 == 0 else names[::-1]
    times: dict[str, list[tuple[float, float, float]]] = {n: [] for n in names}
    for name in order[: args.repeats * len(names)]:
        times[name].append(arms[name]())

    def med(name: str, i: int) -> float:
        return statistics.median(t[i] for t in times[name])

    print(f"{'arm':<10} {'wall s':>8} {'tok/s':>8} {'fwd+bwd s':>10} {'fwd+bwd tok/s':>14}")
    for name in names:
        wall, fb = med(name, 0), med(name, 1)
        print(f"{name:<10} {wall:8.2f} {tokens / wall:8.0f} {fb:10.2f} {tokens / fb:14.0f}")
    bare_t = med("bare", 0)
    for name in ("shared", "unshared"):
        print(
            f"{name}: update throughput {bare_t / med(name, 0):.2f} of the bare forward+backward "
            f"(its forward+backward alone: {bare_t / med(name, 1):.2f})"
        )
    # the optimizer step on its own: the default (for-loop) AdamW vs the fused CPU kernel
    for p in model.parameters():
        p.grad = torch.randn_like(p) * 1e-3
    steps = {}
    for fused in (False, True):
        opt = torch.optim.AdamW(model.parameters(), lr=1e-7, fused=fused)
        opt.step()  # allocates the state
        t0 = time.perf_counter()
        for _ in range(3):
            opt.step()
        steps[fused] = (time.perf_counter() - t0) / 3
    model.zero_grad(set_to_none=True)
    print(
        f"AdamW step: {steps[False]:.2f} s (default), {steps[True]:.2f} s (fused=True); "
        f"the update's time/optimizer: {statistics.median(t[2] for t in times['shared']):.2f} s"
    )
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            update(True)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))
    print(f"share_prefix_speedup: {med('unshared', 0) / med('shared', 0):.2f}")


if __name__ == "__main__":
    main()
