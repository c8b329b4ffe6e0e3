"""Overload and shutdown over real HTTP: a replica that admits one request at a time refuses the rest
itself, at once, as OpenAI error objects (JSON 503 + Retry-After, never a hang), and deleting the
application lets the request in flight finish first."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from taiyi_ray.config.serving import ServeConfig
from tests.conftest import free_port

pytestmark = pytest.mark.integration

CHAT = {"messages": [{"role": "user", "content": "What is aspirin?"}], "max_tokens": 20}


@pytest.fixture(scope="module")
def small_url(ray_cluster: None, tiny_model_dir: Path) -> Iterator[str]:
    from ray import serve

    from taiyi_ray.serve.app import build_application

    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port, "request_timeout_s": 120})
    config = ServeConfig(
        model=str(tiny_model_dir),
        max_batch_size=1,
        max_ongoing_requests=1,
        admission_headroom=16,
        max_queued_requests=32,  # the backstop: a burst passes through the proxy's queue on its way in
        retry_after_s=2,
        max_tokens_limit=2000,
        request_timeout_s=60,
    )
    serve.run(build_application(config), name="small", route_prefix="/small")
    try:
        yield f"http://127.0.0.1:{port}/small"
    finally:
        serve.shutdown()


def test_overload_is_refused_at_once_with_retry_after(small_url: str) -> None:
    """With one request in the replica, a burst of 11 (within Serve's headroom) reaches the replica and is
    refused there at once: 11 JSON 503s with Retry-After, all while the first request still runs."""
    in_flight, finished, result = threading.Event(), threading.Event(), {}
    body = {"prompt": "x", "max_tokens": 400, "stream": True}

    def long_request() -> None:
        with httpx.stream("POST", f"{small_url}/v1/completions", json=body, timeout=120) as response:
            for _ in response.iter_lines():
                in_flight.set()  # decoding has begun: the replica's one place is taken
        result["status"] = response.status_code
        finished.set()

    async def burst() -> list[tuple[httpx.Response, bool]]:
        async with httpx.AsyncClient(base_url=small_url, timeout=60) as http:

            async def one() -> tuple[httpx.Response, bool]:
                response = await http.post("/v1/chat/completions", json=CHAT)
                return response, finished.is_set()

            return await asyncio.gather(*(one() for _ in range(11)))

    worker = threading.Thread(target=long_request)
    worker.start()
    assert in_flight.wait(timeout=60)
    started = time.monotonic()
    answers = asyncio.run(burst())
    elapsed = time.monotonic() - started
    worker.join(timeout=120)
    assert result["status"] == 200
    assert [response.status_code for response, _ in answers] == [503] * 11
    for response, first_done in answers:
        assert (
            response.headers["retry-after"] == "2" and response.headers["content-type"] == "application/json"
        )
        error = response.json()["error"]
        assert (error["type"], error["code"]) == ("overloaded_error", "overloaded") and error["message"]
        assert not first_done, "a refusal waited for the replica"
    assert elapsed < 10, f"11 refusals took {elapsed:.1f} s"


def test_deleting_the_app_drains_requests_in_flight(small_url: str) -> None:
    from ray import serve

    started, result = threading.Event(), {}
    body = {"prompt": "x", "max_tokens": 1500, "stream": True, "stream_options": {"include_usage": True}}

    def long_request() -> None:
        with httpx.stream("POST", f"{small_url}/v1/completions", json=body, timeout=120) as response:
            lines: list[str] = []
            for line in response.iter_lines():
                started.set()  # decoding has begun: the request is in flight
                lines.append(line)
        result["status"], result["lines"] = response.status_code, [x for x in lines if x.startswith("data: ")]

    worker = threading.Thread(target=long_request)
    worker.start()
    assert started.wait(timeout=60)
    serve.delete("small", _blocking=True)  # returns once the replica has finished the request in flight
    worker.join(timeout=120)
    assert result["status"] == 200 and result["lines"][-1] == "data: [DONE]"
    chunks: list[dict[str, Any]] = [json.loads(line[len("data: ") :]) for line in result["lines"][:-1]]
    assert chunks[-1]["usage"]["completion_tokens"] == 1500
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert httpx.post(f"{small_url}/v1/completions", json={"prompt": "x"}).status_code == 404
