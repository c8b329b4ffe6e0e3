"""Typed, YAML-backed configuration: one pydantic model per section, one per job."""

from taiyi_ray.config.base import Location, StrictModel, absolute_location, is_uri
from taiyi_ray.config.jobs import JOB_CONFIGS, load_job_config
from taiyi_ray.config.loader import ConfigError, apply_overrides, read_yaml, validate_file

__all__ = [
    "JOB_CONFIGS",
    "ConfigError",
    "Location",
    "StrictModel",
    "absolute_location",
    "apply_overrides",
    "is_uri",
    "load_job_config",
    "read_yaml",
    "validate_file",
]
