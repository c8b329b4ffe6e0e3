"""The Serve application: one deployment that is both the HTTP ingress and the batching engine.

Each replica loads the model once, batches requests with `@serve.batch` (see `engine`), and serves the
FastAPI app of `api` (built per replica through `__serve_build_asgi_app__`, so nothing is global).
Ingress and engine share one replica on purpose: a second deployment would add a hop per request (and
per streamed token) for nothing, since the model replica is what scales.

Overload: each replica admits `max_ongoing_requests` generation requests and refuses more itself, at once,
with an OpenAI error object (JSON 503 + `Retry-After`; `api.Admission`). Serve lets `admission_headroom`
more through to be refused so; past those its proxy queues `max_queued_requests` and then refuses with
its own plain-text 503 + `Retry-After` (a backstop: never a hang).
Shutdown drains: a replica stops taking requests and waits up to `request_timeout_s` for those in flight.

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
    """One replica: the models, the batching engine, and the HTTP API over them."""

    def __init__(self, config: dict[str, Any], api_key_digest: str | None) -> None:
        from taiyi_ray.serve.engine import Engine
        from taiyi_ray.serve.models import ModelRegistry
        from taiyi_ray.serve.service import Service

        settings = ServeConfig.model_validate(config)
        device = "cuda" if settings.num_gpus_per_replica > 0 else "cpu"
        if device == "cpu":
            _use_reserved_cpus(settings.num_cpus_per_replica)
        else:
            _no_cudnn_attention()
        registry = ModelRegistry(
            str(settings.model), settings.model_id, settings.adapters, device, settings.max_context_tokens
        )
        engine = Engine(registry, settings)
        self._service = Service(settings, registry, engine)
        self._api_key_digest = api_key_digest

    def __serve_build_asgi_app__(self):
        from taiyi_ray.serve.api import create_api

        return create_api(self._service, self._api_key_digest)


def _use_reserved_cpus(num_cpus: float) -> None:
    """As many torch threads as CPUs reserved for the replica: more threads than cores make every small
    kernel pay for thread synchronisation (measured 200x slower for a tiny linear layer on 2 busy cores)."""
    import torch

    torch.set_num_threads(max(1, int(num_cpus)))


def _no_cudnn_attention() -> None:
    """cuDNN's SDPA re-plans at every decoding step (a batch-1 step measured ~19 ms on an H200 with it);
    the engine's small per-step attention calls run on the flash / memory-efficient kernels instead."""
    import torch

    torch.backends.cuda.enable_cudnn_sdp(False)


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
