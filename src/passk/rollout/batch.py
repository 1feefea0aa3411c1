"""The batch type of passk: sampled responses, from the sampler to the update.

:class:`Rollouts` is produced by :func:`passk.rollout.generate.generate` and consumed,
without being unpacked into per-sample objects and padded again, by scoring, the
advantage computation and the policy update. The trainer fills the optional per-row
training fields (advantages, behaviour and reference log-probs, ...) in place; the update
takes sub-batches with :meth:`Rollouts.rows`, and rounds of sampling are merged with
:meth:`Rollouts.cat`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields

import torch
from torch import Tensor

# Optional per-row tensors set by the trainer: name -> number of dims ([B] or [B, T, ...]).
_ROW_FIELDS = ("advantages", "rewards", "correct", "bonus")  # [B]
_TOKEN_FIELDS = ("logprobs", "entropy", "old_logp", "ref_logp", "old_topk_ids", "old_topk_logp")


@dataclass
class Rollouts:
    """Sampled responses; row ``b`` answers the prompt ``group[b]``.

    As the sampler returns them, rows are prompt-major (row ``b`` is sample ``b % n`` of
    prompt ``b // n``); after :meth:`cat` or :meth:`rows` only ``group`` says which rows
    share a prompt.

    Prompts are left-padded to a common width P and responses right-padded to T, so
    ``input_ids = cat([prompt_ids, response_ids], 1)`` is the full sequence and the
    response occupies its last T columns (what :func:`~passk.rollout.logprobs.forward_logprobs`
    expects). Responses include their final stop token (EOS) when there is one. Values
    at padding (ids, log-probs) carry no meaning.
    """

    prompt_ids: Tensor  # [B, P] long, left-padded with the pad id
    prompt_mask: Tensor  # [B, P] bool
    response_ids: Tensor  # [B, T] long, right-padded with the pad id
    response_mask: Tensor  # [B, T] bool
    logprobs: Tensor  # [B, T] float32, sampling-distribution log-probs, 0 at padding
    lengths: Tensor  # [B] long, number of response tokens
    truncated: Tensor  # [B] bool, True when no stop token came within max_new_tokens
    texts: list[str]  # [B] decoded responses, special tokens removed
    group: Tensor  # [B] long, index of the prompt each row answers
    n: int  # samples per prompt as sampled (rounds merged with different n: the largest)
    entropy: Tensor | None = None  # [B, T] float32 when requested, 0 at padding
    seeds: list[int] = field(default_factory=list)  # [B] per-sequence seeds
    # sampler facts for the metrics (e.g. ``rollout/static_fallback``)
    stats: dict[str, float] = field(default_factory=dict)
    # --- training fields, set by the trainer (None until then) ---------------------------
    advantages: Tensor | None = None  # [B] float32
    rewards: Tensor | None = None  # [B] float32
    correct: Tensor | None = None  # [B] bool
    bonus: Tensor | None = None  # [B] float32, answer-level exploration bonus (in advantages)
    old_logp: Tensor | None = None  # [B, T] behaviour log-probs (None: current, detached)
    ref_logp: Tensor | None = None  # [B, T] reference-policy log-probs
    old_topk_ids: Tensor | None = None  # [B, T, K] long, behaviour policy's top tokens
    old_topk_logp: Tensor | None = None  # [B, T, K] their behaviour log-probs

    def __post_init__(self) -> None:
        B, T = self.response_ids.shape
        assert self.prompt_ids.shape[0] == B and self.prompt_mask.shape == self.prompt_ids.shape
        assert self.response_mask.shape == (B, T) and self.logprobs.shape == (B, T)
        assert self.lengths.shape == (B,) and self.truncated.shape == (B,) and len(self.texts) == B
        assert self.group.shape == (B,)
        assert not self.seeds or len(self.seeds) == B
        self.check()

    def check(self) -> None:
        """Assert the optional fields have their documented shapes (after the trainer set them)."""
        B, T = self.response_ids.shape
        for name in _ROW_FIELDS:
            t = getattr(self, name)
            assert t is None or t.shape == (B,), f"{name}: {tuple(t.shape)} != ({B},)"
        for name in _TOKEN_FIELDS:
            t = getattr(self, name)
            assert t is None or t.shape[:2] == (B, T), f"{name}: {tuple(t.shape)} vs ({B}, {T})"

    @property
    def input_ids(self) -> Tensor:
        """Prompt and response, ``[B, P + T]``."""
        return torch.cat([self.prompt_ids, self.response_ids], dim=1)

    @property
    def attention_mask(self) -> Tensor:
        """``[B, P + T]`` bool: real prompt and response tokens."""
        return torch.cat([self.prompt_mask, self.response_mask], dim=1)

    def __len__(self) -> int:
        return len(self.texts)

    # --- sub-batches and merging ---------------------------------------------------------------

    def rows(self, index: Tensor | Sequence[int]) -> Rollouts:
        """The rows ``index`` (in that order), trimmed to the columns they use.

        Prompt columns that are padding in every selected row are dropped (at least one
        prompt column is kept) and so are response columns beyond the longest selected
        response (at least one is kept), so a micro-batch computes no all-padding columns.

        >>> r = Rollouts.from_sequences([[5, 6, 7], [8]], [[1], [2, 3]], group=[0, 1])
        >>> r.prompt_ids.tolist(), r.response_ids.tolist()
        ([[5, 6, 7], [0, 0, 8]], [[1, 0], [2, 3]])
        >>> s = r.rows([1])
        >>> s.prompt_ids.tolist(), s.response_ids.tolist(), s.group.tolist()
        ([[8]], [[2, 3]], [1])
        """
        index = torch.as_tensor(index, dtype=torch.long).reshape(-1)
        pmask, rmask = self.prompt_mask[index], self.response_mask[index]
        used_p = pmask.any(0).nonzero()
        first = min(int(used_p.min()) if len(used_p) else pmask.shape[1] - 1, pmask.shape[1] - 1)
        used_t = rmask.any(0).nonzero()
        t_used = max(int(used_t.max()) + 1 if len(used_t) else 1, 1)
        t_used = min(t_used, rmask.shape[1])
        picks = index.tolist()

        def cut(t: Tensor | None) -> Tensor | None:
            return None if t is None else t[index][:, :t_used]

        def pick(t: Tensor | None) -> Tensor | None:
            return None if t is None else t[index]

        out = Rollouts(
            prompt_ids=self.prompt_ids[index, first:],
            prompt_mask=pmask[:, first:],
            response_ids=self.response_ids[index, :t_used],
            response_mask=rmask[:, :t_used],
            logprobs=self.logprobs[index, :t_used],
            lengths=self.lengths[index],
            truncated=self.truncated[index],
            texts=[self.texts[i] for i in picks],
            group=self.group[index],
            n=self.n,
            entropy=cut(self.entropy),
            seeds=[self.seeds[i] for i in picks] if self.seeds else [],
            stats=dict(self.stats),
        )
        for name in _ROW_FIELDS:
            setattr(out, name, pick(getattr(self, name)))
        for name in _TOKEN_FIELDS[2:]:
            setattr(out, name, cut(getattr(self, name)))
        out.check()
        return out

    @staticmethod
    def cat(parts: Sequence[Rollouts], *, pad_id: int | None = None) -> Rollouts:
        """Rows of ``parts`` one after the other, re-padded to common widths.

        Prompts are left-padded and responses right-padded with ``pad_id`` (None: the pad
        value found in the parts, else 0); token fields with 0. ``group`` ids are kept as
        the parts give them, so parts must use one numbering (rows of one prompt sampled in
        two rounds keep one id). An optional field is kept only when every part has it.
        ``stats`` of the parts are summed; ``n`` is the largest part's.

        >>> a = Rollouts.from_sequences([[5, 6]], [[1]], group=[0])
        >>> b = Rollouts.from_sequences([[7]], [[2, 3, 4]], group=[1])
        >>> c = Rollouts.cat([a, b])
        >>> c.prompt_ids.tolist(), c.response_ids.tolist(), c.group.tolist()
        ([[5, 6], [0, 7]], [[1, 0, 0], [2, 3, 4]], [0, 1])
        """
        if not parts:
            raise ValueError("Rollouts.cat needs at least one part")
        if pad_id is None:
            pad_id = next((v for p in parts if (v := _pad_value(p)) is not None), 0)
        P = max(p.prompt_ids.shape[1] for p in parts)
        T = max(p.response_ids.shape[1] for p in parts)

        def left(ts: list[Tensor], value: float | bool) -> Tensor:
            return torch.cat(
                [torch.nn.functional.pad(t, (P - t.shape[1], 0), value=value) for t in ts]
            )

        def right(ts: list[Tensor | None], value: float | bool = 0) -> Tensor | None:
            if any(t is None for t in ts):
                return None
            out = []
            for t in ts:
                assert t is not None
                pad = [0, 0] * (t.ndim - 2) + [0, T - t.shape[1]]  # dim 1 is the token dim
                out.append(torch.nn.functional.pad(t, pad, value=value))
            return torch.cat(out)

        def rows(name: str) -> Tensor | None:
            ts = [getattr(p, name) for p in parts]
            return None if any(t is None for t in ts) else torch.cat(ts)

        stats: dict[str, float] = {}
        for p in parts:
            for k, v in p.stats.items():
                stats[k] = stats.get(k, 0.0) + v
        response_ids = right([p.response_ids for p in parts], pad_id)
        response_mask = right([p.response_mask for p in parts], False)
        logprobs = right([p.logprobs for p in parts])
        assert response_ids is not None and response_mask is not None and logprobs is not None
        out = Rollouts(
            prompt_ids=left([p.prompt_ids for p in parts], pad_id),
            prompt_mask=left([p.prompt_mask for p in parts], False),
            response_ids=response_ids,
            response_mask=response_mask,
            logprobs=logprobs,
            lengths=torch.cat([p.lengths for p in parts]),
            truncated=torch.cat([p.truncated for p in parts]),
            texts=[t for p in parts for t in p.texts],
            group=torch.cat([p.group for p in parts]),
            n=max(p.n for p in parts),
            entropy=right([p.entropy for p in parts]),
            seeds=[s for p in parts for s in p.seeds] if all(p.seeds for p in parts) else [],
            stats=stats,
        )
        for name in _ROW_FIELDS:
            setattr(out, name, rows(name))
        for name in _TOKEN_FIELDS[2:]:
            setattr(out, name, right([getattr(p, name) for p in parts]))
        out.check()
        return out

    # --- groups --------------------------------------------------------------------------------

    def group_order(self) -> Tensor:
        """Row indices ``[B]`` that put each group's rows together.

        Groups come in order of first appearance, rows of a group in their current order,
        so ``self.rows(self.group_order())`` is the batch with groups contiguous.

        >>> r = Rollouts.from_sequences([[1], [2], [1], [2]], [[3]] * 4, group=[0, 1, 0, 1])
        >>> r.group_order().tolist()
        [0, 2, 1, 3]
        """
        _, inverse = torch.unique(self.group, return_inverse=True)
        B = len(self.group)
        first = torch.full((int(inverse.max()) + 1 if B else 0,), B, dtype=torch.long)
        first = first.scatter_reduce(0, inverse, torch.arange(B), reduce="amin")
        return torch.argsort(first[inverse] * B + torch.arange(B), stable=True)

    def group_rows(self) -> list[Tensor]:
        """Row indices of each group, groups in order of first appearance."""
        order = self.group_order()
        g = self.group[order]
        cuts = (torch.nonzero(g[1:] != g[:-1]).flatten() + 1).tolist()
        return list(torch.tensor_split(order, cuts)) if len(order) else []

    @staticmethod
    def from_sequences(
        prompts: Sequence[Sequence[int]],
        responses: Sequence[Sequence[int]],
        *,
        group: Sequence[int] | None = None,
        pad_id: int = 0,
        n: int = 1,
    ) -> Rollouts:
        """A batch from token lists (tests, stored samples): pads and fills the sampler fields.

        ``logprobs`` are 0, ``texts`` empty strings, ``truncated`` False.
        """
        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
        B = len(prompts)
        P = max((len(p) for p in prompts), default=1)
        T = max((len(r) for r in responses), default=1)
        prompt_ids = torch.full((B, P), pad_id, dtype=torch.long)
        prompt_mask = torch.zeros(B, P, dtype=torch.bool)
        response_ids = torch.full((B, T), pad_id, dtype=torch.long)
        response_mask = torch.zeros(B, T, dtype=torch.bool)
        for b, (p, r) in enumerate(zip(prompts, responses)):
            if len(p):
                prompt_ids[b, P - len(p) :] = torch.as_tensor(list(p))
                prompt_mask[b, P - len(p) :] = True
            if len(r):
                response_ids[b, : len(r)] = torch.as_tensor(list(r))
                response_mask[b, : len(r)] = True
        return Rollouts(
            prompt_ids=prompt_ids,
            prompt_mask=prompt_mask,
            response_ids=response_ids,
            response_mask=response_mask,
            logprobs=torch.zeros(B, T),
            lengths=response_mask.sum(1),
            truncated=torch.zeros(B, dtype=torch.bool),
            texts=[""] * B,
            group=torch.as_tensor(list(group) if group is not None else range(B), dtype=torch.long),
            n=n,
        )


def _pad_value(r: Rollouts) -> int | None:
    """The id found at a padding position of ``r`` (None when it has no padding)."""
    for ids, mask in ((r.prompt_ids, r.prompt_mask), (r.response_ids, r.response_mask)):
        pad = ids[~mask]
        if len(pad):
            return int(pad[0])
    return None


assert {f.name for f in fields(Rollouts)} >= set(_ROW_FIELDS + _TOKEN_FIELDS)
