"""Sections shared by every job: where things are stored and which Ray cluster runs them."""

from __future__ import annotations

from pydantic import Field, SecretStr

from taiyi_ray.config.base import Location, StrictModel


class StorageConfig(StrictModel):
    """Object storage: a local directory or an `s3://bucket/prefix` root.

    Credentials are best left to the usual AWS environment variables (AWS_ACCESS_KEY_ID,
    AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_PROFILE); the fields here exist for endpoints such as
    MinIO whose keys are not in the environment. The endpoint falls back to AWS_ENDPOINT_URL_S3 /
    AWS_ENDPOINT_URL and the region to AWS_REGION / AWS_DEFAULT_REGION.
    """

    root: Location = Field("runs", description="Root for run directories and shards (path or s3:// URI).")
    endpoint_url: str | None = Field(None, description="S3-compatible endpoint, e.g. http://127.0.0.1:9000.")
    region: str | None = None
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None
    anonymous: bool = False
    cache_dir: str | None = Field(
        None,
        description="Node-local cache of remote model directories and checkpoints: one download per node, "
        "shared by its workers and reused across restarts (None: each worker downloads to its scratch dir).",
    )
    cache_max_gib: float = Field(
        100.0, gt=0, description="Size the cache is trimmed to, least recently used first."
    )


class RayConfig(StrictModel):
    """How a job finds its Ray cluster.

    `address` None means: the cluster in RAY_ADDRESS when set (as under `ray job submit`), otherwise a
    local cluster started for this process with `num_cpus` logical CPUs. Two CPU training workers take
    two CPUs and Ray Data needs more, so the local default is 4 even on a 2-core machine.
    """

    address: str | None = None
    num_cpus: int = Field(4, ge=1)
    object_store_memory_mb: int = Field(512, ge=64)
