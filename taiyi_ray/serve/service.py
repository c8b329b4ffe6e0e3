"""What the HTTP handlers share inside one replica: the config, the models, the decoding engine.

Also the request checks that need them: the model id, max_tokens against the configured limit, and
prompt + completion against the model's context length (each a 400/404 naming the field); and the output
grammars of constrained decoding, compiled off the event loop and kept per regular expression.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

import torch

from taiyi_ray.config.serving import ServeConfig
from taiyi_ray.data.schema import Message
from taiyi_ray.model.generation import OutputGrammar, SamplingParams
from taiyi_ray.serve.engine import EventSource, GenerationRequest
from taiyi_ray.serve.errors import APIError
from taiyi_ray.serve.models import ModelCatalog
from taiyi_ray.serve.schemas import _SamplingFields


@dataclass
class Service:
    config: ServeConfig
    registry: ModelCatalog
    engine: EventSource  # an `EngineProcess` in a replica
    started: int = field(default_factory=lambda: int(time.time()))
    _grammars: OrderedDict[str, OutputGrammar] = field(default_factory=OrderedDict)

    GRAMMARS_KEPT = 32

    async def grammar(self, regex: str, param: str) -> OutputGrammar:
        """`regex` compiled for the served vocabulary: in a worker thread (outlines-core takes 0.1 s for a
        small JSON schema, ~10 s for any JSON object; the event loop keeps serving meanwhile), then kept
        (the last `GRAMMARS_KEPT`). A language it cannot compile is a 400 naming `param`."""
        if regex in self._grammars:
            self._grammars.move_to_end(regex)
            return self._grammars[regex]
        registry = self.registry
        try:
            grammar = await asyncio.to_thread(
                OutputGrammar, regex, registry.grammar_tokenizer, registry.end_token_id
            )
        except ValueError as error:
            raise APIError(
                400, f"cannot constrain the output to this {param}: {error}", param=param
            ) from None
        self._grammars[regex] = grammar
        while len(self._grammars) > self.GRAMMARS_KEPT:
            self._grammars.popitem(last=False)
        return grammar

    @cached_property
    def fingerprint(self) -> str:
        """`system_fingerprint`: changes when the model export or an engine setting that can change the
        output for the same request does (device, context cap, adapters, torch version; the batch size only
        on a GPU: on a CPU the engine is batch-invariant, see `taiyi_ray.model.engine`)."""
        config = self.config
        settings = [
            self.registry.model_digest,
            config.max_batch_size if config.num_gpus_per_replica > 0 else None,
            config.num_gpus_per_replica > 0,
            config.max_context_tokens,
            sorted(config.adapters.items()),
            torch.__version__,
        ]
        return "fp_" + hashlib.sha256(json.dumps(settings, default=str).encode()).hexdigest()[:12]

    def max_tokens(self, requested: int | None, name: str = "max_tokens") -> int:
        """`requested` (default `serve.default_max_tokens`) checked against `serve.max_tokens_limit`, the
        `maximum` the OpenAPI schema shows (the minimum is the request model's own)."""
        limit = self.config.max_tokens_limit
        value = min(self.config.default_max_tokens, limit) if requested is None else requested
        if value > limit:
            raise APIError(
                400, f"{name} must be at most {limit} (serve.max_tokens_limit), got {value}", param=name
            )
        return value

    def choices(self, request: _SamplingFields) -> int:
        """`n` checked against `serve.max_choices` (each choice is decoded as a row of its own)."""
        limit = self.config.max_choices
        if request.n > limit:
            raise APIError(400, f"n must be in [1, {limit}] (serve.max_choices), got {request.n}", param="n")
        if request.stream and request.n > 1:
            raise APIError(400, f"stream: true takes n = 1, got n = {request.n}", param="n")
        return request.n

    def tokenize(self, text: str) -> list[int]:
        return list(self.registry.tokenizer(text, add_special_tokens=False)["input_ids"])

    def chat_prompt_ids(self, messages: Sequence[Message]) -> list[int]:
        """Token ids of the conversation rendered with the model's own chat format, ready for the answer."""
        return self.tokenize(self.registry.chat_format.prompt_text(messages))

    def check_context(self, prompt_tokens: int, max_tokens: int, prompt_field: str) -> None:
        """Prompt + completion must fit the context; names the prompt or max_tokens, whichever is at fault."""
        context = self.registry.context_length
        if prompt_tokens >= context:
            raise APIError(
                400,
                f"{prompt_field} is {prompt_tokens} tokens; the model's context is {context} tokens "
                f"(prompt + completion), so at most {context - 1} prompt tokens fit",
                param=prompt_field,
                code="context_length_exceeded",
            )
        if prompt_tokens + max_tokens > context:
            raise APIError(
                400,
                f"max_tokens {max_tokens} + {prompt_tokens} prompt tokens exceed the model's context of {context} "
                f"tokens; ask for at most {context - prompt_tokens}",
                param="max_tokens",
                code="context_length_exceeded",
            )

    def request(
        self,
        model_id: str,
        prompt_ids: list[int],
        params: SamplingParams,
        stream: bool = False,
        prompt_logprobs_top: int | None = None,
    ) -> GenerationRequest:
        """What to decode; raises `EngineUnavailable` (503) if the engine is gone, before a stream has
        sent its headers."""
        self.engine.check_health()
        return GenerationRequest(
            model_id, prompt_ids, params, stream=stream, prompt_logprobs_top=prompt_logprobs_top
        )
