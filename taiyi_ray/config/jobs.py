"""One config model per job: each names the sections of the shared YAML file it uses.

A config file holds every section (storage, ray, model, data, stage1, stage2, export, eval, serve);
a job validates only its own, strictly. A top-level key that no job knows is an error too, so a
misspelt section name cannot hide.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TypeVar

from pydantic import ValidationError

from taiyi_ray.config.base import StrictModel
from taiyi_ray.config.data import DataConfig
from taiyi_ray.config.evaluation import EvalConfig
from taiyi_ray.config.loader import ConfigError, apply_overrides, format_validation_error, read_yaml
from taiyi_ray.config.model import ExportConfig, ModelConfig
from taiyi_ray.config.platform import RayConfig, StorageConfig
from taiyi_ray.config.serving import ServeConfig
from taiyi_ray.config.train import StageConfig


class JobConfig(StrictModel):
    """The sections every job shares: where it stores, how it reaches Ray, which model it works on."""

    storage: StorageConfig = StorageConfig()
    ray: RayConfig = RayConfig()
    model: ModelConfig = ModelConfig()


class DataJobConfig(JobConfig):
    data: DataConfig


class Stage1JobConfig(JobConfig):
    data: DataConfig
    stage1: StageConfig
    eval: EvalConfig | None = None  # validation's template seed and decoding settings, when present


class Stage2JobConfig(JobConfig):
    data: DataConfig
    stage2: StageConfig
    eval: EvalConfig | None = None  # validation's template seed and decoding settings, when present


StageJobConfig = Stage1JobConfig | Stage2JobConfig  # what a training stage's job validates


class ExportJobConfig(JobConfig):
    export: ExportConfig = ExportConfig()


class EvalJobConfig(JobConfig):
    eval: EvalConfig


class ServeJobConfig(JobConfig):
    serve: ServeConfig = ServeConfig()


class PipelineJobConfig(JobConfig):
    data: DataConfig
    stage1: StageConfig
    stage2: StageConfig
    export: ExportConfig = ExportConfig()
    eval: EvalConfig
    serve: ServeConfig = ServeConfig()


JOB_CONFIGS: dict[str, type[JobConfig]] = {
    "prepare_data": DataJobConfig,
    "stage1": Stage1JobConfig,
    "stage2": Stage2JobConfig,
    "export": ExportJobConfig,
    "evaluate": EvalJobConfig,
    "serve": ServeJobConfig,
    "pipeline": PipelineJobConfig,
}
KNOWN_SECTIONS: frozenset[str] = frozenset(name for job in JOB_CONFIGS.values() for name in job.model_fields)

JobT = TypeVar("JobT", bound=JobConfig)


def load_job_config(model: type[JobT], path: str | Path | None, overrides: Iterable[str] = ()) -> JobT:
    """Validate the sections `model` uses from the YAML at `path` (plus `--set` overrides): the one way a
    job's config is assembled. Without a file (`jobs/serve.py --model DIR`) the overrides are the config.

    Errors name the file, the line and the dotted field, e.g.
    `configs/demo.yaml:31: stage1.epochs: Input should be greater than or equal to 1 (got 0)`.
    """
    data, lines = read_yaml(path) if path is not None else ({}, {})
    data = apply_overrides(data, overrides)
    source = str(path) if path is not None else "--set"
    unknown = sorted(set(data) - KNOWN_SECTIONS)
    if unknown:
        where = ", ".join(f"{name} (line {lines.get((name,), '?')})" for name in unknown)
        raise ConfigError(
            f"{source}: unknown section(s) {where}; known sections: {', '.join(sorted(KNOWN_SECTIONS))}"
        )
    used = {name: value for name, value in data.items() if name in model.model_fields}
    try:
        return model.model_validate(used)
    except ValidationError as error:
        raise ConfigError(format_validation_error(error, source, lines)) from None
