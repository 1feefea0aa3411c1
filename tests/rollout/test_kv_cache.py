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
