"""Batched generation with a Hugging Face causal LM: left padding, stopping at the chat format's end token.

Two entry points:

- `generate_batch`: one `model.generate` call over a batch sharing one `GenerationSettings` (evaluation
  actors use it; unchanged behaviour).
- `decode`: our own token-by-token loop over a KV cache, for serving. Each row carries its own
  `SamplingParams` (max tokens, temperature, top-p, seed, stop strings, logprobs), its own
  `torch.Generator` (so a row's random draws never depend on the other rows), and an optional `RowListener`
  that receives streamed text deltas and the finished row as soon as that row ends, not when the batch ends.
  `model.generate` cannot mix per-row settings in one batch, which a server batching unrelated requests must.

Text comes from `IncrementalText`, which is also what streams: the streamed deltas of a row always join up
to exactly its final text (held back: a trailing partial UTF-8 character, and any tail that could still
become a stop string).
"""

from __future__ import annotations

import inspect
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import torch
from transformers import DynamicCache

from taiyi_ray.model.factory import unwrapped
from taiyi_ray.model.inference import LoadedModel

log = logging.getLogger(__name__)

REPLACEMENT_CHARACTER = "\ufffd"


@dataclass(frozen=True)
class GenerationSettings:
    max_new_tokens: int = 128
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    seed: int | None = None


@dataclass(frozen=True)
class Generated:
    text: str
    token_ids: list[int]
    prompt_tokens: int
    finish_reason: str  # "stop": the end token was produced; "length": max_new_tokens reached


def generate_batch(
    loaded: LoadedModel, prompts: Sequence[str], settings: GenerationSettings
) -> list[Generated]:
    """Generate for every prompt (already rendered with the chat format) in one batched call."""
    tokenizer, model = loaded.tokenizer, loaded.model
    tokenizer.padding_side = "left"
    encoded = tokenizer(list(prompts), return_tensors="pt", padding=True, add_special_tokens=False)
    encoded = {key: value.to(model.device) for key, value in encoded.items()}
    end_id = _end_token_id(loaded)
    if settings.seed is not None:
        torch.manual_seed(settings.seed)
    options = {
        "max_new_tokens": settings.max_new_tokens,
        "do_sample": settings.do_sample,
        "eos_token_id": end_id,
        "pad_token_id": tokenizer.pad_token_id,
        "repetition_penalty": settings.repetition_penalty,
    }
    if settings.do_sample:
        options.update(temperature=settings.temperature, top_p=settings.top_p)
    with torch.inference_mode():
        output = model.generate(**encoded, **options)
    prompt_length = encoded["input_ids"].shape[1]
    prompt_tokens = encoded["attention_mask"].sum(dim=1).tolist()
    results = []
    for row, count in zip(output[:, prompt_length:].tolist(), prompt_tokens, strict=True):
        finish = "length"
        if end_id in row:
            row = row[: row.index(end_id)]
            finish = "stop"
        results.append(
            Generated(str(tokenizer.decode(row, skip_special_tokens=True)), row, int(count), finish)
        )
    return results


# -- the serving decoder --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SamplingParams:
    """How one row is decoded.

    temperature 0 is greedy (argmax); > 0 samples from softmax(logits / temperature) restricted to the
    smallest set of tokens whose probability reaches `top_p`. `seed` seeds the row's own generator (None: a
    fresh random seed). `stop` strings end the row (not included in the text). `logprobs` None: none
    returned; k >= 0: the chosen token's log-probability plus the k most likely alternatives, all from the
    model's raw distribution (log-softmax of the logits, before temperature and top-p).
    """

    max_new_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    logprobs: int | None = None


@dataclass(frozen=True)
class TokenLogprob:
    token_id: int
    logprob: float
    top: tuple[tuple[int, float], ...] = ()


@dataclass(frozen=True)
class Completion:
    """A finished row. finish_reason: "stop" (end token or stop string), "length", or "cancelled"."""

    text: str
    token_ids: list[int]
    prompt_tokens: int
    finish_reason: str
    logprobs: list[TokenLogprob] | None = None


class RowListener(Protocol):
    """Receives one row's progress (called from the decoding thread)."""

    stream: bool

    def on_delta(self, text: str) -> None: ...

    def on_done(self, completion: Completion) -> None: ...

    def is_cancelled(self) -> bool: ...


class IncrementalText:
    """Detokenises a growing list of token ids; finds stop strings; yields only text that is final.

    Byte-level BPE tokens can end inside a UTF-8 character, which decodes as U+FFFD until the next token
    completes it, so trailing U+FFFD is held back; so is the last `max(len(stop)) - 1` characters, which
    could be the start of a stop string. The joined deltas equal `text` once `finish()` has been called.
    """

    def __init__(self, tokenizer, stop: Sequence[str] = ()) -> None:
        self._tokenizer = tokenizer
        self._stop = tuple(s for s in stop if s)
        self._holdback = max((len(s) for s in self._stop), default=1) - 1
        self._emitted = ""
        self.text = ""
        self.stopped = False

    def settle(self, token_ids: Sequence[int]) -> None:
        """Set `text` from `token_ids` (all of the row's tokens so far), cut at a stop string (`stopped`)."""
        text = self._decode(token_ids)
        if self._stop:
            cut = min((index for index in (text.find(s) for s in self._stop) if index >= 0), default=-1)
            if cut >= 0:
                self.text, self.stopped = text[:cut], True
                return
        self.text = text

    def update(self, token_ids: Sequence[int]) -> str:
        """`settle`, then the text that has become final since the last call ("" once stopped)."""
        self.settle(token_ids)
        if self.stopped:
            return ""
        text = self.text
        end = len(text) - self._holdback
        while end > 0 and text[end - 1] == REPLACEMENT_CHARACTER:
            end -= 1
        if end <= len(self._emitted) or not text.startswith(self._emitted):
            return ""
        delta = text[len(self._emitted) : end]
        self._emitted += delta
        return delta

    def finish(self) -> str:
        """The rest of the text (call once the row has ended)."""
        if not self.text.startswith(self._emitted):
            log.warning("streamed text %r is not a prefix of the final text %r", self._emitted, self.text)
            return ""
        delta = self.text[len(self._emitted) :]
        self._emitted = self.text
        return delta

    def _decode(self, token_ids: Sequence[int]) -> str:
        return self._tokenizer.decode(
            list(token_ids), skip_special_tokens=True, clean_up_tokenization_spaces=False
        )


@dataclass
class _Row:
    params: SamplingParams
    listener: RowListener | None
    generator: torch.Generator
    prompt_tokens: int
    text: IncrementalText
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[TokenLogprob] = field(default_factory=list)
    finish_reason: str | None = None

    @property
    def needs_text(self) -> bool:
        """Decode every step only when streaming or watching for stop strings."""
        return bool(self.params.stop) or bool(self.listener and self.listener.stream)


def decode(
    loaded: LoadedModel,
    prompt_ids: Sequence[Sequence[int]],
    params: Sequence[SamplingParams],
    listeners: Sequence[RowListener | None] | None = None,
) -> list[Completion]:
    """Decode a batch of tokenised prompts, each row with its own settings; see the module docstring.

    Rows stop at the chat format's end token (not part of the text), a stop string, `max_new_tokens`, or
    when their listener says the request was cancelled. The batch ends when every row has.
    """
    if not prompt_ids:
        return []
    listeners = list(listeners) if listeners is not None else [None] * len(prompt_ids)
    model, tokenizer = loaded.model, loaded.tokenizer
    device = model.device
    end_id = _end_token_id(loaded)
    rows = [
        _new_row(tokenizer, ids, p, listener, device)
        for ids, p, listener in zip(prompt_ids, params, listeners, strict=True)
    ]
    input_ids, attention_mask = _left_pad(prompt_ids, tokenizer.pad_token_id, device)
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    cache = DynamicCache(config=model.config)
    cache_argument = _cache_argument(model)
    for row in rows:
        if row.params.max_new_tokens <= 0:
            _finish(row, "length")
    with torch.inference_mode():
        while not all(row.finish_reason for row in rows):
            output = model(
                input_ids=input_ids,
                attention_mask=attention_mask,
                position_ids=position_ids,
                **{cache_argument: cache},
                use_cache=True,
                logits_to_keep=1,
            )
            tokens = _step(output.logits[:, -1, :].float(), rows, end_id, tokenizer)
            input_ids = torch.tensor([[token] for token in tokens], device=device)
            attention_mask = torch.cat([attention_mask, attention_mask.new_ones((len(rows), 1))], dim=1)
            position_ids = position_ids[:, -1:] + 1
    return [_completion(row) for row in rows]


def _end_token_id(loaded: LoadedModel) -> int:
    """The id of the chat format's end token (one token by construction of the tokenizer)."""
    end_id = loaded.tokenizer.convert_tokens_to_ids(loaded.chat_format.end_token)
    if not isinstance(end_id, int):
        raise ValueError(f"end token {loaded.chat_format.end_token!r} is not a single token: {end_id}")
    return end_id


def _cache_argument(model) -> str:
    """The KV-cache keyword of the model's forward: `cache` from transformers 5.2x (`past_key_values` is then
    deprecated, removal announced for 5.40), `past_key_values` before. Remove once transformers>=5.24 is
    the floor everywhere (the GPU image has 5.17)."""
    base = unwrapped(model)
    return "cache" if "cache" in inspect.signature(type(base).forward).parameters else "past_key_values"


def _new_row(
    tokenizer, ids: Sequence[int], params: SamplingParams, listener: RowListener | None, device
) -> _Row:
    generator = torch.Generator(device=device)
    generator.manual_seed(params.seed if params.seed is not None else secrets.randbits(63))
    return _Row(params, listener, generator, len(ids), IncrementalText(tokenizer, params.stop))


def _left_pad(prompt_ids: Sequence[Sequence[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(ids) for ids in prompt_ids)
    input_ids = torch.full((len(prompt_ids), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(prompt_ids), width), dtype=torch.long)
    for index, ids in enumerate(prompt_ids):
        if ids:
            input_ids[index, width - len(ids) :] = torch.tensor(list(ids), dtype=torch.long)
            attention_mask[index, width - len(ids) :] = 1
    return input_ids.to(device), attention_mask.to(device)


def _step(logits: torch.Tensor, rows: list[_Row], end_id: int, tokenizer) -> list[int]:
    """Choose each active row's next token, record it, and finish rows that end. Returns the next inputs."""
    for row in rows:
        if not row.finish_reason and row.listener is not None and row.listener.is_cancelled():
            _finish(row, "cancelled")
    active = [index for index, row in enumerate(rows) if not row.finish_reason]
    chosen = _choose(logits, rows, active)
    wants_logprobs = [index for index in active if rows[index].params.logprobs is not None]
    log_probs = torch.log_softmax(logits[wants_logprobs], dim=-1) if wants_logprobs else None
    next_tokens = [end_id] * len(rows)  # a finished row's further outputs are never read
    for index in active:
        row, token = rows[index], chosen[index]
        next_tokens[index] = token
        if log_probs is not None and row.params.logprobs is not None:
            row.logprobs.append(
                _token_logprob(log_probs[wants_logprobs.index(index)], token, row.params.logprobs)
            )
        _advance(row, token, end_id)
    return next_tokens


def _choose(logits: torch.Tensor, rows: list[_Row], active: list[int]) -> dict[int, int]:
    """Next token of each active row: argmax for greedy rows, one draw for sampling rows."""
    greedy = [index for index in active if rows[index].params.temperature == 0]
    sampled = [index for index in active if rows[index].params.temperature != 0]
    chosen: dict[int, int] = {}
    if greedy:
        # argmax over all rows: indexing the greedy rows first would copy [rows, vocabulary] floats
        best = logits.argmax(dim=-1).tolist()
        chosen.update((index, best[index]) for index in greedy)
    if sampled:
        chosen.update(zip(sampled, _sample([rows[index] for index in sampled], logits[sampled]), strict=True))
    return chosen


def _sample(rows: list[_Row], logits: torch.Tensor) -> list[int]:
    """One draw per row from softmax(logits / temperature), nucleus-restricted to `top_p`.

    Inverse-CDF sampling with a single uniform number from the row's own generator, so a row's draw depends
    only on its own seed and distribution. (torch.multinomial over a 150k vocabulary is ~10x slower here.)
    """
    temperatures = torch.tensor([row.params.temperature for row in rows], device=logits.device)
    probs = torch.softmax(logits / temperatures[:, None], dim=-1)
    for index, row in enumerate(rows):
        if row.params.top_p < 1.0:
            probs[index] = _nucleus(probs[index], row.params.top_p)
    cdf = probs.double().cumsum(dim=-1)
    uniforms = torch.cat(
        [torch.rand(1, generator=row.generator, device=logits.device, dtype=torch.float64) for row in rows]
    )
    targets = (uniforms * cdf[:, -1]).unsqueeze(1)
    tokens = torch.searchsorted(cdf, targets, right=True).clamp(max=probs.shape[-1] - 1)
    return tokens.squeeze(1).tolist()


def _nucleus(probs: torch.Tensor, top_p: float, first_k: int = 256) -> torch.Tensor:
    """`probs` with everything outside the smallest set of most likely tokens reaching `top_p` zeroed.

    The set nearly always lies within the top few hundred tokens, so those are sorted first (a full sort of
    a 150k vocabulary costs ~10 ms on a CPU); the full sort is the fallback.
    """
    k = min(first_k, probs.shape[-1])
    values, order = torch.topk(probs, k)
    if values.sum() < top_p and k < probs.shape[-1]:
        values, order = torch.sort(probs, descending=True)
    keep = (values.cumsum(dim=-1) - values) < top_p
    return torch.zeros_like(probs).scatter_(0, order[keep], values[keep])


def _token_logprob(log_probs: torch.Tensor, token: int, top_k: int) -> TokenLogprob:
    top: tuple[tuple[int, float], ...] = ()
    if top_k > 0:
        values, indices = torch.topk(log_probs, top_k)
        top = tuple(zip(indices.tolist(), values.tolist(), strict=True))
    return TokenLogprob(token, float(log_probs[token]), top)


def _advance(row: _Row, token: int, end_id: int) -> None:
    """Record `token` for `row`, stream the new final text, and finish the row when it ends here."""
    if token == end_id:
        _finish(row, "stop")
        return
    row.token_ids.append(token)
    if row.needs_text:
        delta = row.text.update(row.token_ids)
        if delta and row.listener is not None and row.listener.stream:
            row.listener.on_delta(delta)
        if row.text.stopped:
            _finish(row, "stop")
            return
    if len(row.token_ids) >= row.params.max_new_tokens:
        _finish(row, "length")


def _finish(row: _Row, reason: str) -> None:
    row.finish_reason = reason
    if not row.text.stopped:
        row.text.settle(row.token_ids)
    if row.listener is not None:
        rest = row.text.finish()
        if rest and row.listener.stream:
            row.listener.on_delta(rest)
        row.listener.on_done(_completion(row))


def _completion(row: _Row) -> Completion:
    logprobs = row.logprobs if row.params.logprobs is not None else None
    return Completion(
        row.text.text, list(row.token_ids), row.prompt_tokens, row.finish_reason or "length", logprobs
    )


def prompt_logprobs(loaded: LoadedModel, token_ids: Sequence[int], top_k: int) -> list[TokenLogprob | None]:
    """Log-probability of each prompt token given the ones before it (None for the first), with top-k.

    One forward pass over the whole prompt (batch of one): what `echo` + `logprobs` needs to score a
    continuation by likelihood. Peak memory is about len(token_ids) x vocabulary floats.
    """
    if not token_ids:
        return []
    model = loaded.model
    ids = torch.tensor([list(token_ids)], device=model.device)
    with torch.inference_mode():
        logits = model(input_ids=ids, use_cache=False).logits[0].float()
    result: list[TokenLogprob | None] = [None]
    for position in range(1, len(token_ids)):
        log_probs = torch.log_softmax(logits[position - 1], dim=-1)
        result.append(_token_logprob(log_probs, int(token_ids[position]), top_k))
    return result
