"""The `eval` section: batch generation over an evaluation catalogue, parsing and scoring."""

from __future__ import annotations

from pydantic import Field, model_validator

from taiyi_ray.config.base import Location, StrictModel


class GenerationConfig(StrictModel):
    """Decoding settings. Greedy by default; Taiyi reported temperature 0.3, top_p 0.9 with sampling."""

    max_new_tokens: int = Field(128, ge=1, le=4096)
    do_sample: bool = False
    temperature: float = Field(1.0, gt=0)
    top_p: float = Field(1.0, gt=0, le=1)
    repetition_penalty: float = Field(1.0, gt=0)
    seed: int = 0


class EvalConfig(StrictModel):
    """Evaluate an exported model (`model`) or a running Serve endpoint (`endpoint`) on `catalogue`.

    `limit` caps items per set (CI uses it: a random-weight model never stops early). `batch_size` is
    prompts per generate call in each actor; `num_actors` model replicas in the Ray Data actor pool.
    `reference_scores` is a paper-scores.json (../shared/reference/paper-scores.json) whose Taiyi,
    ChatGPT-3.5 and SOTA columns the report shows beside ours; None (or an absent file) shows ours only.
    `cache_dir` holds generated outputs keyed by model, generation settings and prompt (default
    `{storage.root}/eval-cache`), so a rerun or a second catalogue over the same items generates nothing twice.
    """

    catalogue: Location
    model: Location | None = None
    endpoint: str | None = None
    sets: list[str] | None = None
    limit: int | None = Field(None, ge=1)
    generation: GenerationConfig = GenerationConfig()
    batch_size: int = Field(16, ge=1)
    num_actors: int = Field(1, ge=1)
    cpus_per_actor: float = Field(1, gt=0)
    gpus_per_actor: float = Field(0, ge=0)
    endpoint_concurrency: int = Field(8, ge=1)
    template_seed: int = 0
    reference_scores: Location | None = None
    cache_dir: Location | None = None

    @model_validator(mode="after")
    def _not_both(self) -> EvalConfig:
        if self.model is not None and self.endpoint is not None:
            raise ValueError("give `model` or `endpoint`, not both")
        return self
