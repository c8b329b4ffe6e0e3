"""Generation against a running OpenAI-compatible endpoint (`--endpoint URL`): concurrent HTTP requests.

Each prompt is one `POST {url}/v1/chat/completions` with the conversation; at most `concurrency`
requests are in flight (the server batches them: ours decodes them in one running batch). Greedy decoding is
`temperature: 0`. With env `TAIYI_API_KEY` set, requests carry `Authorization: Bearer <key>` (the key
is never logged). Transient failures (connection errors, 429, 5xx) are retried with back-off; a
4xx answer is an error naming the status and the server's message.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Sequence
from typing import Any

import httpx

from taiyi_ray.config.evaluation import GenerationConfig
from taiyi_ray.eval.generation_types import OnResult, RawOutput, Request

log = logging.getLogger(__name__)

API_KEY_ENV = "TAIYI_API_KEY"
REQUEST_TIMEOUT_S = 600.0
RETRIES = 4
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class EndpointError(RuntimeError):
    """The endpoint answered in a way the evaluation cannot use (the message names URL and status)."""


def _headers() -> dict[str, str]:
    key = os.environ.get(API_KEY_ENV)
    return {"Authorization": f"Bearer {key}"} if key else {}


def served_model(url: str) -> str:
    """The first model id of `GET {url}/v1/models` (what requests name, and part of the cache key)."""
    response = httpx.get(f"{url.rstrip('/')}/v1/models", headers=_headers(), timeout=30.0)
    if response.status_code != 200:
        raise EndpointError(f"GET {url}/v1/models: status {response.status_code}: {response.text[:200]}")
    models = response.json().get("data") or []
    if not models:
        raise EndpointError(f"GET {url}/v1/models: no model listed; expected at least one")
    return str(models[0]["id"])


def request_body(model: str, messages: list[dict[str, Any]], generation: GenerationConfig) -> dict[str, Any]:
    """The chat-completions body for one conversation under the evaluation's decoding settings."""
    body: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "max_tokens": generation.max_new_tokens,
        "temperature": generation.temperature if generation.do_sample else 0.0,
        "stream": False,
    }
    if generation.do_sample:
        body.update(top_p=generation.top_p, seed=generation.seed)
    if generation.repetition_penalty != 1.0:
        body["repetition_penalty"] = generation.repetition_penalty
    return body


def generate_with_endpoint(
    url: str,
    model: str,
    requests: Sequence[Request],
    generation: GenerationConfig,
    concurrency: int,
    on_result: OnResult,
) -> None:
    """Send every request with at most `concurrency` in flight; `on_result` is called as each ends."""
    if requests:
        asyncio.run(_run_all(url.rstrip("/"), model, requests, generation, concurrency, on_result))


async def _run_all(
    url: str,
    model: str,
    requests: Sequence[Request],
    generation: GenerationConfig,
    concurrency: int,
    on_result: OnResult,
) -> None:
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(headers=_headers(), timeout=REQUEST_TIMEOUT_S, limits=limits) as client:

        async def one(request: Request) -> None:
            async with gate:
                started = time.perf_counter()
                body = request_body(model, json.loads(request.messages_json), generation)
                output = await _post(client, f"{url}/v1/chat/completions", body)
                on_result(
                    request.set_name, request.key, output, (time.perf_counter() - started) / concurrency
                )

        await asyncio.gather(*(one(request) for request in requests))


async def _post(client: httpx.AsyncClient, url: str, body: dict[str, Any]) -> RawOutput:
    for attempt in range(RETRIES + 1):
        try:
            response = await client.post(url, json=body)
        except httpx.TransportError as error:
            if attempt == RETRIES:
                raise EndpointError(
                    f"POST {url}: {type(error).__name__} after {RETRIES + 1} attempts"
                ) from error
            await asyncio.sleep(0.5 * 2**attempt)
            continue
        if response.status_code in RETRY_STATUSES and attempt < RETRIES:
            await asyncio.sleep(0.5 * 2**attempt)
            continue
        if response.status_code != 200:
            raise EndpointError(f"POST {url}: status {response.status_code}: {response.text[:300]}")
        return _output(url, response.json())
    raise AssertionError("unreachable: the last attempt returns or raises")


def _output(url: str, value: dict[str, Any]) -> RawOutput:
    try:
        choice = value["choices"][0]
        text = choice["message"]["content"] or ""
    except (KeyError, IndexError, TypeError):
        raise EndpointError(
            f"POST {url}: expected choices[0].message.content in the answer, got {json.dumps(value)[:300]}"
        ) from None
    usage = value.get("usage") or {}
    return RawOutput(
        text=text,
        finish_reason=choice.get("finish_reason"),
        prompt_tokens=usage.get("prompt_tokens"),
        output_tokens=usage.get("completion_tokens"),
    )
