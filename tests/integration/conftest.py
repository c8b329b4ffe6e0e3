"""Integration fixtures: the test config, and shard sets of the demo corpus tokenized with the real
Qwen2 tokenizer, written to the S3 endpoint once per session and shared by the training tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.integration.helpers import config_for, s3_root


@pytest.fixture(scope="session")
def prepared_shards(ray_cluster: None, shared_dir: Path, s3_endpoint: str) -> dict[str, Any]:
    """The prepare_data job on the demo corpus -> shard sets on S3 (real Qwen2 tokenizer)."""
    from taiyi_ray.config.jobs import DataJobConfig
    from taiyi_ray.data.job import run_data_job

    root = s3_root("shards")
    config = config_for(root, f"model.tokenizer={shared_dir / 'tokenizers' / 'qwen2'}")
    data_config = DataJobConfig(storage=config.storage, ray=config.ray, model=config.model, data=config.data)
    summary = run_data_job(data_config, f"{root}/runs/data").model_dump(mode="json")
    return {"root": root, "summary": summary, "config": config}


@pytest.fixture(scope="session")
def shared_shards(ray_cluster: None, shared_dir: Path, s3_endpoint: str) -> dict[str, Any]:
    """The prepare_data job on the TRAINING FILES of ../shared/data (configs/catalogues/shared-train.yaml,
    decontaminated against configs/eval-13.yaml) -> shard sets on the S3 endpoint."""
    from taiyi_ray.config.jobs import DataJobConfig
    from taiyi_ray.data.job import run_data_job

    root = s3_root("shared-shards")
    config = config_for(
        root,
        f"model.tokenizer={shared_dir / 'tokenizers' / 'qwen2'}",
        "data.name=shared-train",
        "data.catalogue=configs/catalogues/shared-train.yaml",
        "data.decontaminate_against=configs/eval-13.yaml",
        "data.rows_per_shard=1024",
    )
    data_config = DataJobConfig(storage=config.storage, ray=config.ray, model=config.model, data=config.data)
    summary = run_data_job(data_config, f"{root}/runs/data").model_dump(mode="json")
    return {"root": root, "summary": summary, "config": config}
