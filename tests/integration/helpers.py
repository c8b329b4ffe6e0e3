"""Helpers shared by integration tests (plain functions; fixtures live in conftest.py)."""

from __future__ import annotations

import uuid
from pathlib import Path

from taiyi_ray.config import load_job_config
from taiyi_ray.config.jobs import PipelineJobConfig

REPO_ROOT = Path(__file__).resolve().parents[2]
TEST_CONFIG = REPO_ROOT / "configs" / "tests.yaml"


def s3_root(name: str) -> str:
    """A fresh prefix in the test bucket (tests never share mutable state)."""
    return f"s3://taiyi-test/{name}-{uuid.uuid4().hex[:8]}"


def config_for(storage_root: str, *overrides: str) -> PipelineJobConfig:
    """configs/tests.yaml with the storage root moved and any overrides, as the jobs would load it."""
    return load_job_config(PipelineJobConfig, TEST_CONFIG, [f"storage.root={storage_root}", *overrides])
