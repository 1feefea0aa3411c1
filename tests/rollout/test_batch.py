"""Rollouts: rows trims to the used columns, cat re-pads, groups can be put together."""

from __future__ import annotations

import pytest
import torch

from passk.rollout.batch import Rollouts


def _rollouts(prompts, responses, group, pad_id=9) -> Rollouts:
    r = Rollouts.from_sequences(prompts, responses, group=group, pad_id=pad_id, n=2)
    B, T = r.response_mask.shape
    r.logprobs = torch.where(r.response_mask, -torch.rand(B, T), 0.0)
    r.advantages = torch.randn(B)
    r.correct = torch.rand(B) > 0.5
    r.old_logp = torch.where(r.response_mask, -torch.rand(B, T), 0.0)
    r.old_topk_ids = torch.randint(0, 50, (B, T, 3))
    r.texts = [f"t{b}" for b in range(B)]
    r.seeds = list(range(100, 100 + B))
    return r


def _sequences(r: Rollouts, b: int) -> tuple[list[int], list[int]]:
    return r.prompt_ids[b][r.prompt_mask[b]].tolist(), r.response_ids[b][
        r.response_mask[b]
    ].tolist()


def test_rows_trims_to_the_columns_the_rows_use():
    r = _rollouts([[1, 2, 3, 4], [5, 6], [7]], [[10], [11, 12, 13, 14], [15, 16]], [0, 1, 1])
    s = r.rows(torch.tensor([2, 0]))
    assert s.prompt_ids.shape == (2, 4) and s.response_ids.shape == (2, 2)
    s = r.rows(torch.tensor([2, 1]))
    assert s.prompt_ids.shape == (2, 2) and s.response_ids.shape == (2, 4)
    for i, b in enumerate([2, 1]):
        assert _sequences(s, i) == _sequences(r, b)
        assert s.texts[i] == r.texts[b] and s.seeds[i] == r.seeds[b]
        assert s.advantages[i] == r.advantages[b] and s.group[i] == r.group[b]
        L = int(r.lengths[b])
        assert torch.equal(s.old_logp[i, :L], r.old_logp[b, :L])
        assert torch.equal(s.old_topk_ids[i, :L], r.old_topk_ids[b, :L])
        assert torch.equal(s.input_ids[i][s.attention_mask[i]], r.input_ids[b][r.attention_mask[b]])
    assert s.ref_logp is None and s.rewards is None


def test_cat_repads_and_round_trips_through_rows():
    a = _rollouts([[1, 2, 3], [1, 2, 3]], [[4], [5, 6]], [0, 0])
    b = _rollouts([[7]], [[8, 8, 8, 8, 8]], [1])
    b.ref_logp = torch.zeros(1, 5)  # only one part has it: dropped
    c = Rollouts.cat([a, b])
    assert c.prompt_ids.shape == (3, 3) and c.response_ids.shape == (3, 5)
    assert c.group.tolist() == [0, 0, 1] and c.texts == a.texts + b.texts
    assert c.ref_logp is None and c.old_logp is not None and c.old_topk_ids.shape == (3, 5, 3)
    assert int(c.prompt_ids[2, 0]) == 9  # padded with the parts' pad id
    for part, rows in ((a, [0, 1]), (b, [2])):
        back = c.rows(torch.tensor(rows))
        for name in (
            "prompt_ids",
            "prompt_mask",
            "response_ids",
            "response_mask",
            "logprobs",
            "old_logp",
            "old_topk_ids",
            "advantages",
            "correct",
            "lengths",
        ):
            assert torch.equal(getattr(back, name), getattr(part, name)), name
    with pytest.raises(ValueError):
        Rollouts.cat([])


def test_group_order_puts_each_groups_rows_together():
    r = _rollouts([[1], [2], [1], [3], [2]], [[4]] * 5, [5, 2, 5, 7, 2])
    order = r.group_order()
    assert order.tolist() == [0, 2, 1, 4, 3]
    assert [g.tolist() for g in r.group_rows()] == [[0, 2], [1, 4], [3]]
    assert r.rows(order).group.tolist() == [5, 5, 2, 2, 7]


def test_wrongly_shaped_training_field_is_caught():
    r = _rollouts([[1]], [[2, 3]], [0])
    r.old_logp = torch.zeros(1, 3)
    with pytest.raises(AssertionError, match="old_logp"):
        r.check()
