"""The verl adapter's grouping, without verl: properties that hold for any batch layout."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import passk
from passk.integrations.verl import group_by_uid, verl_advantage

CFG = {"passk": {"k": 2}}


@st.composite
def batches(draw: st.DrawFn) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    sizes = draw(st.lists(st.integers(2, 7), min_size=1, max_size=6))  # ragged groups, all >= k
    labels = np.array([f"u{g}" for g, n in enumerate(sizes) for _ in range(n)], dtype=object)
    scores = torch.tensor(
        draw(st.lists(st.sampled_from([0.0, 1.0]), min_size=len(labels), max_size=len(labels)))
    )
    perm = np.array(draw(st.permutations(range(len(labels)))))
    return scores, labels, perm


@settings(max_examples=60, deadline=None)
@given(batches())
def test_grouping_round_trips_and_keeps_batch_order(batch) -> None:
    scores, labels, perm = batch
    rewards, mask, rows, cols = group_by_uid(scores[perm], labels[perm])
    torch.testing.assert_close(rewards[rows, cols], scores[perm])
    assert int(mask.sum()) == len(labels)
    assert len(set(zip(rows.tolist(), cols.tolist()))) == len(labels)  # one slot per response
    assert (rewards[~mask] == 0).all()


@settings(max_examples=60, deadline=None)
@given(batches())
def test_advantages_are_permutation_equivariant(batch) -> None:
    scores, labels, perm = batch
    T = 3
    mask = torch.ones(len(labels), T)
    rewards = torch.zeros(len(labels), T)
    rewards[:, -1] = scores
    base, _ = verl_advantage("passk_analytic", rewards, mask, labels, CFG)
    shuffled, _ = verl_advantage("passk_analytic", rewards[perm], mask[perm], labels[perm], CFG)
    torch.testing.assert_close(shuffled, base[perm])
    # and equal to the core on the sorted-uid layout
    r, m, rows, cols = group_by_uid(scores, labels)
    core = passk.compute_advantages("passk_analytic", r, m, k=2)
    torch.testing.assert_close(base[:, 0], core[rows, cols])
