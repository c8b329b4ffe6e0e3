"""The serve job (`jobs/serve.py --model DIR [--host H] [--port P] [--config CFG]`).

Starts (or joins) Ray, starts Serve's HTTP proxy on `serve.host:serve.port` (port 0: a free one), deploys
the application, waits until `/healthz` answers over HTTP, then prints one JSON line with `"url"` (DESIGN.md)
and keeps serving until SIGTERM or SIGINT (`ray job stop`, Ctrl-C). Shutdown drains: the application is
deleted first, which lets every replica finish the requests in flight (up to `serve.request_timeout_s`),
and Serve itself is shut down only when no other application is left on the cluster.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from taiyi_ray.config.base import StrictModel
from taiyi_ray.config.jobs import ServeJobConfig
from taiyi_ray.runtime import init_ray
from taiyi_ray.serve.auth import API_KEY_ENV, api_key_digest_from_env
from taiyi_ray.storage import Storage, join

log = logging.getLogger(__name__)

APP_NAME = "taiyi"
READY_TIMEOUT_S = 300.0


def free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


@contextmanager
def serving(config: ServeJobConfig) -> Iterator[tuple[str, list[str]]]:
    """Serve `config.serve.model` while inside: yields (url, model ids) once /healthz answers over HTTP;
    on exit drains requests in flight and shuts Serve (and a Ray cluster started here) down."""
    import ray
    from ray import serve

    from taiyi_ray.serve.app import build_application

    settings = config.serve
    if settings.model is None:
        raise ValueError(
            "serve.model is not set; pass --model DIR (an exported Hugging Face model directory)"
        )
    connected_here = not ray.is_initialized()
    init_ray(config.ray)
    port = settings.port or free_port(settings.host)
    url = f"http://{settings.host}:{port}"
    serve.start(
        http_options={"host": settings.host, "port": port, "request_timeout_s": settings.request_timeout_s}
    )
    try:
        serve.run(build_application(settings, api_key_digest_from_env()), name=APP_NAME, route_prefix="/")
        yield url, wait_until_ready(url, READY_TIMEOUT_S)
        log.info("stopping: draining requests in flight")
    finally:
        drain_and_shutdown(serve)
        if connected_here:
            ray.shutdown()  # flushes Ray's own log lines now, not after the job's final JSON line


class ServeJobResult(StrictModel):
    """The serve job's result line, printed when it stops (the ready line came first)."""

    url: str
    models: list[str]
    served_s: float


class ServeCheck(StrictModel):
    """`answer.json` of the demo's serving check: one real request and what came back."""

    url: str
    status: int
    question: str
    answer: str | None  # None unless HTTP 200
    finish_reason: str | None
    usage: dict[str, Any] | None
    response: dict[str, Any]


def run_serve_job(config: ServeJobConfig, run_dir: str, ready_seconds: float | None = None) -> ServeJobResult:
    """Serve until a stop signal (or for `ready_seconds`, for tests); returns the job's key figures."""
    # Our handlers go in after Ray started: ray.init installs its own SIGTERM handler (which aborts).
    with serving(config) as (url, models), _stop_signals() as stop:
        started = time.monotonic()
        info = {"url": url, "models": models, "run_dir": run_dir}
        Storage(config.storage).write_json(join(run_dir, "serve.json"), info)
        print(json.dumps(info), flush=True)  # the ready line (DESIGN.md: jobs/serve.py)
        stop.wait(ready_seconds)
    return ServeJobResult(url=url, models=models, served_s=round(time.monotonic() - started, 1))


DEMO_QUESTION = (
    "Which chemicals are mentioned? Aspirin-induced gastric bleeding was reported in two patients."
)


def answer_once(config: ServeJobConfig, run_dir: str, question: str = DEMO_QUESTION) -> ServeCheck:
    """The demo's serving check: serve the model, send one real HTTP request to /v1/chat/completions,
    return the answer and its HTTP status, shut down."""
    key = os.environ.get(API_KEY_ENV, "")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    with serving(config) as (url, models), httpx.Client(timeout=120, headers=headers) as client:
        response = client.post(
            f"{url}/v1/chat/completions",
            json={"model": models[0], "messages": [{"role": "user", "content": question}], "max_tokens": 24},
        )
        body = response.json()
    choice = body["choices"][0] if response.status_code == 200 else None
    result = ServeCheck(
        url=url,
        status=response.status_code,
        question=question,
        answer=choice["message"]["content"] if choice else None,
        finish_reason=choice["finish_reason"] if choice else None,
        usage=body.get("usage"),
        response=body,
    )
    Storage(config.storage).write_json(join(run_dir, "answer.json"), result.model_dump(mode="json"))
    print(f"serve check: {question!r} -> {result.answer!r} (HTTP {response.status_code})", flush=True)
    return result


def wait_until_ready(url: str, timeout_s: float) -> list[str]:
    """Poll `GET {url}/healthz` through the HTTP proxy until it answers 200; returns the served model ids."""
    key = os.environ.get(API_KEY_ENV, "")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    with httpx.Client(timeout=10, headers=headers) as client:
        while time.monotonic() < deadline:
            try:
                response = client.get(f"{url}/healthz")
                models = response.json().get("models") if response.status_code == 200 else None
                if models is not None:
                    return list(models)
                if response.status_code == 200:
                    raise PermissionError(
                        f"{url}/healthz lists no models: {API_KEY_ENV} differs from the server's"
                    )
                last = f"HTTP {response.status_code}"
            except httpx.HTTPError as error:
                last = type(error).__name__
            time.sleep(0.5)
    raise TimeoutError(f"{url}/healthz did not answer 200 within {timeout_s:.0f} s (last: {last})")


def drain_and_shutdown(serve: Any) -> None:
    """Delete our application (replicas finish requests in flight first), then Serve if nothing is left."""
    try:
        serve.delete(APP_NAME, _blocking=True)
    finally:
        if not serve.status().applications:
            serve.shutdown()


@contextmanager
def _stop_signals() -> Iterator[threading.Event]:
    """An event set by SIGTERM/SIGINT while inside (previous handlers restored after)."""
    stop = threading.Event()
    previous = {number: signal.getsignal(number) for number in (signal.SIGTERM, signal.SIGINT)}

    def handler(number: int, frame: object) -> None:
        log.info("received signal %d", number)
        stop.set()

    for number in previous:
        signal.signal(number, handler)
    try:
        yield stop
    finally:
        for number, old in previous.items():
            signal.signal(number, old)
