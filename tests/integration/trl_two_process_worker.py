"""Worker for test_trl.py's two-process run (``torchrun --nproc_per_node 2``, gloo on CPU).

Each rank scores only its own 6 completions, so with 4 generations per prompt the middle
group is split across the ranks and is complete only in the gathered batch; each rank
saves the advantages it trained on for the test.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch


def main(out_dir: str) -> None:
    import datasets
    from trl import GRPOConfig

    sys.path.insert(0, str(Path(__file__).parent))
    from test_trl import N_GEN, RANK_PATTERNS, RecordingTrainer, build_model, build_tokenizer

    root = Path(out_dir)
    tok = build_tokenizer(root / "tok")
    model = build_model(tok, root / "model")
    rank = int(os.environ["RANK"])

    def rank_reward(completions, **kwargs):
        # each rank scores only its 6 completions; the middle group spans both ranks
        pat = RANK_PATTERNS[rank]
        return [pat[i % len(pat)] for i in range(len(completions))]

    trainer = RecordingTrainer(
        model=model,
        reward_funcs=rank_reward,
        args=GRPOConfig(
            output_dir=str(root / "out"),
            per_device_train_batch_size=len(RANK_PATTERNS[0]),
            num_generations=N_GEN,
            max_completion_length=4,
            max_steps=1,
            learning_rate=1e-2,
            beta=0.0,
            report_to="none",
            save_strategy="no",
            use_cpu=True,
            seed=0,
        ),
        train_dataset=datasets.Dataset.from_dict(
            {"prompt": [f"what is {i} + 2 ?" for i in range(6)] * 4}
        ),
        processing_class=tok,
        advantage="passk_analytic",
        advantage_kwargs={"k": 2},
    )
    trainer.train()
    produced = torch.cat(trainer.produced).tolist()
    (root / f"rank{rank}.json").write_text(json.dumps(produced))


if __name__ == "__main__":
    main(sys.argv[1])
