"""What one decoded sequence is made of: its sampling settings, its token choice, its text and its result.

`taiyi_ray.model.engine.ContinuousBatcher` runs the model; this module holds the per-sequence parts it
and its callers share: `SamplingParams` (max tokens, temperature, top-p, repetition penalty, seed, stop
strings, logprobs), `choose_token` (one row's next token from its own logits and `torch.Generator`),
`IncrementalText` (detokenising and streaming: the streamed deltas of a row always join up to exactly its
final text; held back are a trailing partial UTF-8 character and any tail that could still become a stop
string), `Completion`, `prompt_logprobs` for `echo`, and `OutputGrammar`: constrained decoding to a regular
expression (a JSON schema compiles to one) with outlines-core's token-level DFA index.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch

from taiyi_ray.model.factory import LoadedModel, ModelInterface

log = logging.getLogger(__name__)

REPLACEMENT_CHARACTER = "\ufffd"


@dataclass(frozen=True)
class SamplingParams:
    """How one row is decoded.

    temperature 0 is greedy (argmax); > 0 samples from softmax(logits / temperature) restricted to the
    smallest set of tokens whose probability reaches `top_p`. `seed` seeds the row's own generator (None: a
    fresh random seed). `stop` strings end the row (not included in the text). `logprobs` None: none
    returned; k >= 0: the chosen token's log-probability plus the k most likely alternatives, all from the
    model's raw distribution (log-softmax of the logits, before penalty, temperature and top-p).
    `repetition_penalty` > 1 discourages tokens already in the prompt or output (Hugging Face's rule).
    `grammar` restricts every choice to tokens that keep the text a prefix of its language, and allows the
    end token only once the text is a whole sentence of it.
    """

    max_new_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    logprobs: int | None = None
    grammar: OutputGrammar | None = None

    @property
    def plain_greedy(self) -> bool:
        """The next token is the argmax of the raw logits (which a step computes for all rows at once)."""
        return self.temperature == 0 and self.repetition_penalty == 1.0 and self.grammar is None


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


def end_token_id(loaded: LoadedModel | ModelInterface) -> int:
    """The id of the chat format's end token (one token by construction of the tokenizer)."""
    end_id = loaded.tokenizer.convert_tokens_to_ids(loaded.chat_format.end_token)
    if not isinstance(end_id, int):
        raise ValueError(f"end token {loaded.chat_format.end_token!r} is not a single token: {end_id}")
    return end_id


def argmax_rows(logits: torch.Tensor) -> list[int]:
    """The argmax of every row ([rows, vocabulary]); numpy's on CPU (~12x faster than torch 2.13's over
    150k floats). Exact either way, and per row: the first index of the row's largest value."""
    if logits.device.type == "cpu":
        return [int(index) for index in logits.numpy().argmax(axis=1)]
    return [int(index) for index in logits.argmax(dim=1).tolist()]


def choose_token(
    logits: torch.Tensor, params: SamplingParams, generator: torch.Generator, seen: Sequence[int]
) -> int:
    """One row's next token from its own fp32 logits ([vocabulary]): argmax when greedy, else one draw.

    The repetition penalty (Hugging Face's rule: a seen token's logit divided by the penalty if positive,
    multiplied if negative; `seen` = prompt + generated ids) applies first. A draw is inverse-CDF sampling
    with one uniform number from the row's own generator over softmax(logits / temperature), restricted to
    `top_p`: it depends only on the row's own seed and distribution. (torch.multinomial over a 150k
    vocabulary is ~10x slower here.)"""
    if params.repetition_penalty != 1.0 and seen:
        ids = torch.tensor(sorted(set(seen)), device=logits.device)
        picked = logits[ids]
        penalty = params.repetition_penalty
        logits = logits.clone()
        logits[ids] = torch.where(picked > 0, picked / penalty, picked * penalty)
    if (
        params.temperature < torch.finfo(logits.dtype).tiny
    ):  # 0, or a temperature the logits' dtype rounds to 0
        return argmax_rows(logits.unsqueeze(0))[0]
    # the largest logit first made 0: a tiny temperature then sends the others to -inf, never to NaN
    probs = torch.softmax((logits - logits.max()) / params.temperature, dim=-1)
    if params.top_p < 1.0:
        probs = _nucleus(probs, params.top_p)
    cdf = probs.double().cumsum(dim=-1)
    uniform = torch.rand(1, generator=generator, dtype=torch.float64)
    token = torch.searchsorted(cdf, uniform.to(cdf.device) * cdf[-1], right=True)
    return int(token.clamp(max=probs.shape[-1] - 1))


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


def token_logprob(log_probs: torch.Tensor, token: int, top_k: int) -> TokenLogprob:
    top: tuple[tuple[int, float], ...] = ()
    if top_k > 0:
        values, indices = torch.topk(log_probs, top_k)
        top = tuple(zip(indices.tolist(), values.tolist(), strict=True))
    return TokenLogprob(token, float(log_probs[token]), top)


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
        result.append(token_logprob(log_probs, int(token_ids[position]), top_k))
    return result


class OutputGrammar:
    """A regular language the output must belong to, compiled against one tokenizer's vocabulary.

    outlines-core builds a DFA over token ids (`Index`); each sequence walks it with a `Guide` of its own.
    Only byte-level BPE vocabularies (Qwen2, GPT-2, Llama 3) are mapped: every token is its bytes, read
    through the byte-to-unicode table that those tokenizers use for their token strings."""

    def __init__(self, regex: str, tokenizer, end_id: int) -> None:
        from outlines_core import Index

        self.regex = regex
        self._index = Index(regex, _byte_level_vocabulary(tokenizer, end_id))

    def walker(self) -> GrammarWalker:
        from outlines_core import Guide

        return GrammarWalker(Guide(self._index))


class GrammarWalker:
    """One sequence's position in its grammar: which tokens may come next."""

    def __init__(self, guide) -> None:
        self._guide = guide

    def restrict(self, logits: torch.Tensor) -> torch.Tensor:
        """`logits` with every token the grammar does not allow next set to -inf."""
        allowed = torch.tensor(self._guide.get_tokens(), device=logits.device, dtype=torch.long)
        restricted = torch.full_like(logits, float("-inf"))
        restricted[allowed] = logits[allowed]
        return restricted

    def advance(self, token: int) -> None:
        self._guide.advance(token, return_tokens=False)


# per tokenizer object (weakly: an id() key could be reused by another tokenizer once this one is gone)
_VOCABULARIES: weakref.WeakKeyDictionary[object, dict[int, object]] = weakref.WeakKeyDictionary()


def _byte_level_vocabulary(tokenizer, end_id: int):
    """outlines-core's `Vocabulary` of `tokenizer` (cached per tokenizer object and end token: ~1 s)."""
    from outlines_core import Vocabulary
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    known = _VOCABULARIES.setdefault(tokenizer, {})
    if end_id not in known:
        byte_of = {character: byte for byte, character in bytes_to_unicode().items()}
        special = set(tokenizer.all_special_ids)
        tokens: dict[bytes, list[int]] = {}
        for text, token_id in tokenizer.get_vocab().items():
            if token_id in special or token_id == end_id:
                continue
            if any(character not in byte_of for character in text):
                raise ValueError(
                    f"token {text!r} is not byte-level BPE: constrained decoding maps only byte-level vocabularies"
                )
            tokens.setdefault(bytes(byte_of[character] for character in text), []).append(token_id)
        known[end_id] = Vocabulary(end_id, tokens)
    return known[end_id]
