"""How the engine's forward pass attends: each sequence's keys and values, and the attention function
registered with transformers' `AttentionInterface` that the engine's passes run (see `engine.py`).

- `SequenceCache` + per-sequence attention (`attention="exact"`, CPU): each sequence attends over its own
  exact-length cache with its own kernel call, whatever else is in the pass: batch-invariant.
- `SlotCache` + `DecodeBatch` (`attention="batched"`, CUDA): the decoding rows of a pass attend in one
  call over one tensor per layer holding every sequence's keys and values, with a length mask.
- `DecodeGraphs` (`attention="batched"`, `graphs=True`): that decoding pass replayed from a CUDA graph
  captured per (row bucket, cache-span bucket), so a step costs one graph launch instead of the eager
  forward's ~hundreds of kernel launches from Python (what bounded a step on an H200: 15.5 ms at batch 1).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

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
        # one more slot that no sequence holds: padding rows of a captured pass write there
        self.scratch = slots
        self.generation = 0  # counts reallocations: a captured graph holds the stores of its generation
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
            self.generation += 1
            for store in (self.keys, self.values):
                grown = like.new_zeros((self.slots + 1, like.shape[0], capacity, like.shape[2]))
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
    def of(
        cls,
        caches: Sequence[SlotSequence],
        device: torch.device,
        rows: int | None = None,
        span: int | None = None,
    ) -> DecodeBatch:
        """The rows of `caches`, padded to `rows` (padding rows: position 0 of the scratch slot) and their
        mask to `span` positions (default: no padding, the longest cache + 1)."""
        store = caches[0].store
        padding = (rows or len(caches)) - len(caches)
        positions = torch.tensor([cache.length for cache in caches] + [0] * padding, device=device)
        span = span or max(cache.length for cache in caches) + 1
        mask = torch.arange(span, device=device)[None, :] <= positions[:, None]
        slots = torch.tensor([cache.slot for cache in caches] + [store.scratch] * padding, device=device)
        return cls(store, slots, positions, mask[:, None, None, :])

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


def run_pass(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    position_ids: torch.Tensor,
    plan: PassPlan,
    logits_to_keep: torch.Tensor | int = 0,
) -> torch.Tensor:
    """Logits ([1, kept rows, vocabulary]) of one engine pass over `input_ids` ([1, rows]) as `plan` lays
    them out (0 keeps every row)."""
    with torch.inference_mode(), engine_attention_on(model):
        output = model(
            input_ids=input_ids,
            position_ids=position_ids,
            attention_mask=no_masks(model),
            use_cache=False,
            logits_to_keep=logits_to_keep,
            taiyi_pass=plan,
        )
    return output.logits  # type: ignore[no-any-return]


def bucket(count: int, floor: int = 1) -> int:
    """The smallest power of two >= `count` (and >= `floor`): the shapes graphs are captured for."""
    return max(floor, 1 << max(0, count - 1).bit_length())


@dataclass(eq=False)
class DecodeGraph:
    """One captured decoding pass: its static inputs, filled before each replay, and its output."""

    input_ids: torch.Tensor  # [1, rows]
    batch: DecodeBatch  # slots and positions [rows], mask [rows, 1, 1, span]
    graph: torch.cuda.CUDAGraph | None = None  # None: replayed eagerly (CPU, where its logic is tested)
    logits: torch.Tensor | None = None  # the captured pass's output, [1, rows, vocabulary]

    @property
    def plan(self) -> PassPlan:
        rows = self.input_ids.shape[1]
        return PassPlan(tuple(Segment(row, 1, None) for row in range(rows)), self.batch)


class DecodeGraphs:
    """The decoding rows of a step as one replay of a captured pass (see the module docstring).

    Rows are padded to a power of two (at most the store's slots) and the attended span to a power of two
    (at least 64), so a few dozen graphs serve every batch. Padding rows feed the end token at position 0
    of the store's scratch slot and are discarded. A graph holds the store's tensors of the time it was
    captured: when the store grows (`SlotCache.generation`), every graph is dropped and recaptured on
    demand. On a CPU nothing is captured and the same static pass runs eagerly."""

    def __init__(self, store: SlotCache, end_id: int) -> None:
        self.store = store
        self.end_id = end_id
        self.captures = 0
        self._graphs: dict[tuple[int, int], DecodeGraph] = {}
        self._generation = store.generation
        self._pool: Any = None  # the memory pool all graphs share (one replays at a time)

    def logits(
        self, model: torch.nn.Module, caches: Sequence[SlotSequence], tokens: Sequence[int]
    ) -> torch.Tensor:
        """Next-token logits ([rows, vocabulary], fp32) of sequences `caches`, each fed `tokens[i]` at
        position `caches[i].length` (their lengths are the caller's to advance)."""
        rows = min(bucket(len(caches)), self.store.slots)
        span = bucket(max(cache.length for cache in caches) + 1, floor=64)
        graph = self._graph_for(model, rows, span)
        self._fill(graph, caches, tokens)
        if graph.graph is None:
            logits = self._run(model, graph)
        else:
            graph.graph.replay()
            assert graph.logits is not None
            logits = graph.logits
        return logits[0, : len(caches)].to(torch.float32, copy=True)  # the next replay overwrites it

    def _graph_for(self, model: torch.nn.Module, rows: int, span: int) -> DecodeGraph:
        if self.store.generation != self._generation:  # the stores were reallocated: every graph is stale
            self._graphs.clear()
            self._generation = self.store.generation
        key = (rows, span)
        if key not in self._graphs:
            graph = self._capture(model, rows, span)
            if self.store.generation != self._generation:  # its warm-up grew the stores: the others are stale
                self._graphs.clear()
                self._generation = self.store.generation
            self._graphs[key] = graph
        return self._graphs[key]

    def _capture(self, model: torch.nn.Module, rows: int, span: int) -> DecodeGraph:
        device = next(model.parameters()).device
        mask = torch.zeros((rows, 1, 1, span), dtype=torch.bool, device=device)
        mask[..., 0] = True  # a padding row attends to its own position 0
        slots = torch.full((rows,), self.store.scratch, dtype=torch.long, device=device)
        positions = torch.zeros(rows, dtype=torch.long, device=device)
        graph = DecodeGraph(
            torch.full((1, rows), self.end_id, dtype=torch.long, device=device),
            DecodeBatch(self.store, slots, positions, mask),
        )
        if device.type == "cuda":
            self._run(model, graph)  # on this stream: the stores grow here if the span needs it
            side = torch.cuda.Stream(device)
            side.wait_stream(torch.cuda.current_stream(device))
            with torch.cuda.stream(side):  # lazy set-up (cuBLAS workspaces...) here, not under capture
                for _ in range(2):
                    self._run(model, graph)
            torch.cuda.current_stream(device).wait_stream(side)
            self._pool = self._pool or torch.cuda.graph_pool_handle()
            graph.graph = torch.cuda.CUDAGraph()
            try:
                # thread_local: another thread of the process touching CUDA meanwhile does not void the capture
                with torch.cuda.graph(graph.graph, pool=self._pool, capture_error_mode="thread_local"):
                    graph.logits = self._run(model, graph)
            except RuntimeError as error:
                raise RuntimeError(
                    f"capturing the decoding pass ({rows} rows, span {span}) in a CUDA graph failed: {error}; "
                    "decode eagerly with serve.cuda_graphs: false"
                ) from error
        self.captures += 1
        return graph

    def _fill(self, graph: DecodeGraph, caches: Sequence[SlotSequence], tokens: Sequence[int]) -> None:
        rows, span = graph.input_ids.shape[1], graph.batch.mask.shape[-1]
        batch = DecodeBatch.of(caches, torch.device("cpu"), rows, span)
        graph.input_ids[0].copy_(torch.tensor([*tokens] + [self.end_id] * (rows - len(caches))))
        graph.batch.slots.copy_(batch.slots)
        graph.batch.positions.copy_(batch.positions)
        graph.batch.mask.copy_(batch.mask)

    @staticmethod
    def _run(model: torch.nn.Module, graph: DecodeGraph) -> torch.Tensor:
        return run_pass(model, graph.input_ids, graph.batch.positions.view(1, -1), graph.plan)


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
