"""Process environment and Ray start-up for jobs, the CLI and tests — called explicitly, never at import.

Every process that imports torch/DeepSpeed/Ray (the driver and each Ray worker) needs the same few
environment variables; `worker_env()` is handed to Ray as `runtime_env["env_vars"]` so workers get them
too. On a machine with no CUDA device DeepSpeed must be told to use its CPU accelerator (it then falls
back to gloo by itself), and Ray must keep every listener on loopback.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

from taiyi_ray.config.platform import RayConfig

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent

# Forwarded to Ray workers when set on the driver (fault injection, S3 endpoint and region...).
# Never credentials: Ray writes a runtime_env's env_vars in plain text into its session logs
# (runtime_env_agent.log) and job metadata. Workers read AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY /
# AWS_SESSION_TOKEN from their own environment: a local cluster's processes inherit the driver's (or
# `cluster/local.sh`'s env file), Kubernetes pods get them from `envFrom` secrets or a service-account
# role, `ray up` nodes from their instance profile.
FORWARDED_ENV = (
    "TAIYI_FAULT_AT_STEP",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "HF_HUB_OFFLINE",
    "TORCH_EXTENSIONS_DIR",
)


def has_cuda() -> bool:
    """True when an NVIDIA device is visible (checked without importing torch, which is slow)."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) == "":
        return False
    return shutil.which("nvidia-smi") is not None or Path("/dev/nvidia0").exists()


def base_env() -> dict[str, str]:
    """The variables every process of a job needs (defaults; values already set win).

    Device settings are not among them: a CPU driver (a Kubernetes head pod) must not tell GPU workers
    to use DeepSpeed's CPU accelerator; each process decides for itself (`configure_device_env`).
    """
    return {
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "AWS_EC2_METADATA_DISABLED": "true",
        "RAY_TRAIN_V2_ENABLED": "1",
        "TORCH_EXTENSIONS_DIR": str(REPO_ROOT / ".cache" / "torch_extensions"),
        "PYTHONPATH": _python_path(),
    }


# Only for a cluster this process starts on its own machine: every Ray listener, and gloo, on loopback.
LOCAL_CLUSTER_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "GLOO_SOCKET_IFNAME": "lo"}


def configure_device_env() -> None:
    """On a process with no CUDA device, DeepSpeed must use its CPU accelerator (it then uses gloo).
    Call before DeepSpeed is imported (job drivers and every training worker do)."""
    if not has_cuda():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")


def _python_path() -> str:
    current = os.environ.get("PYTHONPATH", "")
    parts = [str(REPO_ROOT), *[part for part in current.split(os.pathsep) if part]]
    return os.pathsep.join(dict.fromkeys(parts))


def prepare_process_env() -> None:
    """Set the defaults of `base_env()` in this process; call before importing ray/torch/deepspeed."""
    for key, value in base_env().items():
        if key == "PYTHONPATH":
            os.environ[key] = value
        else:
            os.environ.setdefault(key, value)
    if not os.environ.get("RAY_ADDRESS"):
        for key, value in LOCAL_CLUSTER_ENV.items():
            os.environ.setdefault(key, value)
    configure_device_env()


def worker_env() -> dict[str, str]:
    """Environment for Ray workers: the base defaults plus the forwarded variables set on the driver
    (never a credential: see FORWARDED_ENV)."""
    env = base_env()
    env.update({key: os.environ[key] for key in FORWARDED_ENV if key in os.environ})
    return env


def init_ray(config: RayConfig) -> None:
    """Connect to the configured/ambient cluster, or start a local one on loopback.

    Under `ray job submit` RAY_ADDRESS is set and we join that cluster. A bare `python jobs/x.py`
    starts a local cluster sized by `config.num_cpus` with the dashboard off.
    """
    import ray

    if ray.is_initialized():
        return
    runtime_env: dict[str, Any] = {"env_vars": worker_env()}
    address = config.address or os.environ.get("RAY_ADDRESS")
    if address:
        log.info("joining Ray cluster at %s", address)
        ray.init(address=address, runtime_env=runtime_env, log_to_driver=True)
        return
    runtime_env["env_vars"].update(LOCAL_CLUSTER_ENV)
    log.info("starting a local Ray cluster (num_cpus=%d, loopback only)", config.num_cpus)
    ray.init(
        address="local",  # a new instance even if `ray start` left one on this machine (Ray would join it)
        num_cpus=config.num_cpus,
        include_dashboard=False,
        object_store_memory=config.object_store_memory_mb * 1024**2,
        runtime_env=runtime_env,
        log_to_driver=True,
    )


def setup_logging(level: int = logging.INFO) -> None:
    """Plain timestamped logs on stderr (stdout is kept for the job's final JSON line)."""
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    for noisy in ("urllib3", "botocore", "s3fs", "aiobotocore", "filelock", "fsspec", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
