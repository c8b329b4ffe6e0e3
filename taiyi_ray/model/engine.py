"""The one inference engine: continuous (iteration-level) batching over a Hugging Face causal LM.

Serve replicas, the evaluation job's Ray Data actors and validation inside training workers all decode
through `ContinuousBatcher`, so a model scored offline and the same model behind the endpoint produce the
same tokens. Sequences join and leave the running batch at every step: a step admits waiting sequences
(whole prompts, within `max_step_tokens` and `max_sequences`), then runs ONE forward pass over the
prompts being prefilled and the last token of every running sequence, all laid end to end in one row
(no padding), and chooses each sequence's next token with its own `SamplingParams`.

Batch invariance (CPU fp32): a sequence's tokens do not depend on what else is in the batch.
- Attention is computed per sequence over its own exact-length KV cache (`engine_attention`, registered
  with transformers' `AttentionInterface`): no padding, no mask, the same kernel call whether the
  sequence runs alone or among 31 others.
- Every other layer is row-wise (embeddings, norms, rotary, MLP, LM head), but MKL's fp32 matrix multiply
  gives a row different bits depending on how many rows the call has, below a cut-off that grows with the
  input width (torch 2.13 on these CPUs: stable from 3 rows at width 64, 8 at 128, 12 at 256, 16 at 896
  to 4,864 — Qwen2.5-0.5B's widths — checked up to 2,048 rows). So a pass always has at least `MIN_ROWS`
  = 16 token rows and the LM head at least 16 rows (padding rows attend only to themselves and are
  discarded).
- Prefill is never chunked, so a sequence's own computation is the same in every schedule.
Greedy rows are therefore identical alone and in any batch, and a seeded sampling row draws from its own
`torch.Generator` over its own logits: exact too.

On CUDA the decoding rows attend in ONE call instead (`attention="batched"`, `SlotCache`): every sequence's
keys and values sit in one tensor per layer, and a step gathers them with a length mask. Measured on an
H200 (Qwen2.5-0.5B shape, bf16), the per-sequence loop cost ~1.3 ms per sequence per step in launches
(one sequence 15.5-18.7 ms, 25 sequences 50 ms); batched, 0.03-0.4 ms (one sequence 31-41 ms, 30
sequences 42 ms, in a later call whose cuDNN-on step also took 1.5-2x longer). The rest of a step is the eager
forward's host time. Batched attention is not batch-invariant; the GPU path does not promise it.
With `graphs=True` (`serve.cuda_graphs`) a step's decoding rows are one replay of a CUDA graph
(`DecodeGraphs`: rows and cache span padded to powers of two) and its prompts, if any, one eager pass
after it. Not yet measured on a GPU; the CPU tests run the same static pass eagerly.

`scheduling="static"` is static batching as `model.generate` and the former `@serve.batch` engine did it:
new sequences join only once the running batch is empty, and a row that has ended keeps its slot (fed its
end token, computed and discarded) until the batch's longest row ends. The baseline of
`benchmarks/serve.py`, not for production.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch

from taiyi_ray.model.attention import (
    DecodeBatch,
    DecodeGraphs,
    PassPlan,
    Segment,
    SequenceCache,
    SlotCache,
    SlotSequence,
    run_pass,
)
from taiyi_ray.model.factory import LoadedModel
from taiyi_ray.model.generation import (
    Completion,
    GrammarWalker,
    IncrementalText,
    RowListener,
    SamplingParams,
    TokenLogprob,
    argmax_rows,
    choose_token,
    end_token_id,
    token_logprob,
)

log = logging.getLogger(__name__)

MIN_ROWS = 16
Scheduling = Literal["continuous", "static"]
Attention = Literal["exact", "batched"]


@dataclass(eq=False)
class EngineSequence:
    """One request's row: its settings, listener, random generator, KV cache and output so far."""

    prompt_ids: list[int]
    params: SamplingParams
    listener: RowListener | None
    text: IncrementalText
    generator: torch.Generator
    cache: SequenceCache | SlotSequence = field(default_factory=SequenceCache)
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[TokenLogprob] = field(default_factory=list)
    finish_reason: str | None = None
    result: Completion | None = None
    grammar: GrammarWalker | None = None

    @property
    def needs_text(self) -> bool:
        """Detokenise every step only when streaming or watching for stop strings."""
        return bool(self.params.stop) or bool(self.listener and self.listener.stream)

    def cancelled(self) -> bool:
        return self.listener is not None and self.listener.is_cancelled()


@dataclass
class BatcherStats:
    steps: int = 0
    sequences: int = 0
    largest_batch: int = 0
    prefill_tokens: int = 0


class ContinuousBatcher:
    """Schedules sequences and runs decoding steps over one loaded model; see the module docstring.

    `submit` may be called from any thread; `step`, `run` and `generate` from one thread at a time (the
    one that owns the model)."""

    def __init__(
        self,
        tokenizer,
        end_id: int,
        max_sequences: int = 32,
        max_step_tokens: int = 2048,
        scheduling: Scheduling = "continuous",
        attention: Attention = "exact",
        graphs: bool = False,
    ) -> None:
        if graphs and attention != "batched":
            raise ValueError('graphs=True replays the batched decoding pass: it needs attention="batched"')
        self._tokenizer = tokenizer
        self._slots = SlotCache(max_sequences) if attention == "batched" else None
        self.graphs = DecodeGraphs(self._slots, end_id) if graphs and self._slots is not None else None
        self._end_id = end_id
        self.max_sequences = max_sequences
        self.max_step_tokens = max_step_tokens
        self.scheduling = scheduling
        self._waiting: deque[EngineSequence] = deque()
        self._running: list[EngineSequence] = []
        self._ended_in_batch: list[EngineSequence] = []  # static scheduling: rows that keep their slots
        self._lock = threading.Lock()
        self.stats = BatcherStats()

    @classmethod
    def for_model(
        cls,
        loaded: LoadedModel,
        max_sequences: int = 32,
        max_step_tokens: int = 2048,
        scheduling: Scheduling = "continuous",
        attention: Attention | None = None,
        cuda_graphs: bool = False,
    ) -> ContinuousBatcher:
        """`attention` None: "batched" on CUDA, else "exact"; `cuda_graphs`: replay the decoding rows from
        CUDA graphs on a CUDA model (ignored elsewhere; see the module docstring)."""
        on_cuda = loaded.model.device.type == "cuda"
        chosen = attention or ("batched" if on_cuda else "exact")
        graphs = cuda_graphs and on_cuda and chosen == "batched"
        return cls(
            loaded.tokenizer, end_token_id(loaded), max_sequences, max_step_tokens, scheduling, chosen, graphs
        )

    def submit(
        self, prompt_ids: Sequence[int], params: SamplingParams, listener: RowListener | None = None
    ) -> EngineSequence:
        """Queue one sequence; its listener (if any) hears its deltas and completion."""
        if not prompt_ids:
            raise ValueError("a prompt needs at least one token")
        generator = torch.Generator()
        generator.manual_seed(params.seed if params.seed is not None else secrets.randbits(63))
        sequence = EngineSequence(
            list(prompt_ids), params, listener, IncrementalText(self._tokenizer, params.stop), generator
        )
        if params.grammar is not None:
            sequence.grammar = params.grammar.walker()
        with self._lock:
            self._waiting.append(sequence)
        return sequence

    def has_work(self) -> bool:
        with self._lock:
            return bool(self._waiting or self._running)

    def generate(
        self,
        loaded: LoadedModel,
        prompt_ids: Sequence[Sequence[int]],
        params: SamplingParams | Sequence[SamplingParams],
        listeners: Sequence[RowListener | None] | None = None,
    ) -> list[Completion]:
        """Decode `prompt_ids` to completion (with whatever else is queued), in submission order."""
        many = [params] * len(prompt_ids) if isinstance(params, SamplingParams) else list(params)
        hearers = list(listeners) if listeners is not None else [None] * len(prompt_ids)
        sequences = [
            self.submit(ids, p, listener) for ids, p, listener in zip(prompt_ids, many, hearers, strict=True)
        ]
        while any(sequence.result is None for sequence in sequences):
            self.step(loaded)
        return [sequence.result for sequence in sequences if sequence.result is not None]

    def step(self, loaded: LoadedModel) -> None:
        """Admit, run one forward pass over every running sequence, and advance each by one token."""
        self._drop_cancelled()
        admitted = self._admit()
        decoding = [sequence for sequence in self._running if sequence not in admitted]
        batch = decoding + admitted
        if not batch:
            return
        rows = len(batch) + len(self._ended_in_batch)
        logits = self._forward(loaded, decoding + self._ended_in_batch, admitted)
        best = argmax_rows(logits)
        for index, sequence in enumerate(batch):
            live = index if index < len(decoding) else index + len(self._ended_in_batch)
            self._advance(sequence, logits[live], best[live])
        self._retire([sequence for sequence in batch if sequence.finish_reason is not None])
        self.stats.steps += 1
        self.stats.largest_batch = max(self.stats.largest_batch, rows)

    def _retire(self, ended: list[EngineSequence]) -> None:
        """Take ended rows out of the batch and free their caches; under static scheduling they keep their
        slots until the whole batch has ended."""
        self._running = [sequence for sequence in self._running if sequence.finish_reason is None]
        if self.scheduling == "static" and self._running:
            self._ended_in_batch += [sequence for sequence in ended if sequence.finish_reason != "cancelled"]
            return
        self._free_caches(ended + self._ended_in_batch)
        self._ended_in_batch = []

    def _free_caches(self, sequences: list[EngineSequence]) -> None:
        for sequence in sequences:
            if isinstance(sequence.cache, SlotSequence):
                sequence.cache.store.give_back(sequence.cache)
            sequence.cache = SequenceCache()  # the keys and values are no longer needed

    def abandon(self) -> list[EngineSequence]:
        """Remove every waiting and running sequence (after a failed step) and return them unfinished."""
        with self._lock:
            dropped = [*self._running, *self._waiting]
            self._waiting.clear()
        self._free_caches(self._running + self._ended_in_batch)
        self._running, self._ended_in_batch = [], []
        return dropped

    def _drop_cancelled(self) -> None:
        with self._lock:
            for sequence in [s for s in self._waiting if s.cancelled()]:
                self._waiting.remove(sequence)
                self._finish(sequence, "cancelled")
        cancelled = [s for s in self._running if s.cancelled()]
        for sequence in cancelled:
            self._finish(sequence, "cancelled")
        self._retire(cancelled)

    def _admit(self) -> list[EngineSequence]:
        """Waiting sequences that join now: within the step's token budget and the sequence limit (the
        oldest always joins an empty batch, however long its prompt); static: only into an empty batch."""
        if self.scheduling == "static" and self._running:
            return []
        admitted: list[EngineSequence] = []
        budget = self.max_step_tokens - len(self._running)
        with self._lock:
            while self._waiting and len(self._running) + len(admitted) < self.max_sequences:
                sequence = self._waiting[0]
                cost = len(sequence.prompt_ids)
                if cost > budget and (self._running or admitted):
                    break
                self._waiting.popleft()
                budget -= cost
                if sequence.params.max_new_tokens <= 0:
                    self._finish(sequence, "length")
                    continue
                admitted.append(sequence)
                if self._slots is not None:
                    sequence.cache = self._slots.take()
        self._running += admitted
        self.stats.sequences += len(admitted)
        self.stats.prefill_tokens += sum(len(sequence.prompt_ids) for sequence in admitted)
        return admitted

    def _forward(
        self, loaded: LoadedModel, decoding: list[EngineSequence], admitted: list[EngineSequence]
    ) -> torch.Tensor:
        """Next-token logits ([sequences, vocabulary], fp32) of `decoding + admitted` (a row that has ended,
        under static scheduling, is fed its end token): one pass, or with graphs a replay for `decoding`
        and an eager pass for the prompts."""
        if self.graphs is not None and decoding:
            inputs = [self._next_input(sequence) for sequence in decoding]
            caches = [sequence.cache for sequence in decoding if isinstance(sequence.cache, SlotSequence)]
            parts = [self.graphs.logits(loaded.model, caches, inputs)]
            if admitted:
                parts.append(self._pass(loaded, [], admitted))
            logits = torch.cat(parts)
        else:
            logits = self._pass(loaded, decoding, admitted)
        for sequence, added in [(s, 1) for s in decoding] + [(s, len(s.prompt_ids)) for s in admitted]:
            if isinstance(sequence.cache, SlotSequence):
                sequence.cache.length += added
        return logits

    def _next_input(self, sequence: EngineSequence) -> int:
        return sequence.token_ids[-1] if sequence.finish_reason is None else self._end_id

    def _pass(
        self, loaded: LoadedModel, decoding: list[EngineSequence], admitted: list[EngineSequence]
    ) -> torch.Tensor:
        """One eager pass: every row laid end to end, at least `MIN_ROWS` of them (see the module
        docstring); the last row of each sequence's logits."""
        tokens: list[int] = []
        positions: list[int] = []
        segments: list[Segment] = []
        for sequence in decoding:
            segments.append(Segment(len(tokens), 1, sequence.cache))
            positions.append(sequence.cache.length)
            tokens.append(self._next_input(sequence))
        for sequence in admitted:
            segments.append(Segment(len(tokens), len(sequence.prompt_ids), sequence.cache))
            positions += range(len(sequence.prompt_ids))
            tokens += sequence.prompt_ids
        last_rows = [segment.start + segment.length - 1 for segment in segments]
        if len(tokens) < MIN_ROWS:
            padding = MIN_ROWS - len(tokens)
            segments.append(Segment(len(tokens), padding, None))
            tokens += [self._end_id] * padding
            positions += range(padding)
        kept = last_rows + [last_rows[-1]] * max(0, MIN_ROWS - len(last_rows))
        device = loaded.model.device
        logits = run_pass(
            loaded.model,
            torch.tensor([tokens], device=device),
            torch.tensor([positions], device=device),
            PassPlan(tuple(segments), self._decode_batch(decoding, device)),
            torch.tensor(kept, device=device),
        )
        return logits[0, : len(last_rows)].float()

    def _decode_batch(self, decoding: list[EngineSequence], device: torch.device) -> DecodeBatch | None:
        caches = [sequence.cache for sequence in decoding if isinstance(sequence.cache, SlotSequence)]
        return DecodeBatch.of(caches, device) if self._slots is not None and caches else None

    def _advance(self, sequence: EngineSequence, logits: torch.Tensor, argmax: int) -> None:
        """Choose (`argmax` of `logits`, for a plain greedy row), record and stream `sequence`'s next token;
        finish it if it ends here."""
        params = sequence.params
        if params.plain_greedy:
            token = argmax
        else:
            allowed = logits if sequence.grammar is None else sequence.grammar.restrict(logits)
            token = choose_token(
                allowed, params, sequence.generator, sequence.prompt_ids + sequence.token_ids
            )
        if params.logprobs is not None:
            sequence.logprobs.append(token_logprob(torch.log_softmax(logits, dim=-1), token, params.logprobs))
        if token == self._end_id:
            self._finish(sequence, "stop")
            return
        if sequence.grammar is not None:
            sequence.grammar.advance(token)
        sequence.token_ids.append(token)
        if sequence.needs_text:
            delta = sequence.text.update(sequence.token_ids)
            if delta and sequence.listener is not None and sequence.listener.stream:
                sequence.listener.on_delta(delta)
            if sequence.text.stopped:
                self._finish(sequence, "stop")
                return
        if len(sequence.token_ids) >= params.max_new_tokens:
            self._finish(sequence, "length")

    def _finish(self, sequence: EngineSequence, reason: str) -> None:
        sequence.finish_reason = reason
        if not sequence.text.stopped:
            sequence.text.settle(sequence.token_ids)
        rest = sequence.text.finish()
        sequence.result = Completion(
            sequence.text.text,
            list(sequence.token_ids),
            len(sequence.prompt_ids),
            reason,
            sequence.logprobs if sequence.params.logprobs is not None else None,
        )
        if sequence.listener is not None:
            if rest and sequence.listener.stream:
                sequence.listener.on_delta(rest)
            sequence.listener.on_done(sequence.result)
