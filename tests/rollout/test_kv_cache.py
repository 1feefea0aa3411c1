"""kv_cache: the version range, the cache argument, row selection, column cuts and merges."""

from __future__ import annotations

import pytest
import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from passk.rollout import kv_cache


def _cache(rows: int, width: int, *, layers: int = 2, fill: float | None = None) -> DynamicCache:
    """A cache of [rows, 2 heads, width, 4] keys/values; values encode (row, position)."""
    data = []
    for layer in range(layers):
        k = torch.arange(width, dtype=torch.float32).expand(rows, 2, width).unsqueeze(-1)
        k = k.repeat(1, 1, 1, 4) + 100 * torch.arange(rows).view(rows, 1, 1, 1)
        k = k + 1000 * layer if fill is None else torch.full_like(k, fill)
        data.append((k.clone(), -k.clone()))
    return DynamicCache(ddp_cache_data=data)


def _keys(cache: DynamicCache, layer: int = 0) -> torch.Tensor:
    return list(cache)[layer][0]


def test_version_range():
    assert kv_cache.version_supported("5.24.0")
    assert kv_cache.version_supported(".".join(map(str, kv_cache.TRANSFORMERS_MIN)) + ".0")
    assert not kv_cache.version_supported(".".join(map(str, kv_cache.TRANSFORMERS_BELOW)))
    assert not kv_cache.version_supported("4.40.1")


def test_unsupported_version_falls_back_and_warns_once(monkeypatch):
    import transformers

    monkeypatch.setattr(transformers, "__version__", "9.0.0")
    monkeypatch.setattr(kv_cache, "_warned", set())
    with pytest.warns(RuntimeWarning, match=r"9\.0\.0.*static batches") as record:
        assert not kv_cache.can_merge(_cache(2, 3))
        assert not kv_cache.can_merge(_cache(2, 3))
    assert len(record) == 1


def test_can_merge_only_plain_dynamic_layers(monkeypatch):
    monkeypatch.setattr(kv_cache, "_warned", set())
    assert kv_cache.can_merge(_cache(2, 3))

    class Sliding(DynamicLayer):
        pass

    odd = _cache(2, 3)
    odd.layers = [Sliding() for _ in odd.layers]
    with pytest.warns(RuntimeWarning, match="not a plain DynamicCache"):
        assert not kv_cache.can_merge(odd)
    with pytest.warns(RuntimeWarning, match="not a plain DynamicCache"):
        assert not kv_cache.can_merge(object())


def test_cache_kwargs_follow_the_forward_signature():
    class New(torch.nn.Module):
        def forward(self, input_ids, cache=None, use_cache=None): ...

    class Old(torch.nn.Module):
        def forward(self, input_ids, past_key_values=None, use_cache=None): ...

    class Wrapper(torch.nn.Module):  # as peft's: forward(**kwargs) over the real model
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def get_base_model(self):
            return self.inner

        def forward(self, input_ids=None, **kwargs): ...

    c = object()
    assert kv_cache.cache_kwargs(New(), c) == {"cache": c, "use_cache": True}
    assert kv_cache.cache_kwargs(Old(), c) == {"past_key_values": c, "use_cache": True}
    assert kv_cache.cache_kwargs(Wrapper(New()), c) == {"cache": c, "use_cache": True}


def test_select_rows_and_drop_columns():
    cache = _cache(3, 5)
    before = _keys(cache).clone()
    kv_cache.select_rows(cache, torch.tensor([2, 0]))
    assert torch.equal(_keys(cache), before[[2, 0]])
    cache = _cache(3, 5)
    kv_cache.select_rows(cache, torch.tensor([1]), drop_columns=2)
    assert torch.equal(_keys(cache), before[[1], :, 2:])
    assert torch.equal(_keys(cache, 1), before[[1], :, 2:] + 1000)
    assert kv_cache.width(cache) == 3


def test_merge_left_pads_the_narrower_cache():
    a, b = _cache(2, 5), _cache(1, 3, fill=7.0)
    keys_a = _keys(a).clone()
    mask_a = torch.ones(2, 5, dtype=torch.long)
    mask_b = torch.tensor([[0, 1, 1]])
    merged, mask = kv_cache.merge(a, mask_a, b, mask_b)
    keys = _keys(merged)  # [3, 2, 5, 4]
    assert keys.shape == (3, 2, 5, 4) and kv_cache.width(merged) == 5
    assert torch.equal(keys[:2], keys_a)
    assert torch.equal(list(merged)[1][1][:2], -(keys_a + 1000))  # values, second layer
    assert (keys[2, :, :3] == 0).all() and (keys[2, :, 3:] == 7).all()  # b's dead column cut
    assert mask.tolist() == [[1] * 5, [1] * 5, [0, 0, 0, 1, 1]]
    # the other way round: a narrower running cache is padded instead
    merged, mask = kv_cache.merge(_cache(1, 3, fill=7.0), mask_b, _cache(2, 5), mask_a)
    assert mask.tolist() == [[0, 0, 0, 1, 1], [1] * 5, [1] * 5]
    assert (_keys(merged)[0, :, :2] == 0).all() and torch.equal(_keys(merged)[1:], keys_a)


def test_merge_cuts_dead_leading_columns():
    a, b = _cache(2, 6), _cache(1, 3, fill=7.0)
    keys_a = _keys(a).clone()
    mask_a = torch.tensor([[0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 1, 1]])  # 2 dead columns
    merged, mask = kv_cache.merge(a, mask_a, b, torch.ones(1, 3, dtype=torch.long))
    assert mask.tolist() == [[0, 1, 1, 1], [1, 1, 1, 1], [0, 1, 1, 1]]
    assert torch.equal(_keys(merged)[:2], keys_a[:, :, 2:])
    assert (_keys(merged)[2, :, :1] == 0).all() and (_keys(merged)[2, :, 1:] == 7).all()


def test_merge_rejects_unmergeable():
    with pytest.raises(ValueError, match="cannot merge"):
        kv_cache.merge(_cache(1, 2), torch.ones(1, 2), object(), torch.ones(1, 2))


def test_leading_dead_columns():
    assert kv_cache.leading_dead_columns(torch.tensor([[0, 0, 1], [0, 1, 1]])) == 1
    assert kv_cache.leading_dead_columns(torch.tensor([[1, 1], [0, 1]])) == 0
    assert kv_cache.leading_dead_columns(torch.zeros(2, 3, dtype=torch.long)) == 3


def _prefill(ids: list[int], widths: list[int], layers: int = 2):
    """A filled cache for sequences ``ids`` (prompt lengths ``widths``, left-padded) and its
    mask; key at a real position encodes (sequence, position, layer); padding is 0."""
    W = max(widths)
    mask = torch.zeros(len(ids), W, dtype=torch.long)
    data = []
    for layer in range(layers):
        k = torch.zeros(len(ids), 2, W, 4)
        for r, (i, w) in enumerate(zip(ids, widths)):
            mask[r, W - w :] = 1
            k[r, :, W - w :] = (
                1000 * i + torch.arange(w, dtype=torch.float32).view(1, w, 1) + 0.5 * layer
            )
        data.append((k, -k))
    return DynamicCache(ddp_cache_data=data), mask


def _live(keys: torch.Tensor, mask: torch.Tensor, row: int) -> torch.Tensor:
    return keys[row][:, mask[row].bool()]


def test_slots_match_the_concatenating_cache_over_random_streams():
    # the same stream of refills, decoding steps, departures and column cuts through the
    # reference (DynamicCache + merge/select_rows) and through Slots, with a slack small
    # enough that the slots compact and widen many times: every live row's attended keys
    # and values agree, layer by layer
    gen = torch.Generator().manual_seed(0)
    for trial in range(6):
        capacity, next_id, grew = 5, 0, False
        ids = list(range(3))
        next_id = 3
        widths = torch.randint(1, 6, (3,), generator=gen).tolist()
        ref, ref_mask = _prefill(ids, widths)
        c, s_mask = _prefill(ids, widths)
        # live blocks here are at most 11 prompt columns + 40 steps wide
        limit = 51 if trial % 2 else None
        slots = kv_cache.Slots(c, capacity, slack=1 + trial % 3, limit=limit)
        ref_ids, slot_ids = list(ids), list(ids)
        columns0 = slots.columns
        for step in range(40):
            # one decoding step: each sequence appends a key encoding (id, step)
            def new_keys(order, layer, step=step):
                k = torch.tensor([[1e6 * i + step + 0.5 * layer] for i in order])
                return k.view(-1, 1, 1, 1).expand(-1, 2, 1, 4).clone()

            for layer in range(2):
                k = new_keys(ref_ids, layer)
                ref.layers[layer].keys = torch.cat([ref.layers[layer].keys, k], 2)
                ref.layers[layer].values = torch.cat([ref.layers[layer].values, -k], 2)
                k = new_keys(slot_ids, layer)
                slots.cache.layers[layer].update(k, -k, layer)
            slots.advance()
            ref_mask = torch.cat([ref_mask, ref_mask.new_ones(len(ref_ids), 1)], 1)
            s_mask = torch.cat([s_mask, s_mask.new_ones(len(slot_ids), 1)], 1)
            # departures
            gone = {i for i in ref_ids if torch.rand(1, generator=gen).item() < 0.3}
            keep_ref = torch.tensor([i not in gone for i in ref_ids])
            order = keep_ref.nonzero().squeeze(1)
            ref_mask = ref_mask[order]
            dead = kv_cache.leading_dead_columns(ref_mask) if len(order) else 0
            kv_cache.select_rows(ref, order, drop_columns=dead)
            ref_mask, ref_ids = ref_mask[:, dead:], [ref_ids[j] for j in order.tolist()]
            order = slots.drop(torch.tensor([i not in gone for i in slot_ids]))
            s_mask, slot_ids = s_mask[order], [slot_ids[j] for j in order.tolist()]
            dead = kv_cache.leading_dead_columns(s_mask) if len(order) else s_mask.shape[1]
            slots.cut(dead)
            s_mask = s_mask[:, dead:]
            assert sorted(ref_ids) == sorted(slot_ids)
            # a refill into the free slots; the last steps drain, in buffers that shrink
            free = slots.capacity - len(slot_ids)
            if step >= 30:
                slots.shrink()
                assert slots.capacity == max(1, len(slot_ids)) == slots.layers[1].vbuf.shape[0]
            elif free and (torch.rand(1, generator=gen).item() < 0.5 or not slot_ids):
                b = int(torch.randint(1, free + 1, (1,), generator=gen))
                new = list(range(next_id, next_id + b))
                next_id += b
                widths = torch.randint(1, 12, (b,), generator=gen).tolist()
                if ref_ids:
                    c, m = _prefill(new, widths)
                    ref, ref_mask = kv_cache.merge(ref, ref_mask, c, m)
                else:
                    ref, ref_mask = _prefill(new, widths)
                ref_ids += new
                c, m = _prefill(new, widths)
                s_mask = slots.admit(c, s_mask if slot_ids else None, m)
                slot_ids += new
            grew = grew or slots.columns > columns0
            if limit is not None:
                assert slots.columns <= limit + slots.slack
            assert slots.rows == len(slot_ids) and s_mask.shape == (slots.rows, slots.width())
            if not slot_ids:
                continue
            for layer in range(2):
                rk, rv = ref.layers[layer].keys, ref.layers[layer].values
                sk, sv = slots.cache.layers[layer].keys, slots.cache.layers[layer].values
                assert sk.shape[2] == slots.width() == kv_cache.width(slots.cache)
                for i in slot_ids:
                    r, s = ref_ids.index(i), slot_ids.index(i)
                    assert torch.equal(_live(rk, ref_mask, r), _live(sk, s_mask, s))
                    assert torch.equal(_live(rv, ref_mask, r), _live(sv, s_mask, s))
        assert grew, "the stream should have outgrown the first buffers"


def test_slots_write_in_place_and_reject_what_does_not_fit():
    c, _ = _prefill([0, 1], [3, 2])
    slots = kv_cache.Slots(c, 3, slack=4)
    buf = slots.layers[0].kbuf
    k = torch.ones(2, 2, 1, 4)
    slots.cache.layers[0].update(k, k, 0)
    slots.cache.layers[1].update(k, k, 1)
    slots.advance()
    assert slots.layers[0].kbuf is buf and kv_cache.width(slots.cache) == 4  # no new buffer
    with pytest.raises(ValueError, match="3 rows of keys for 2 live slots"):
        slots.cache.layers[0].update(torch.ones(3, 2, 1, 4), torch.ones(3, 2, 1, 4), 0)
    c, m = _prefill([2, 3], [2, 2])
    with pytest.raises(ValueError, match="2 \\+ 2 rows do not fit 3 slots"):
        slots.admit(c, torch.ones(2, 4, dtype=torch.long), m)
    with pytest.raises(ValueError, match="cannot cut 5 of 4 columns"):
        slots.cut(5)
    with pytest.raises(ValueError, match="cannot take over"):
        kv_cache.Slots(object(), 3)
    with pytest.raises(ValueError, match="keep has shape"):
        slots.drop(torch.ones(3, dtype=torch.bool))
