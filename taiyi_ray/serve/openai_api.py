"""`POST /v1/chat/completions` and `POST /v1/completions`: OpenAI requests -> decoding -> OpenAI responses.

Chat prompts are rendered with the model's own chat format (the one it was trained with, from
`taiyi_export.json`), so generation ends on its end token. Streaming sends the same text as the
non-streaming answer: both come from one decoder whose streamed deltas join up to the final text.

Token log-probabilities in OpenAI's two shapes (chat `logprobs.content`, legacy `logprobs` lists).

A token is shown as its own decoded text; a byte-level token that ends inside a UTF-8 character shows
as U+FFFD and gets `bytes: null`. Log-probabilities are from the model's raw distribution (see
`SamplingParams`). Legacy `top_logprobs` always include the chosen token, so a harness can tell whether
it was the greedy choice. `text_offset` counts characters from the start of the prompt, as OpenAI does.
A row that ended on the end token has that token as its last entry, with empty text (OpenAI and vLLM
return it so: harnesses index the entries, e.g. lm-eval's `token_logprobs[ctxlen:-1]`).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

from fastapi.responses import StreamingResponse
from outlines_core.json_schema import build_regex_from_schema

from taiyi_ray.data.schema import Message
from taiyi_ray.model.generation import REPLACEMENT_CHARACTER, OutputGrammar, SamplingParams, TokenLogprob
from taiyi_ray.model.generation import Completion as Decoded
from taiyi_ray.serve import schemas
from taiyi_ray.serve.engine import Finished, GenerationRequest
from taiyi_ray.serve.errors import APIError, error_body
from taiyi_ray.serve.service import Service

SSE_DONE = "data: [DONE]\n\n"


def _finish_reason(decoded: Decoded) -> str:
    return decoded.finish_reason if decoded.finish_reason in ("stop", "length") else "stop"


async def _output_grammar(
    service: Service,
    response_format: schemas.TextFormat | schemas.JsonObjectFormat | schemas.JsonSchemaFormat | None,
) -> OutputGrammar | None:
    """The grammar a `response_format` asks for: none for text, any JSON object for json_object, the
    schema's language for json_schema (outlines-core turns the schema into a regular expression; a schema
    it cannot is a 400 naming the field)."""
    if response_format is None or isinstance(response_format, schemas.TextFormat):
        return None
    schema: object
    if isinstance(response_format, schemas.JsonObjectFormat):
        schema, param = {"type": "object"}, "response_format"
    else:
        schema, param = response_format.json_schema.schema_, "response_format.json_schema.schema"
    try:
        regex = build_regex_from_schema(json.dumps(schema))
    except ValueError as error:
        raise APIError(400, f"cannot constrain the output to this schema: {error}", param=param) from None
    return await service.grammar(regex, param)


def _sampling(
    request: schemas._SamplingFields,
    max_tokens: int,
    logprobs: int | None,
    choice: int = 0,
    grammar: OutputGrammar | None = None,
) -> SamplingParams:
    """The decoding settings of choice `choice` of `n`: a seeded request's choice i uses seed + i, so the
    choices differ from each other and each is reproducible on its own."""
    return SamplingParams(
        max_new_tokens=max_tokens,
        temperature=request.temperature,
        top_p=request.top_p,
        repetition_penalty=request.repetition_penalty,
        seed=None if request.seed is None else request.seed + choice,
        stop=request.stop_sequences(),
        logprobs=logprobs,
        grammar=grammar,
    )


def _usage(prompt_tokens: int, completion_tokens: int) -> schemas.Usage:
    return schemas.Usage(
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        total_tokens=prompt_tokens + completion_tokens,
    )


def sse(payload: schemas._Response | dict) -> str:
    data = (
        payload.model_dump_json(exclude_none=False)
        if isinstance(payload, schemas._Response)
        else json.dumps(payload)
    )
    return f"data: {data}\n\n"


@dataclass(frozen=True)
class Stamp:
    """What every response and chunk of one request carries: its id, time, model and fingerprint."""

    id: str
    created: int
    model: str
    system_fingerprint: str

    @classmethod
    def new(cls, prefix: str, model_id: str, service: Service) -> Stamp:
        return cls(f"{prefix}-{uuid.uuid4().hex}", int(time.time()), model_id, service.fingerprint)

    def chat(self, choices: list[schemas.ChatChoice], usage: schemas.Usage) -> schemas.ChatCompletion:
        return schemas.ChatCompletion(**vars(self), choices=choices, usage=usage)

    def chat_chunk(
        self, choices: list[schemas.ChatChunkChoice], usage: schemas.Usage | None = None
    ) -> schemas.ChatCompletionChunk:
        return schemas.ChatCompletionChunk(**vars(self), choices=choices, usage=usage)

    def completion(
        self, choices: list[schemas.CompletionChoice], usage: schemas.Usage | None = None
    ) -> schemas.Completion:
        return schemas.Completion(**vars(self), choices=choices, usage=usage)


# -- chat -----------------------------------------------------------------------------------------------


async def chat_completions(
    service: Service, request: schemas.ChatCompletionRequest
) -> schemas.ChatCompletion | StreamingResponse:
    model_id = service.registry.resolve(request.model)
    max_tokens = service.max_tokens(
        request.max_completion_tokens if request.max_completion_tokens is not None else request.max_tokens,
        name="max_completion_tokens" if request.max_completion_tokens is not None else "max_tokens",
    )
    if request.stream and request.logprobs:
        raise APIError(
            400, "logprobs are not supported with stream: true; ask without streaming", param="logprobs"
        )
    messages = [Message(role=message.role, content=message.text()) for message in request.messages]
    prompt_ids = service.chat_prompt_ids(messages)
    service.check_context(len(prompt_ids), max_tokens, "messages")
    top = (request.top_logprobs or 0) if request.logprobs else None
    grammar = await _output_grammar(service, request.response_format)
    generations = [
        service.request(
            model_id, prompt_ids, _sampling(request, max_tokens, top, i, grammar), stream=request.stream
        )
        for i in range(service.choices(request))
    ]
    stamp = Stamp.new("chatcmpl", model_id, service)
    if request.stream:
        events = _chat_stream(service, generations[0], stamp, request.stream_options)
        return StreamingResponse(events, media_type="text/event-stream")
    results = await asyncio.gather(*(service.engine.complete(generation) for generation in generations))
    choices = [_chat_choice(service, index, result.completion, top) for index, result in enumerate(results)]
    usage = _usage(len(prompt_ids), sum(len(result.completion.token_ids) for result in results))
    return stamp.chat(choices, usage)


def _chat_choice(service: Service, index: int, decoded: Decoded, top: int | None) -> schemas.ChatChoice:
    logprobs = None
    if top is not None:
        entries = completion_entries(service.registry.tokenizer, decoded.token_ids, decoded.logprobs or [])
        logprobs = schemas.ChatChoiceLogprobs(content=chat_logprobs(entries))
    return schemas.ChatChoice(
        index=index,
        message=schemas.AssistantMessage(content=decoded.text),
        finish_reason=_finish_reason(decoded),
        logprobs=logprobs,
    )


async def _chat_stream(
    service: Service,
    generation: GenerationRequest,
    stamp: Stamp,
    options: schemas.StreamOptions | None,
) -> AsyncIterator[str]:
    def chunk(delta: schemas.ChatDelta, finish_reason: str | None = None) -> str:
        return sse(
            stamp.chat_chunk([schemas.ChatChunkChoice(index=0, delta=delta, finish_reason=finish_reason)])
        )

    def end(decoded: Decoded, usage: schemas.Usage | None) -> list[str]:
        final = chunk(schemas.ChatDelta(), _finish_reason(decoded))
        return [final] if usage is None else [final, sse(stamp.chat_chunk([], usage))]

    yield chunk(schemas.ChatDelta(role="assistant", content=""))
    async for event in _stream(
        service, generation, lambda text: chunk(schemas.ChatDelta(content=text)), end, options
    ):
        yield event


async def _stream(
    service: Service,
    generation: GenerationRequest,
    render: Callable[[str], str],
    end: Callable[[Decoded, schemas.Usage | None], list[str]],
    options: schemas.StreamOptions | None,
) -> AsyncIterator[str]:
    """The SSE events of a streamed request: text deltas, the `end` chunks (with usage when asked), [DONE]."""
    async for piece in _stream_events(service, generation, render):
        if isinstance(piece, str):
            yield piece
            continue
        decoded = piece.completion
        include_usage = bool(options and options.include_usage)
        usage = _usage(decoded.prompt_tokens, len(decoded.token_ids)) if include_usage else None
        for event in end(decoded, usage):
            yield event
    yield SSE_DONE


async def _stream_events(
    service: Service, generation: GenerationRequest, render: Callable[[str], str]
) -> AsyncIterator[str | Finished]:
    """Rendered SSE chunks for the text deltas, then the `Finished` result; an error becomes an error event."""
    try:
        async for kind, value in service.engine.events(generation):
            if kind == "delta":
                yield render(value)  # type: ignore[arg-type]
            elif kind == "done":
                yield value  # type: ignore[misc]
    except APIError as error:
        yield sse(error_body(error.status_code, error.message, error.param, error.code))
    except Exception:  # noqa: BLE001 - headers are sent: the client can only be told in the stream
        yield sse(error_body(500, "internal error while streaming; see the server log"))


# -- legacy completions -----------------------------------------------------------------------------------


async def completions(
    service: Service, request: schemas.CompletionRequest
) -> schemas.Completion | StreamingResponse:
    model_id = service.registry.resolve(request.model)
    max_tokens = service.max_tokens(request.max_tokens)
    prompts = request.prompts()
    if not prompts:
        raise APIError(
            400, "prompt is an empty list; expected a string, strings, or token ids", param="prompt"
        )
    if request.stream and (len(prompts) > 1 or request.logprobs is not None):
        raise APIError(400, "stream: true takes one prompt and no logprobs", param="stream")
    encoded = [_prompt_ids(service, prompt) for prompt in prompts]
    for ids in encoded:
        service.check_context(len(ids), max_tokens, "prompt")
    n = service.choices(request)
    echo_top = request.logprobs if request.echo and request.logprobs is not None else None
    generations = [  # OpenAI's order: the n choices of the first prompt, then those of the next
        service.request(
            model_id,
            ids,
            _sampling(request, max_tokens, request.logprobs, i),
            stream=request.stream,
            prompt_logprobs_top=echo_top,
        )
        for ids in encoded
        for i in range(n)
    ]
    stamp = Stamp.new("cmpl", model_id, service)
    if request.stream:
        prompt_text = _prompt_text(service, prompts[0]) if request.echo else ""
        events = _completion_stream(service, generations[0], stamp, prompt_text, request.stream_options)
        return StreamingResponse(events, media_type="text/event-stream")
    results = await asyncio.gather(*(service.engine.complete(generation) for generation in generations))
    choices = [
        _completion_choice(service, index, prompts[index // n], encoded[index // n], result, request)
        for index, result in enumerate(results)
    ]
    prompt_tokens = sum(len(ids) for ids in encoded)
    completion_tokens = sum(len(result.completion.token_ids) for result in results)
    return stamp.completion(choices, _usage(prompt_tokens, completion_tokens))


def _prompt_ids(service: Service, prompt: str | list[int]) -> list[int]:
    if isinstance(prompt, str):
        ids = service.tokenize(prompt)
    else:
        vocabulary = len(service.registry.tokenizer)
        bad = [token for token in prompt if not 0 <= token < vocabulary]
        if bad:
            raise APIError(
                400, f"prompt token ids must be in [0, {vocabulary}), got {bad[:5]}", param="prompt"
            )
        ids = list(prompt)
    if not ids:
        raise APIError(400, "prompt is empty (0 tokens); expected some text", param="prompt")
    return ids


def _prompt_text(service: Service, prompt: str | list[int]) -> str:
    return (
        prompt
        if isinstance(prompt, str)
        else str(service.registry.tokenizer.decode(prompt, skip_special_tokens=False))
    )


def _completion_choice(
    service: Service,
    index: int,
    prompt: str | list[int],
    ids: list[int],
    result: Finished,
    request: schemas.CompletionRequest,
) -> schemas.CompletionChoice:
    decoded = result.completion
    prompt_text = _prompt_text(service, prompt)
    text = (prompt_text if request.echo else "") + decoded.text
    logprobs = None
    if request.logprobs is not None:
        tokenizer = service.registry.tokenizer
        generated = completion_entries(tokenizer, decoded.token_ids, decoded.logprobs or [])
        if request.echo:
            generated = prompt_entries(tokenizer, ids, result.prompt_logprobs or []) + generated
        logprobs = completion_logprobs(generated, start_offset=0 if request.echo else len(prompt_text))
    return schemas.CompletionChoice(
        index=index, text=text, finish_reason=_finish_reason(decoded), logprobs=logprobs
    )


async def _completion_stream(
    service: Service,
    generation: GenerationRequest,
    stamp: Stamp,
    prompt_text: str,
    options: schemas.StreamOptions | None,
) -> AsyncIterator[str]:
    def chunk(text: str, finish_reason: str | None = None) -> str:
        return sse(
            stamp.completion([schemas.CompletionChoice(index=0, text=text, finish_reason=finish_reason)])
        )

    def end(decoded: Decoded, usage: schemas.Usage | None) -> list[str]:
        final = chunk("", _finish_reason(decoded))
        return [final] if usage is None else [final, sse(stamp.completion([], usage))]

    if prompt_text:
        yield chunk(prompt_text)
    async for event in _stream(service, generation, chunk, end, options):
        yield event


@dataclass(frozen=True)
class Entry:
    """One token with its text, logprob (None for the first prompt token, which has nothing before it)
    and its most likely alternatives as (text, logprob)."""

    token: str
    logprob: float | None
    alternatives: tuple[tuple[str, float], ...] = ()


def token_text(tokenizer, token_id: int) -> str:
    return tokenizer.decode([token_id], skip_special_tokens=False, clean_up_tokenization_spaces=False)


def token_bytes(text: str) -> list[int] | None:
    return None if REPLACEMENT_CHARACTER in text else list(text.encode("utf-8"))


def chat_logprobs(entries: Sequence[Entry]) -> list[schemas.ChatTokenLogprob]:
    """Chat `logprobs.content` of generated entries (each has a logprob and its alternatives)."""
    return [
        schemas.ChatTokenLogprob(
            token=entry.token,
            logprob=float(entry.logprob or 0.0),
            bytes=token_bytes(entry.token),
            top_logprobs=[
                schemas.TopLogprob(token=text, logprob=value, bytes=token_bytes(text))
                for text, value in entry.alternatives
            ],
        )
        for entry in entries
    ]


def _top_dict(entry: Entry) -> dict[str, float]:
    top = dict(entry.alternatives)
    top.setdefault(entry.token, float(entry.logprob or 0.0))
    return top


def _entry(tokenizer, item: TokenLogprob, end_token: int | None) -> Entry:
    def text(token_id: int) -> str:
        return "" if token_id == end_token else token_text(tokenizer, token_id)

    return Entry(text(item.token_id), item.logprob, tuple((text(t), value) for t, value in item.top))


def completion_entries(tokenizer, token_ids: Sequence[int], logprobs: Sequence[TokenLogprob]) -> list[Entry]:
    """Entries of the generated tokens, and of the end token when the row ended on it: the decoder keeps
    its logprob after the visible ids, and it is shown with empty text, as OpenAI and vLLM do (lm-eval
    scores `token_logprobs[ctxlen:-1]` of an echo request, so dropping it shifts every score by one)."""
    entries = [_entry(tokenizer, item, None) for item in logprobs[: len(token_ids)]]
    entries += [_entry(tokenizer, item, item.token_id) for item in logprobs[len(token_ids) :]]
    return entries


def prompt_entries(
    tokenizer, token_ids: Sequence[int], logprobs: Sequence[TokenLogprob | None]
) -> list[Entry]:
    """Entries of the prompt tokens; the first has no logprob (nothing precedes it)."""
    return [
        Entry(token_text(tokenizer, token_id), None) if item is None else _entry(tokenizer, item, None)
        for token_id, item in zip(token_ids, logprobs, strict=True)
    ]


def completion_logprobs(entries: Sequence[Entry], start_offset: int = 0) -> schemas.CompletionLogprobs:
    offsets, position = [], start_offset
    for entry in entries:
        offsets.append(position)
        position += len(entry.token)
    return schemas.CompletionLogprobs(
        tokens=[entry.token for entry in entries],
        token_logprobs=[entry.logprob for entry in entries],
        top_logprobs=[None if entry.logprob is None else _top_dict(entry) for entry in entries],
        text_offset=offsets,
    )
