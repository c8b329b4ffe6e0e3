"""The HTTP API of one replica (FastAPI): routes, error handling and authentication.

Built per replica by `create_api(service)` (no module-level app), and mounted by the Serve deployment
in `taiyi_ray.serve.app`. The OpenAPI schema is at `/openapi.json`.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.types import ASGIApp, Receive, Scope, Send

from taiyi_ray.data import instruct
from taiyi_ray.model.generation import SamplingParams
from taiyi_ray.serve import openai_api, schemas, tasks
from taiyi_ray.serve.auth import API_KEY_ENV, install_auth
from taiyi_ray.serve.errors import APIError, error_response, install_error_handlers, retry_after
from taiyi_ray.serve.service import Service


def create_api(service: Service, api_key_digest: str | None = None) -> FastAPI:
    """The FastAPI app serving `service`; every request needs the bearer key when `api_key_digest` is set."""
    app = FastAPI(
        title="taiyi-ray",
        version="1",
        description="OpenAI-compatible completions and structured biomedical task answers (Ray Serve).",
    )
    install_error_handlers(app)
    app.add_middleware(  # inside the auth middleware: a request without the key is never counted
        Admission, limit=service.config.max_ongoing_requests, retry_after_s=service.config.retry_after_s
    )
    install_auth(app, api_key_digest)
    _openai_routes(app, service)
    _task_routes(app, service)
    _customise_schema(app, service, secured=api_key_digest is not None)
    return app


class Admission:
    """ASGI middleware: at most `limit` POST requests (generation) inside the replica at once, counted
    until their response, streamed ones included, has been sent; the rest are refused at once with an
    OpenAI error object, 503 + Retry-After, so a burst never waits in a queue it cannot leave in time."""

    def __init__(self, app: ASGIApp, limit: int, retry_after_s: float) -> None:
        self.app, self.limit, self.active = app, limit, 0
        self.headers = retry_after(retry_after_s)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        if self.active >= self.limit:
            wait = self.headers["Retry-After"]
            message = f"the replica is busy ({self.limit} requests in progress); retry after {wait} s"
            refusal = APIError(503, message, code="overloaded", headers=self.headers)
            await error_response(refusal)(scope, receive, send)
            return
        self.active += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.active -= 1


def _customise_schema(app: FastAPI, service: Service, secured: bool) -> None:
    """Make /openapi.json state exactly what the replica accepts and answers: the deployment's limits,
    which the request models cannot know (see `_set_limits`); no FastAPI 422 (validation answers 400,
    `taiyi_ray.serve.errors`); and, with an API key, the bearer scheme, optional on /healthz only (without
    one, no 401)."""
    build = app.openapi
    limits = {"max_tokens": service.config.max_tokens_limit, "n": service.config.max_choices}

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = build()
            _set_limits(schema, limits, vocabulary=len(service.registry.tokenizer))
            for operation in (op for item in schema["paths"].values() for op in item.values()):
                for never in ("422",) if secured else ("422", "401"):
                    operation["responses"].pop(never, None)
            for unused in ("HTTPValidationError", "ValidationError"):
                schema["components"]["schemas"].pop(unused, None)
            _add_models(schema, schemas.ChatCompletionChunk)  # only named by the event stream's schema
            if secured:
                schema["components"]["securitySchemes"] = {"bearer": _BEARER}
                schema["security"] = [{"bearer": []}]
                schema["paths"]["/healthz"]["get"]["security"] = [{}, {"bearer": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


_BEARER = {"type": "http", "scheme": "bearer", "description": f"The server's {API_KEY_ENV}."}


def _set_limits(schema: dict, limits: dict[str, int], vocabulary: int) -> None:
    """`maximum` of max_tokens, max_completion_tokens (serve.max_tokens_limit), n (serve.max_choices) and
    of prompt token ids (the vocabulary)."""
    for model in schema["components"]["schemas"].values():
        for name, field in model.get("properties", {}).items():
            limit = limits.get("max_tokens" if name == "max_completion_tokens" else name)
            for branch in [field, *field.get("anyOf", [])] if limit is not None else []:
                if branch.get("type") == "integer":
                    branch["maximum"] = limit
    prompt = schema["components"]["schemas"]["CompletionRequest"]["properties"]["prompt"]
    _set_integer_maximum(prompt, vocabulary - 1)


def _add_models(schema: dict, *models: type[BaseModel]) -> None:
    """Put `models` (and the models they use) into the schema's components, those there already kept."""
    _, definitions = models_json_schema(
        [(model, "serialization") for model in models], ref_template="#/components/schemas/{model}"
    )
    for name, definition in definitions.get("$defs", {}).items():
        schema["components"]["schemas"].setdefault(name, definition)


def _set_integer_maximum(node: dict, maximum: int) -> None:
    """Every integer in `node` (a JSON Schema), through `anyOf` and array `items`, at most `maximum`."""
    if node.get("type") == "integer":
        node["maximum"] = maximum
    for child in [*node.get("anyOf", []), *([node["items"]] if "items" in node else [])]:
        _set_integer_maximum(child, maximum)


def _openai_routes(app: FastAPI, service: Service) -> None:
    errors = schemas.error_responses(400, 401, 404, 503)

    @app.get("/healthz", response_model=schemas.Health)
    async def healthz(request: Request) -> schemas.Health:
        """Open to probes; the models and counters only with the API key (when the server has one)."""
        if not getattr(request.state, "authorised", True):
            return schemas.Health()
        return schemas.Health(models=service.registry.ids(), **vars(await service.engine.stats()))

    @app.get("/v1/models", response_model=schemas.ModelList, responses=schemas.error_responses(401))
    async def models() -> schemas.ModelList:
        registry = service.registry
        cards = [
            schemas.ModelCard(
                id=model_id,
                created=service.started,
                root=model_id.split(":")[0],
                parent=None if model_id == registry.base_id else registry.base_id,
            )
            for model_id in registry.ids()
        ]
        return schemas.ModelList(data=cards)

    @app.post(
        "/v1/chat/completions",
        response_model=schemas.ChatCompletion,
        responses={**errors, **schemas.streamed(schemas.ChatCompletionChunk)},
    )
    async def chat_completions(
        request: schemas.ChatCompletionRequest,
    ) -> schemas.ChatCompletion | StreamingResponse:
        return await openai_api.chat_completions(service, request)

    @app.post(
        "/v1/completions",
        response_model=schemas.Completion,
        responses={**errors, **schemas.streamed(schemas.Completion)},
    )
    async def completions(request: schemas.CompletionRequest) -> schemas.Completion | StreamingResponse:
        return await openai_api.completions(service, request)


def _task_routes(app: FastAPI, service: Service) -> None:
    errors = schemas.error_responses(400, 401, 404, 503)

    @app.post("/v1/tasks/ner", response_model=tasks.TaskResponse, responses=errors)
    async def entities(request: tasks.NERRequest) -> tasks.TaskResponse:
        return await run_task(service, "ner", request)

    @app.post("/v1/tasks/re", response_model=tasks.TaskResponse, responses=errors)
    async def relations(request: tasks.RERequest) -> tasks.TaskResponse:
        return await run_task(service, "re", request)

    @app.post("/v1/tasks/ee", response_model=tasks.TaskResponse, responses=errors)
    async def events(request: tasks.EERequest) -> tasks.TaskResponse:
        return await run_task(service, "ee", request)

    @app.post("/v1/tasks/tc", response_model=tasks.TaskResponse, responses=errors)
    async def labels(request: tasks.TCRequest) -> tasks.TaskResponse:
        return await run_task(service, "tc", request)

    @app.post("/v1/tasks/qa", response_model=tasks.TaskResponse, responses=errors)
    async def answer(request: tasks.QARequest) -> tasks.TaskResponse:
        return await run_task(service, "qa", request)

    @app.post("/v1/tasks/{task}", responses=schemas.error_responses(401, 404), include_in_schema=False)
    async def unknown_task(task: str) -> None:
        raise APIError(404, f"unknown task {task!r}; expected one of {list(tasks.TASKS)}", param="task")


async def run_task(service: Service, task: str, request: tasks.TaskRequest) -> tasks.TaskResponse:
    """Instruction from the data templates -> generation -> the data parser -> structured answer."""
    model_id = service.registry.resolve(request.model)
    max_tokens = service.max_tokens(request.max_tokens)
    record, entry = tasks.build_record(task, request)
    messages = instruct.build_prompt(record, entry, seed=request.template_seed)
    prompt_ids = service.chat_prompt_ids(messages)
    service.check_context(len(prompt_ids), max_tokens, tasks.prompt_field(request))
    regex = tasks.answer_grammar(record, entry)
    grammar = await service.grammar(regex, "task") if regex is not None else None
    params = SamplingParams(
        max_new_tokens=max_tokens, temperature=request.temperature, seed=request.seed, grammar=grammar
    )
    finished = await service.engine.complete(service.request(model_id, prompt_ids, params))
    decoded = finished.completion
    return tasks.TaskResponse(
        task=task,
        model=model_id,
        language=request.language,
        raw=decoded.text,
        prompt=messages[-1].content,
        finish_reason=decoded.finish_reason,
        usage={
            "prompt_tokens": len(prompt_ids),
            "completion_tokens": len(decoded.token_ids),
            "total_tokens": len(prompt_ids) + len(decoded.token_ids),
        },
        **tasks.structure(task, request, record, entry, decoded.text),
    )
