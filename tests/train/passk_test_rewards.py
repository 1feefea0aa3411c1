"""Reward functions for trainer tests: content-hash rewards give a tiny random model
varied, reproducible rewards (module importable by subprocesses via PYTHONPATH)."""

import zlib


def parity(completion: str, answer: str) -> float:
    """1 for about half of all completions, decided by a hash of the text."""
    return float(zlib.crc32(completion.encode()) & 1)


def partial(completion: str, answer: str) -> float:
    """Partial credit in {0, 0.25, ..., 1} from a hash of the text."""
    return (zlib.crc32(completion.encode()) % 5) / 4


def some_prompts(completion: str, answer: str) -> float:
    """Hash reward on prompts whose answer is divisible by 3, else always 0 (no signal)."""
    return parity(completion, answer) if int(answer) % 3 == 0 else 0.0


def solved_div3(completion: str, answer: str) -> float:
    """Always 1 on prompts whose answer is divisible by 3 (near-perfect), else the hash."""
    return 1.0 if int(answer) % 3 == 0 else parity(completion, answer)
