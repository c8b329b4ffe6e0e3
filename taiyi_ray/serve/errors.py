"""Errors as OpenAI error objects: `{"error": {"message", "type", "param", "code"}}`, never a bare 500.

Request validation failures (invalid JSON, missing or wrong-typed fields) become 400 with `param` naming
the field in dotted form (`messages.0.content`) and a message saying what was got and what was expected.
Anything unexpected is logged with its traceback and answered 500 in the same shape, without details.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    503: "overloaded_error",
}


class APIError(Exception):
    """An error answered to the client: HTTP status, message, the request field it concerns, and headers."""

    def __init__(
        self,
        status_code: int,
        message: str,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.param = param
        self.code = code
        self.headers = headers or {}


def retry_after(seconds: float) -> dict[str, str]:
    """The Retry-After header of a 503: whole seconds, at least 1 (the schema's minimum; 0 would invite an
    immediate retry storm)."""
    return {"Retry-After": str(max(1, math.ceil(seconds)))}


def error_body(
    status_code: int, message: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    error_type = _TYPES.get(status_code, "server_error" if status_code >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def error_response(error: APIError) -> JSONResponse:
    return JSONResponse(
        error_body(error.status_code, error.message, error.param, error.code),
        status_code=error.status_code,
        headers=error.headers,
    )


def describe_validation_error(error: RequestValidationError) -> tuple[str, str | None]:
    """(message, param) for the first problem, e.g. ("messages: List should have at least 1 item", "messages")."""
    problems = error.errors()
    if not problems:
        return "invalid request", None
    first = _most_telling(problems)
    location = _location(first)
    param = ".".join(location) or None
    if first.get("type") == "json_invalid":
        context = first.get("ctx", {}).get("error", "")
        return f"the body is not valid JSON ({context}); expected a JSON object", "body"
    if not location:
        return "expected a JSON object body (Content-Type: application/json), got none or not JSON", "body"
    got = first.get("input")
    shown = repr(got) if not isinstance(got, dict | list) else type(got).__name__
    message = f"{param or 'body'}: {first.get('msg', 'invalid')} (got {shown[:80]})"
    if len(problems) > 1:
        message += f"; and {len(problems) - 1} more problem(s)"
    return message, param


def _location(problem: Any) -> list[str]:
    location = [str(part) for part in problem.get("loc", ()) if part != "body"]
    # Union members add their type name to the location (`prompt.str`, `content.list[TextPart]`): drop them.
    return [part for part in location if not _is_type_tag(part)]


def _most_telling(problems: Sequence[Any]) -> Any:
    """The first problem, or of a union field (`stop`: a string or up to 4 strings) the member whose type
    the input had: "at most 4 items, not 6" rather than "should be a valid string"."""
    field = _location(problems[0])
    for problem in problems:
        kind = str(problem.get("type", ""))
        if _location(problem) == field and not kind.endswith("_type") and kind != "none_required":
            return problem
    return problems[0]


def _is_type_tag(part: str) -> bool:
    return part in {"str", "int", "float", "bool", "none"} or part.startswith(
        ("list[", "dict[", "function-", "tagged-union", "constrained-")
    )


def install_error_handlers(app: FastAPI) -> None:
    """Make every error an OpenAI error object (FastAPI's default is 422 with a `detail` list)."""

    @app.exception_handler(APIError)
    async def _api_error(request: Request, error: APIError) -> JSONResponse:
        return error_response(error)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        message, param = describe_validation_error(error)
        return JSONResponse(error_body(400, message, param), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        message = str(error.detail)
        if error.status_code == 404:
            message = f"no route {request.method} {request.url.path}; see /openapi.json"
        return JSONResponse(
            error_body(error.status_code, message), status_code=error.status_code, headers=error.headers
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("unexpected error serving %s %s", request.method, request.url.path)
        return JSONResponse(error_body(500, "internal error; see the server log"), status_code=500)
