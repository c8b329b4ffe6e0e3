"""The `serve` section: the Ray Serve application hosting an exported model."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from taiyi_ray.config.base import Location, StrictModel


class ServeAutoscaling(StrictModel):
    """Ray Serve autoscaling of the replicas (replaces `num_replicas` when set): replicas are added when
    the average number of ongoing requests per replica exceeds `target_ongoing_requests`."""

    min_replicas: int = Field(1, ge=0)
    max_replicas: int = Field(1, ge=1)
    target_ongoing_requests: float = Field(16, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> ServeAutoscaling:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"min_replicas ({self.min_replicas}) must be <= max_replicas ({self.max_replicas})"
            )
        return self


class ServeConfig(StrictModel):
    """HTTP endpoint and engine settings.

    Continuous batching (`taiyi_ray.model.engine`): up to `max_batch_size` sequences decode together, and
    requests join and leave that batch at every decoding step; a step prefills whole prompts within
    `max_step_tokens` (the oldest waiting prompt always fits an empty batch). After idling, the engine
    waits `batch_wait_timeout_s` so that a burst is prefilled in one pass. `max_ongoing_requests` must be
    >= `max_batch_size` or Serve never hands the replica a full batch. `scheduling: static` (a batch runs
    until its longest row ends before others join) exists as the baseline of `benchmarks/serve.py`.

    Admission: a replica takes `max_ongoing_requests` generation requests (decoding or waiting for a
    batch) and refuses more at once with an OpenAI error object (JSON 503 + Retry-After). Serve hands it
    up to `admission_headroom` requests beyond that, so that they reach the replica to be refused there;
    only past those does Serve's own queue (`max_queued_requests`, then a plain-text 503) act, as a backstop.

    `adapters` are LoRA adapter directories served as `{model_id}:{name}` on top of the base model and
    loaded on their first request. `max_context_tokens` caps prompt + completion (default: the model's
    `max_position_embeddings`). `retry_after_s` is the Retry-After header (seconds) of an overload refusal.
    `request_timeout_s` bounds one HTTP request end to end, and how long shutdown waits to drain.
    """

    model: Location | None = None
    model_id: str | None = Field(
        None,
        description="Name under /v1/models; default: the export's model_name (taiyi_export.json), else "
        "the model directory name.",
    )
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    max_batch_size: int = Field(8, ge=1)
    batch_wait_timeout_s: float = Field(0.01, ge=0)
    max_step_tokens: int = Field(2048, ge=1, description="Prompt + running tokens one decoding step takes.")
    scheduling: Literal["continuous", "static"] = "continuous"
    cuda_graphs: bool = Field(
        False,
        description="On a CUDA replica, replay each step's decoding rows from CUDA graphs "
        "(taiyi_ray.model.attention.DecodeGraphs) instead of the eager forward. Off until measured on a GPU: "
        "CPU tests cover its logic, not the capture. Needs num_gpus_per_replica > 0.",
    )
    max_ongoing_requests: int = Field(32, ge=1)
    max_queued_requests: int = Field(64, ge=1)
    admission_headroom: int = Field(
        32, ge=1, description="Requests Serve passes beyond max_ongoing_requests, for the replica to refuse."
    )
    num_replicas: int = Field(1, ge=1)
    num_cpus_per_replica: float = Field(1, gt=0)
    num_gpus_per_replica: float = Field(0, ge=0)
    default_max_tokens: int = Field(128, ge=1)
    max_choices: int = Field(
        4, ge=1, description="Most choices (`n`) one request may ask for; each is one decoded row."
    )
    max_tokens_limit: int = Field(1024, ge=1)
    request_timeout_s: float = Field(120, gt=0)
    adapters: dict[str, Location] = Field(default_factory=dict)
    max_context_tokens: int | None = Field(None, ge=2)
    retry_after_s: float = Field(1, ge=0)
    autoscaling: ServeAutoscaling | None = None

    @model_validator(mode="after")
    def _adapter_names(self) -> ServeConfig:
        for name in self.adapters:
            if not name or ":" in name or "/" in name:
                raise ValueError(
                    f"adapter name {name!r} must be non-empty without ':' or '/' (ids are MODEL:NAME)"
                )
        return self

    @model_validator(mode="after")
    def _graphs_need_a_gpu(self) -> ServeConfig:
        if self.cuda_graphs and self.num_gpus_per_replica == 0:
            raise ValueError(
                "cuda_graphs needs GPU replicas (num_gpus_per_replica > 0): a CPU replica would ignore it"
            )
        return self

    @model_validator(mode="after")
    def _batch_fits(self) -> ServeConfig:
        if self.max_ongoing_requests < self.max_batch_size:
            raise ValueError(
                f"max_ongoing_requests ({self.max_ongoing_requests}) must be >= max_batch_size "
                f"({self.max_batch_size}), or batches never fill"
            )
        return self
