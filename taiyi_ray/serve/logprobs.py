"""Token log-probabilities in OpenAI's two shapes (chat `logprobs.content`, legacy `logprobs` lists).

A token is shown as its own decoded text; a byte-level token that ends inside a UTF-8 character shows
as U+FFFD and gets `bytes: null`. Log-probabilities are from the model's raw distribution (see
`SamplingParams`). Legacy `top_logprobs` always include the chosen token, so a harness can tell whether
it was the greedy choice. `text_offset` counts characters from the start of the prompt, as OpenAI does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from taiyi_ray.model.generation import REPLACEMENT_CHARACTER, TokenLogprob
from taiyi_ray.serve import schemas


@dataclass(frozen=True)
class Entry:
    """One token of a legacy completion: its text, logprob (None for the first prompt token), top dict."""

    token: str
    logprob: float | None
    top: dict[str, float] | None


def token_text(tokenizer, token_id: int) -> str:
    return tokenizer.decode([token_id], skip_special_tokens=False, clean_up_tokenization_spaces=False)


def token_bytes(text: str) -> list[int] | None:
    return None if REPLACEMENT_CHARACTER in text else list(text.encode("utf-8"))


def chat_logprobs(tokenizer, logprobs: Sequence[TokenLogprob]) -> list[schemas.ChatTokenLogprob]:
    content = []
    for item in logprobs:
        text = token_text(tokenizer, item.token_id)
        top = [
            schemas.TopLogprob(
                token=(alt := token_text(tokenizer, token_id)), logprob=value, bytes=token_bytes(alt)
            )
            for token_id, value in item.top
        ]
        content.append(
            schemas.ChatTokenLogprob(
                token=text, logprob=item.logprob, bytes=token_bytes(text), top_logprobs=top
            )
        )
    return content


def _top_dict(tokenizer, item: TokenLogprob) -> dict[str, float]:
    top = {token_text(tokenizer, token_id): value for token_id, value in item.top}
    top.setdefault(token_text(tokenizer, item.token_id), item.logprob)
    return top


def completion_entries(tokenizer, token_ids: Sequence[int], logprobs: Sequence[TokenLogprob]) -> list[Entry]:
    """Entries of the generated tokens (the chat format's end token, never part of the text, is not one)."""
    return [
        Entry(token_text(tokenizer, item.token_id), item.logprob, _top_dict(tokenizer, item))
        for _, item in zip(token_ids, logprobs, strict=False)
    ]


def prompt_entries(
    tokenizer, token_ids: Sequence[int], logprobs: Sequence[TokenLogprob | None]
) -> list[Entry]:
    """Entries of the prompt tokens; the first has no logprob (nothing precedes it)."""
    entries = []
    for token_id, item in zip(token_ids, logprobs, strict=True):
        text = token_text(tokenizer, token_id)
        entries.append(
            Entry(text, None, None) if item is None else Entry(text, item.logprob, _top_dict(tokenizer, item))
        )
    return entries


def completion_logprobs(entries: Sequence[Entry], start_offset: int = 0) -> schemas.CompletionLogprobs:
    offsets, position = [], start_offset
    for entry in entries:
        offsets.append(position)
        position += len(entry.token)
    return schemas.CompletionLogprobs(
        tokens=[entry.token for entry in entries],
        token_logprobs=[entry.logprob for entry in entries],
        top_logprobs=[entry.top for entry in entries],
        text_offset=offsets,
    )
