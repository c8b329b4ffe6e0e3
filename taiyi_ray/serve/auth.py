"""Bearer-token authentication from the `TAIYI_API_KEY` environment variable (DESIGN.md: Serving).

The key is read from the environment of the process that builds the application (the serve job, or the
Serve controller under `serve run`/`serve deploy`/RayService, where a Kubernetes Secret sets it) and only
its SHA-256 digest travels to the replicas, as a deployment argument. So the key itself is never on a
command line, in Ray's stored deployment config, or in a log line; requests are compared by digest in
constant time. With the variable unset or empty, no authentication is required.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from taiyi_ray.serve.errors import error_body

API_KEY_ENV = "TAIYI_API_KEY"


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def api_key_digest_from_env(environ: dict[str, str] | None = None) -> str | None:
    """Digest of `TAIYI_API_KEY`, or None when it is unset or empty (no authentication)."""
    key = (environ if environ is not None else os.environ).get(API_KEY_ENV, "")
    return key_digest(key) if key else None


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header (scheme case-insensitive), else None."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def is_authorised(authorization: str | None, digest: str) -> bool:
    token = bearer_token(authorization)
    return token is not None and hmac.compare_digest(key_digest(token), digest)


OPEN_PATHS = frozenset({"/healthz"})  # for probes, which have no key: the handler shows them only "ok"


def install_auth(app: FastAPI, digest: str | None) -> None:
    """Require the bearer key on every request (the schema included) when `digest` is set, except
    `OPEN_PATHS`, which see `request.state.authorised` instead."""
    if digest is None:
        return

    @app.middleware("http")
    async def _require_key(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        request.state.authorised = is_authorised(request.headers.get("authorization"), digest)
        if request.state.authorised or request.url.path in OPEN_PATHS:
            return await call_next(request)
        message = f"missing or invalid API key; send the header 'Authorization: Bearer <key>' (the {API_KEY_ENV} of the server)"
        return JSONResponse(
            error_body(401, message, code="invalid_api_key"),
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
