"""What a generator returns per item, and the generation settings as the model layer takes them."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from taiyi_ray.config.evaluation import GenerationConfig
from taiyi_ray.model.generation import SamplingParams


@dataclass(frozen=True)
class RawOutput:
    """A model's (or the oracle's) answer text for one prompt, before parsing.

    `finish_reason` is "stop" (the end token came) or "length" (max_new_tokens ran out); token counts
    are None where the generator does not know them (the oracle).
    """

    text: str
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    output_tokens: int | None = None
    corrupted: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> RawOutput:
        """Read a cache line back (the `corrupted` flag is never cached)."""
        return cls(
            text=str(value["text"]),
            finish_reason=value.get("finish_reason"),
            prompt_tokens=value.get("prompt_tokens"),
            output_tokens=value.get("output_tokens"),
        )


@dataclass(frozen=True)
class Request:
    """One prompt to generate for: its set, cache key and conversation (as JSON, for Arrow blocks)."""

    set_name: str
    key: str
    messages_json: str


OnResult = Callable[[str, str, "RawOutput", float], None]
"""Called per finished prompt with (set name, prompt key, output, seconds): the wall seconds this item
accounts for — its share of its actor batch over the number of actors, or its HTTP request's latency
over the requests in flight — so that a set's items / summed seconds is its generation speed."""


def generation_settings(config: GenerationConfig) -> SamplingParams:
    """The decoding settings of the engine, as the endpoint derives them from the same config's request
    (`eval.endpoint`): greedy unless do_sample; temperature, top_p and seed only matter when sampling."""
    sampling = config.do_sample
    return SamplingParams(
        max_new_tokens=config.max_new_tokens,
        temperature=config.temperature if sampling else 0.0,
        top_p=config.top_p if sampling else 1.0,
        repetition_penalty=config.repetition_penalty,
        seed=config.seed if sampling else None,
    )


def settings_key(config: GenerationConfig) -> str:
    """A stable text of the settings that change outputs (part of the prediction cache's key).

    Greedy decoding ignores temperature, top_p and seed, so those are left out of a greedy key: changing
    them must not throw a greedy cache away.
    """
    value = config.model_dump()
    if not config.do_sample:
        for name in ("temperature", "top_p", "seed"):
            value.pop(name)
    return json.dumps(value, sort_keys=True)
