"""How the engine's forward pass attends: each sequence's keys and values, and the attention function
registered with transformers' `AttentionInterface` that the engine's passes run (see `engine.py`).

- `SequenceCache` + per-sequence attention (`attention="exact"`, CPU): each sequence attends over its own
  exact-length cache with its own kernel call, whatever else is in the pass: batch-invariant.
- `SlotCache` + `DecodeBatch` (`attention="batched"`, CUDA): the decoding rows of a pass attend in one
  call over one tensor per layer holding every sequence's keys and values, with a length mask.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from transformers import AttentionInterface

from taiyi_ray.model.factory import unwrapped

ENGINE_ATTENTION = "taiyi_engine"


class SequenceCache:
    """One sequence's keys and values per layer, [kv_heads, capacity, head_dim], grown by doubling."""

    def __init__(self) -> None:
        self._keys: dict[int, torch.Tensor] = {}
        self._values: dict[int, torch.Tensor] = {}
        self._lengths: dict[int, int] = {}

    @property
    def length(self) -> int:
        """Tokens cached so far (the position of the next token)."""
        return self._lengths.get(0, 0)

    def append(
        self, layer: int, keys: torch.Tensor, values: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Store `keys`/`values` ([kv_heads, tokens, head_dim]) of `layer`; all of the layer's so far."""
        length = self._lengths.get(layer, 0)
        new = keys.shape[1]
        if layer not in self._keys or length + new > self._keys[layer].shape[1]:
            self._grow(layer, keys, values, length + new)
        self._keys[layer][:, length : length + new] = keys
        self._values[layer][:, length : length + new] = values
        self._lengths[layer] = length + new
        return self._keys[layer][:, : length + new], self._values[layer][:, : length + new]

    def _grow(self, layer: int, keys: torch.Tensor, values: torch.Tensor, needed: int) -> None:
        capacity = max(16, needed * 2)
        length = self._lengths.get(layer, 0)
        for store, like in ((self._keys, keys), (self._values, values)):
            grown = like.new_empty((like.shape[0], capacity, like.shape[2]))
            if layer in store:
                grown[:, :length] = store[layer][:, :length]
            store[layer] = grown


class SlotCache:
    """The keys and values of up to `slots` sequences, one [slots, kv_heads, capacity, head_dim] tensor per
    layer (zeroed, grown by doubling), so that `DecodeBatch` attends for all of them in one call."""

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self._free = list(range(slots - 1, -1, -1))
        self.keys: dict[int, torch.Tensor] = {}
        self.values: dict[int, torch.Tensor] = {}

    def take(self) -> SlotSequence:
        return SlotSequence(self, self._free.pop())

    def give_back(self, sequence: SlotSequence) -> None:
        self._free.append(sequence.slot)

    def reserve(self, layer: int, like: torch.Tensor, needed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The layer's key and value stores, holding at least `needed` positions (`like`: [kv_heads, rows,
        head_dim], their dtype and device). Zeroed: a masked-out value must not be NaN (0 x NaN is NaN)."""
        current = self.keys.get(layer)
        if current is None or current.shape[2] < needed:
            capacity = max(64, needed * 2)
            for store in (self.keys, self.values):
                grown = like.new_zeros((self.slots, like.shape[0], capacity, like.shape[2]))
                if layer in store:
                    grown[:, :, : store[layer].shape[2]] = store[layer]
                store[layer] = grown
        return self.keys[layer], self.values[layer]


@dataclass(eq=False)
class SlotSequence:
    """One sequence's slot in a `SlotCache`; `length` (cached tokens) advances after each pass."""

    store: SlotCache
    slot: int
    length: int = 0

    def append(
        self, layer: int, keys: torch.Tensor, values: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """As `SequenceCache.append` (a prefill: its own rows go in at `length`)."""
        end = self.length + keys.shape[1]
        key_store, value_store = self.store.reserve(layer, keys, end)
        key_store[self.slot, :, self.length : end] = keys
        value_store[self.slot, :, self.length : end] = values
        return key_store[self.slot, :, :end], value_store[self.slot, :, :end]


@dataclass(frozen=True)
class DecodeBatch:
    """The decoding rows of a batched pass (its first rows, one per sequence): their slots, the position
    each writes, and the mask of the cached positions each attends to ([rows, 1, 1, longest])."""

    store: SlotCache
    slots: torch.Tensor
    positions: torch.Tensor
    mask: torch.Tensor

    @classmethod
    def of(cls, caches: Sequence[SlotSequence], device: torch.device) -> DecodeBatch:
        positions = torch.tensor([cache.length for cache in caches], device=device)
        longest = max(cache.length for cache in caches) + 1
        mask = torch.arange(longest, device=device)[None, :] <= positions[:, None]
        slots = torch.tensor([cache.slot for cache in caches], device=device)
        return cls(caches[0].store, slots, positions, mask[:, None, None, :])

    def attend(
        self, layer: int, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, scaling: float | None
    ) -> torch.Tensor:
        """Store the rows' keys and values, then attend for all rows at once -> [1, heads, rows, dim]."""
        rows, longest = self.slots.shape[0], self.mask.shape[-1]
        key_store, value_store = self.store.reserve(layer, key[0], longest)
        key_store[self.slots, :, self.positions] = key[0, :, :rows].transpose(0, 1)
        value_store[self.slots, :, self.positions] = value[0, :, :rows].transpose(0, 1)
        output = torch.nn.functional.scaled_dot_product_attention(
            query[0, :, :rows].transpose(0, 1).unsqueeze(2),
            key_store[self.slots, :, :longest],
            value_store[self.slots, :, :longest],
            attn_mask=self.mask,
            scale=scaling,
            enable_gqa=query.shape[1] != key.shape[1],
        )
        return output.squeeze(2).transpose(0, 1).unsqueeze(0)


@dataclass(frozen=True)
class Segment:
    """A run of consecutive token rows of one pass: one sequence's new tokens (cache None: padding)."""

    start: int
    length: int
    cache: SequenceCache | SlotSequence | None


@dataclass(frozen=True)
class PassPlan:
    """How `engine_attention` splits the pass's rows into sequences (passed to the model as a kwarg)."""

    segments: tuple[Segment, ...]
    decode: DecodeBatch | None = None  # batched attention: the first segments' rows, in one call


def engine_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    taiyi_pass: PassPlan | None = None,
    **kwargs: object,
) -> tuple[torch.Tensor, None]:
    """Causal attention of each sequence over its own cached keys (see the module docstring): the
    decoding rows in one call when the plan has a `DecodeBatch`, every other segment in a call of its own.

    query [1, heads, rows, dim], key/value [1, kv_heads, rows, dim] -> output [1, rows, heads, dim]."""
    if taiyi_pass is None:
        raise RuntimeError(f"the {ENGINE_ATTENTION} attention runs only inside ContinuousBatcher.step")
    layer = int(getattr(module, "layer_idx", 0))
    outputs, segments = [], taiyi_pass.segments
    if taiyi_pass.decode is not None:
        outputs.append(taiyi_pass.decode.attend(layer, query, key, value, scaling))
        segments = segments[taiyi_pass.decode.slots.shape[0] :]
    for segment in segments:
        rows = slice(segment.start, segment.start + segment.length)
        keys, values = key[0, :, rows], value[0, :, rows]
        if segment.cache is not None:
            keys, values = segment.cache.append(layer, keys, values)
        outputs.append(
            torch.nn.functional.scaled_dot_product_attention(
                query[:, :, rows],
                keys.unsqueeze(0),
                values.unsqueeze(0),
                is_causal=segment.length > 1,  # a prefill (the cache was empty) or padding; else one row
                scale=scaling,
                enable_gqa=query.shape[1] != key.shape[1],
            )
        )
    return torch.cat(outputs, dim=2).transpose(1, 2).contiguous(), None


AttentionInterface.register(ENGINE_ATTENTION, engine_attention)


@contextmanager
def engine_attention_on(model: torch.nn.Module) -> Iterator[None]:
    """Switch the model's attention to `engine_attention` for one pass (a training worker's model keeps
    its own implementation outside it)."""
    config = unwrapped(model).config
    previous = config._attn_implementation
    config._attn_implementation = ENGINE_ATTENTION
    try:
        yield
    finally:
        config._attn_implementation = previous


def no_masks(model: torch.nn.Module) -> dict[str, None]:
    """Prepared (absent) masks for every layer type: the engine's attention needs none, and a prebuilt
    mapping stops the model from materialising a [rows, rows] mask it would not use."""
    config = unwrapped(model).config
    return dict.fromkeys(getattr(config, "layer_types", None) or ["full_attention"])
