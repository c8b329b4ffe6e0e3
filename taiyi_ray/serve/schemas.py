"""OpenAI request and response shapes (chat completions, legacy completions, models, errors).

Requests accept what the `openai` client and common harnesses send; fields we cannot honour are
rejected with a 400 naming them (best_of > 1, suffix, non-zero penalties, tools and functions,
logit_bias, a response_format other than text) rather than ignored.
Unknown extra fields are ignored, as OpenAI-compatible servers do, so newer clients keep working.
Ranges that depend on the deployment (max_tokens <= serve.max_tokens_limit, the context length) are
checked by the handlers, which know the config.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

MAX_STOP_SEQUENCES = 4
MAX_TOP_LOGPROBS = 20


class _Request(BaseModel):
    # strict: a boolean is true/false and an integer a JSON integer, as the schema says ("true", 1 or 1.0
    # for a boolean, "1" or 1.0 for an integer are refused); numbers still take integers
    model_config = ConfigDict(extra="ignore", strict=True)


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
    str | list[str] | None,
    Field(
        None, description=f"Up to {MAX_STOP_SEQUENCES} strings; generation ends before the first one found."
    ),
]


def _refused(reason: str, allowed: object = None) -> BeforeValidator:
    """A field we cannot honour: anything but `allowed` (null, or a value with no effect) is a 400 naming
    the field, rather than being silently ignored and returning something the client did not ask for."""

    def check(value: object) -> object:
        if value is not None and value != allowed:
            raise ValueError(f"not supported: {reason}")
        return value

    return BeforeValidator(check)


_NO_TOOLS = "this server does not call tools or functions; leave the field out"


Text = Annotated[str, Field(min_length=1)]
_ONE = Field(min_length=1)
TokenIds = Annotated[list[Annotated[int, Field(ge=0)]], _ONE]


class _SamplingFields(_Request):
    """Fields shared by both completion endpoints."""

    model: str | None = Field(
        None, description="A served model id (GET /v1/models); default: the base model."
    )
    max_tokens: int | None = Field(
        None,
        ge=1,
        description="Tokens to generate, at most serve.max_tokens_limit; default serve.default_max_tokens.",
    )
    temperature: float = Field(1.0, ge=0.0, le=2.0, description="0 is greedy decoding.")
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    n: int = Field(1, ge=1, description="Choices per prompt, at most serve.max_choices.")
    stream: bool = False
    stop: StopField = None
    seed: int | None = Field(
        None,
        ge=0,
        lt=2**63,
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
        dict[str, float] | None, _refused("token biases are not applied; leave logit_bias out", {})
    ] = Field(None, max_length=0, description="Not supported: only absent, null or {}.")

    @field_validator("stop")
    @classmethod
    def _stop_list(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > MAX_STOP_SEQUENCES:
            raise ValueError(f"at most {MAX_STOP_SEQUENCES} stop sequences, got {len(value)}")
        return value

    def stop_sequences(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return tuple(s for s in ([self.stop] if isinstance(self.stop, str) else self.stop) if s)


class StreamOptions(_Request):
    include_usage: bool = False


class TextFormat(_Request):
    type: Literal["text"]


class ChatCompletionRequest(_SamplingFields):
    messages: list[ChatMessage] = Field(
        min_length=1, description="The conversation so far; the last message must have role 'user'."
    )
    response_format: Annotated[
        TextFormat | None,
        _refused(
            'only {"type": "text"}: output is not constrained to JSON here (no json_object/json_schema)',
            {"type": "text"},
        ),
    ] = Field(None, description='Only {"type": "text"}.')
    tools: Annotated[None, _refused(_NO_TOOLS)] = Field(None, description="Not supported.")
    tool_choice: Annotated[None, _refused(_NO_TOOLS)] = Field(None, description="Not supported.")
    parallel_tool_calls: Annotated[None, _refused(_NO_TOOLS)] = Field(None, description="Not supported.")
    functions: Annotated[None, _refused(_NO_TOOLS)] = Field(None, description="Not supported.")
    function_call: Annotated[None, _refused(_NO_TOOLS)] = Field(None, description="Not supported.")
    max_completion_tokens: int | None = Field(
        None, ge=1, description="Newer name of max_tokens (wins when both)."
    )
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=MAX_TOP_LOGPROBS)
    stream_options: StreamOptions | None = None

    @field_validator("messages")
    @classmethod
    def _ends_with_user(cls, messages: list[ChatMessage]) -> list[ChatMessage]:
        if messages and messages[-1].role != "user":
            raise ValueError(f"the last message must have role 'user', got {messages[-1].role!r}")
        return messages


class CompletionRequest(_SamplingFields):
    prompt: Text | Annotated[list[Text], _ONE] | TokenIds | Annotated[list[TokenIds], _ONE] = Field(
        description="Text, texts, or token ids; n choices per prompt."
    )
    max_tokens: int | None = Field(
        None,
        ge=0,
        description="Tokens to generate, at most serve.max_tokens_limit; default serve.default_max_tokens. "
        "0 generates nothing (with echo: scores the prompt).",
    )
    echo: bool = Field(False, description="Prepend the prompt to the text (with its logprobs when asked).")
    logprobs: int | None = Field(None, ge=0, le=MAX_TOP_LOGPROBS, description="Top alternatives per token.")
    best_of: int = Field(1, ge=1, le=1, description="Only 1 is supported.")
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


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for the error codes an endpoint can return."""
    return {code: {"model": ErrorResponse} for code in codes}
