"""The Serve application: one deployment; each replica is the HTTP ingress plus its engine process.

A replica serves the FastAPI app of `api` (built per replica through `__serve_build_asgi_app__`, so
nothing is global) with the tokenizer and the model catalog only; the weights and the continuous-batching
decoding loop live in the replica's engine process (`engine.EngineProcess`; why a process, not a
thread, is in `engine`'s docstring). Ingress and engine are not two deployments: that would add a Ray
hop per request and per streamed token, and the engine is what scales anyway — a replica is the unit
that holds a GPU, and its engine process inherits that GPU.

Overload: each replica admits `max_ongoing_requests` generation requests and refuses more itself, at once,
with an OpenAI error object (JSON 503 + `Retry-After`; `api.Admission`). Serve lets `admission_headroom`
more through to be refused so; past those its proxy queues `max_queued_requests` and then refuses with
its own plain-text 503 + `Retry-After` (a backstop: never a hang).
Shutdown drains: a replica stops taking requests and waits up to `request_timeout_s` for those in flight.
Health: Serve's health check fails once the engine process is gone, and Serve replaces the replica.

Two builders: `build_application(config)` from Python (the serve job, tests, benchmarks) and
`build_app(args)` for a Serve config file (`configs/serve.yaml`: `import_path: taiyi_ray.serve.app:build_app`,
`args` = the fields of the `serve` section).
"""

from __future__ import annotations

import logging
from typing import Any

from ray import serve
from ray.serve import Application
from ray.serve.config import BackpressureConfig

from taiyi_ray.config.serving import ServeConfig
from taiyi_ray.serve.auth import api_key_digest_from_env

log = logging.getLogger(__name__)

DEPLOYMENT_NAME = "TaiyiServer"


@serve.deployment
@serve.ingress()
class TaiyiServer:
    """One replica: the model catalog, the engine process, and the HTTP API over them."""

    def __init__(self, config: dict[str, Any], api_key_digest: str | None) -> None:
        from taiyi_ray.serve.engine import EngineProcess, EngineSpec
        from taiyi_ray.serve.models import ModelCatalog, ModelSource
        from taiyi_ray.serve.service import Service

        settings = ServeConfig.model_validate(config)
        source = ModelSource.of(settings)
        catalog = ModelCatalog(source)
        engine = EngineProcess(
            EngineSpec(
                source,
                "cuda" if settings.num_gpus_per_replica > 0 else "cpu",
                torch_threads=engine_threads(settings.num_cpus_per_replica),
                config=config,
            )
        )
        self._service = Service(settings, catalog, engine)
        self._engine = engine
        self._api_key_digest = api_key_digest

    def __serve_build_asgi_app__(self):
        from taiyi_ray.serve.api import create_api

        return create_api(self._service, self._api_key_digest)

    def check_health(self) -> None:
        self._engine.check_health()

    def __del__(self) -> None:
        engine = getattr(self, "_engine", None)
        if engine is not None:
            engine.close()


def engine_threads(num_cpus: float) -> int:
    """As many torch threads as CPUs reserved for the replica: more threads than cores make every small
    kernel pay for thread synchronisation (measured 200x slower for a tiny linear layer on 2 busy cores)."""
    return max(1, int(num_cpus))


def deployment_options(config: ServeConfig) -> dict[str, Any]:
    """Serve deployment options from the `serve` section (replicas, resources, queues, shutdown)."""
    options: dict[str, Any] = {
        "name": DEPLOYMENT_NAME,
        "max_ongoing_requests": config.max_ongoing_requests + config.admission_headroom,
        "max_queued_requests": config.max_queued_requests,
        "backpressure_config": BackpressureConfig(status_code=503, retry_after_s=config.retry_after_s),
        "ray_actor_options": {
            "num_cpus": config.num_cpus_per_replica,
            "num_gpus": config.num_gpus_per_replica,
        },
        "graceful_shutdown_timeout_s": config.request_timeout_s,
        "graceful_shutdown_wait_loop_s": 0.5,
    }
    if config.autoscaling is not None:
        options["autoscaling_config"] = config.autoscaling.model_dump()
    else:
        options["num_replicas"] = config.num_replicas
    return options


def build_application(config: ServeConfig, api_key_digest: str | None = None) -> Application:
    """The application serving `config.model` (see the module docstring); `api_key_digest` turns auth on."""
    if config.model is None:
        raise ValueError("serve.model is not set; expected a Hugging Face model directory (--model DIR)")
    bound = TaiyiServer.options(**deployment_options(config))  # type: ignore[attr-defined]  # a Deployment
    return bound.bind(config.model_dump(mode="json"), api_key_digest)


def build_app(args: dict[str, Any]) -> Application:
    """Application builder for Serve config files: `args` are `serve` section fields; the API key, if
    any, comes from `TAIYI_API_KEY` in the environment of the process that builds the app."""
    return build_application(ServeConfig.model_validate(args), api_key_digest_from_env())
