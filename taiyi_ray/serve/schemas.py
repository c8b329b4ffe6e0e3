"""OpenAI request and response shapes (chat completions, legacy completions, models, errors).

Requests accept what the `openai` client and common harnesses send; fields we cannot honour are
rejected with a 400 naming them (best_of > 1, suffix, non-zero penalties, tools and functions,
logit_bias, a response_format other than text) rather than ignored.
Unknown extra fields are ignored, as OpenAI-compatible servers do, so newer clients keep working.
Ranges that depend on the deployment (max_tokens <= serve.max_tokens_limit, n <= serve.max_choices,
token ids < the vocabulary, the context length) are checked by the handlers, which know the config.

The OpenAPI schema states exactly what validation accepts (schemathesis checks it, positive and
negative cases): strict types as JSON Schema defines them (an integer is 2 or 2.0, never "2" or true),
the deployment's maxima (added by `taiyi_ray.serve.api`), and the cross-field rules as if/then (a
stream has n = 1 and no logprobs). Two rules it cannot state are in descriptions: the conversation
ends with a user message (a rule on an array's last item), and prompt + max_tokens fit the context
(a count of tokens, not of characters).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator
from pydantic.config import JsonDict

MAX_STOP_SEQUENCES = 4
MAX_TOP_LOGPROBS = 20


class _Request(BaseModel):
    # strict: a boolean is true/false and an integer a JSON integer, as the schema says ("true" or 1 for a
    # boolean, "1", true or 2.5 for an integer are refused); numbers still take integers
    model_config = ConfigDict(extra="ignore", strict=True)


def _integral(value: object) -> object:
    """2.0 -> 2: JSON Schema's `integer` is any number with a zero fractional part, so 2.0 is one (and
    schema-driven clients and fuzzers send it); strict validation alone would refuse it."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


_INTEGRAL = BeforeValidator(_integral)
# JSON integers as the OpenAPI schema defines them: 2 or 2.0, never "2", true or 2.5. The bounds sit
# inside each alias: pydantic writes a `Field(ge=...)` put on `Annotated[int, BeforeValidator] | None`
# into the schema as "ge" instead of "minimum", so the schema would not show it.
Integer = Annotated[int, _INTEGRAL]
PositiveInteger = Annotated[int, Field(ge=1), _INTEGRAL]
NonNegativeInteger = Annotated[int, Field(ge=0), _INTEGRAL]
# Seeds below 2**53: every integer up to there is exact as a JSON/float64 number, so a client (or a schema
# tool) that reads numbers as doubles sees the same bound the server checks (below 2**63 it could not: the
# fuzz sent 2**63 + 190 as valid, which float64 rounds to the same double as 2**63 - 1).
Seed = Annotated[int, Field(ge=0, lt=2**53), _INTEGRAL]
TopLogprobs = Annotated[int, Field(ge=0, le=MAX_TOP_LOGPROBS), _INTEGRAL]


class _Response(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TextPart(_Request):
    type: Literal["text"]
    text: str


class ChatMessage(_Request):
    role: Literal["system", "user", "assistant"]
    content: str | list[TextPart]
    name: str | None = None

    def text(self) -> str:
        """The content as one string (text parts joined, as OpenAI concatenates them)."""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


StopField = Annotated[
    str | Annotated[list[str], Field(max_length=MAX_STOP_SEQUENCES)] | None,
    Field(
        None, description=f"Up to {MAX_STOP_SEQUENCES} strings; generation ends before the first one found."
    ),
]


def _refused(reason: str, harmless: Callable[[object], bool] = lambda value: False) -> BeforeValidator:
    """A field we cannot honour: anything but null or a `harmless` value (one with no effect) is a 400
    naming the field, rather than being silently ignored and returning something the client did not ask
    for."""

    def check(value: object) -> object:
        if value is not None and not harmless(value):
            raise ValueError(f"not supported: {reason}")
        return value

    return BeforeValidator(check)


_NO_TOOLS = "this server does not call tools or functions; leave the field out"


Text = Annotated[str, Field(min_length=1)]
_ONE = Field(min_length=1)
TokenIds = Annotated[list[NonNegativeInteger], _ONE]


class _SamplingFields(_Request):
    """Fields shared by both completion endpoints."""

    model: str | None = Field(
        None, description="A served model id (GET /v1/models); default: the base model."
    )
    max_tokens: PositiveInteger | None = Field(
        None,
        description="Tokens to generate, at most serve.max_tokens_limit; default serve.default_max_tokens.",
    )
    temperature: float = Field(1.0, ge=0.0, le=2.0, description="0 is greedy decoding.")
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    n: Integer = Field(1, ge=1, description="Choices per prompt, at most serve.max_choices.")
    stream: bool = False
    stop: StopField = None
    seed: Seed | None = Field(
        None,
        description="Same seed, model, prompt and parameters give the same output, in any batch: the request "
        "draws from its own torch.Generator over batch-invariant logits.",
    )
    repetition_penalty: float = Field(
        1.0,
        gt=0.0,
        le=10.0,
        description="vLLM's extra parameter, Hugging Face's rule: logits of tokens already in the prompt or "
        "output are divided by it (if positive) or multiplied by it (if negative); 1 is off.",
    )
    presence_penalty: float = Field(0.0, ge=0.0, le=0.0, description="Not supported: only 0.")
    frequency_penalty: float = Field(0.0, ge=0.0, le=0.0, description="Not supported: only 0.")
    user: str | None = None
    logit_bias: Annotated[
        dict[str, float] | None,
        _refused("token biases are not applied; leave logit_bias out", lambda value: value == {}),
    ] = Field(None, max_length=0, description="Not supported: only absent, null or {}.")

    def stop_sequences(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return tuple(s for s in ([self.stop] if isinstance(self.stop, str) else self.stop) if s)


class StreamOptions(_Request):
    include_usage: bool = False


class TextFormat(_Request):
    type: Literal["text"]


class JsonObjectFormat(_Request):
    """Any JSON object (constrained decoding; the first request compiles a large grammar, ~10 s here)."""

    type: Literal["json_object"]


class JsonSchemaSpec(_Request):
    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    description: str | None = None
    schema_: dict[str, Any] = Field(
        alias="schema",
        description="The JSON Schema the output must satisfy (what outlines-core can compile).",
    )
    strict: bool | None = Field(None, description="Ignored: the output always satisfies the schema.")


class JsonSchemaFormat(_Request):
    """Output constrained to a JSON Schema by constrained decoding (outlines-core): when the answer
    ends with the end token (finish_reason "stop"), its text is a JSON value that satisfies the schema."""

    type: Literal["json_schema"]
    json_schema: JsonSchemaSpec


ResponseFormat = Annotated[TextFormat | JsonObjectFormat | JsonSchemaFormat, Field(discriminator="type")]


def _when_streaming(then: JsonDict) -> ConfigDict:
    """The schema of a request with `stream: true` adds `then` (JSON Schema if/then), so the schema states
    the rules the handlers enforce across fields: a stream carries one choice and no logprobs."""
    when: JsonDict = {"properties": {"stream": {"const": True}}, "required": ["stream"]}
    return ConfigDict(json_schema_extra={"if": when, "then": {"properties": then}})


class ChatCompletionRequest(_SamplingFields):
    model_config = _when_streaming({"n": {"const": 1}, "logprobs": {"const": False}})

    messages: list[ChatMessage] = Field(
        min_length=1, description="The conversation so far; the last message must have role 'user'."
    )
    response_format: ResponseFormat | None = Field(
        None, description="text (default), json_object or json_schema (constrained decoding)."
    )
    tools: Annotated[None, _refused(_NO_TOOLS)] = Field(None, description="Not supported.")
    tool_choice: Annotated[None, _refused(_NO_TOOLS)] = Field(None, description="Not supported.")
    parallel_tool_calls: Annotated[None, _refused(_NO_TOOLS)] = Field(None, description="Not supported.")
    functions: Annotated[None, _refused(_NO_TOOLS)] = Field(None, description="Not supported.")
    function_call: Annotated[None, _refused(_NO_TOOLS)] = Field(None, description="Not supported.")
    max_completion_tokens: PositiveInteger | None = Field(
        None, description="Newer name of max_tokens (wins when both)."
    )
    logprobs: bool = False
    top_logprobs: TopLogprobs | None = None
    stream_options: StreamOptions | None = None

    @field_validator("messages")
    @classmethod
    def _ends_with_user(cls, messages: list[ChatMessage]) -> list[ChatMessage]:
        if messages and messages[-1].role != "user":
            raise ValueError(f"the last message must have role 'user', got {messages[-1].role!r}")
        return messages


class CompletionRequest(_SamplingFields):
    model_config = _when_streaming(
        {
            "n": {"const": 1},
            "logprobs": {"type": "null"},
            "prompt": {"not": {"type": "array", "minItems": 2, "items": {"type": ["string", "array"]}}},
        }
    )

    prompt: Text | Annotated[list[Text], _ONE] | TokenIds | Annotated[list[TokenIds], _ONE] = Field(
        description="Text, texts, or token ids; n choices per prompt."
    )
    max_tokens: NonNegativeInteger | None = Field(
        None,
        description="Tokens to generate, at most serve.max_tokens_limit; default serve.default_max_tokens. "
        "0 generates nothing (with echo: scores the prompt).",
    )
    echo: bool = Field(False, description="Prepend the prompt to the text (with its logprobs when asked).")
    logprobs: TopLogprobs | None = Field(None, description="Top alternatives per token.")
    best_of: Integer = Field(1, ge=1, le=1, description="Only 1 is supported.")
    suffix: None = Field(None, description="Not supported.")
    stream_options: StreamOptions | None = None

    def prompts(self) -> list[str | list[int]]:
        """Each prompt as text or token ids."""
        prompt = self.prompt
        if isinstance(prompt, str):
            return [prompt]
        if prompt and all(isinstance(item, int) for item in prompt):
            return [list(prompt)]  # type: ignore[arg-type]
        return list(prompt)  # type: ignore[arg-type]


# -- responses ------------------------------------------------------------------------------------------


class Usage(_Response):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class TopLogprob(_Response):
    token: str
    logprob: float
    bytes: list[int] | None


class ChatTokenLogprob(_Response):
    token: str
    logprob: float
    bytes: list[int] | None
    top_logprobs: list[TopLogprob]


class ChatChoiceLogprobs(_Response):
    content: list[ChatTokenLogprob] | None


class AssistantMessage(_Response):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(_Response):
    index: int
    message: AssistantMessage
    finish_reason: Literal["stop", "length"]
    logprobs: ChatChoiceLogprobs | None = None


class ChatCompletion(_Response):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage
    system_fingerprint: str | None = None


class ChatDelta(_Response):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChatChunkChoice(_Response):
    index: int
    delta: ChatDelta
    finish_reason: Literal["stop", "length"] | None = None
    logprobs: ChatChoiceLogprobs | None = None


class ChatCompletionChunk(_Response):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChatChunkChoice]
    usage: Usage | None = None
    system_fingerprint: str | None = None


class CompletionLogprobs(_Response):
    tokens: list[str]
    token_logprobs: list[float | None]
    top_logprobs: list[dict[str, float] | None]
    text_offset: list[int]


class CompletionChoice(_Response):
    index: int
    text: str
    finish_reason: Literal["stop", "length"] | None
    logprobs: CompletionLogprobs | None = None


class Completion(_Response):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None
    system_fingerprint: str | None = None


class ModelCard(_Response):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "taiyi-ray"
    root: str
    parent: str | None = None


class ModelList(_Response):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorBody(_Response):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(_Response):
    error: ErrorBody


class Health(_Response):
    """`/healthz`: open to probes; without the API key (on a server that has one) only `status`."""

    status: Literal["ok"] = "ok"
    models: list[str] | None = None
    loaded: list[str] | None = Field(
        None, description="Model ids whose weights are in memory (adapters load on first use)."
    )
    steps: int | None = Field(None, description="Decoding steps (forward passes) of this replica so far.")
    requests: int | None = Field(None, description="Requests decoded by this replica so far.")
    largest_batch: int | None = Field(None, description="The most sequences decoded in one step so far.")


_ERROR_DESCRIPTIONS = {
    400: "Invalid request: the message names the field (`param`) and says what was got and expected.",
    401: "Missing or wrong API key (`Authorization: Bearer <key>`).",
    404: "Unknown model id (`param: model`) or route.",
    503: "The replica is busy: retry after `Retry-After` seconds.",
}
_ERROR_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"required": True, "schema": {"type": "string", "const": "Bearer"}}},
    503: {"Retry-After": {"required": True, "schema": {"type": "integer", "minimum": 1}}},
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for the error codes an endpoint can return: OpenAI error objects,
    with the headers the 401 and 503 answers always carry."""
    return {
        code: {
            "model": ErrorResponse,
            "description": _ERROR_DESCRIPTIONS[code],
            **({"headers": _ERROR_HEADERS[code]} if code in _ERROR_HEADERS else {}),
        }
        for code in codes
    }


def streamed(chunk: type[_Response]) -> dict[int | str, dict[str, Any]]:
    """The 200 entry of an endpoint that streams with `stream: true`: JSON otherwise, else server-sent
    events. In OpenAPI 3.1 an event stream's `schema` describes one event: its `data` is a `chunk` as
    JSON, then the literal `[DONE]`; an error after the headers were sent comes as an ErrorResponse.
    `chunk` must be in the schema's components (`taiyi_ray.serve.api` adds it)."""
    payload = {
        "anyOf": [{"$ref": f"#/components/schemas/{name}"} for name in (chunk.__name__, "ErrorResponse")]
    }
    data = {
        "anyOf": [
            {"type": "string", "const": "[DONE]"},
            {"type": "string", "contentMediaType": "application/json", "contentSchema": payload},
        ]
    }
    event = {
        "type": "object",
        "required": ["data"],
        "properties": {"data": data},
        "description": f"One server-sent event (with `stream: true`): `data: <{chunk.__name__} JSON>`, the "
        "last one `data: [DONE]`.",
    }
    return {200: {"content": {"text/event-stream": {"schema": event}}}}
