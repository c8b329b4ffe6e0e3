"""Shared fixtures: ../shared locations, a real Ray cluster, a real S3 endpoint (moto's server on
127.0.0.1), and a tiny exported model built from a config (random weights, the real Qwen2 tokenizer).

../shared must be present in CI (TAIYI_REQUIRE_SHARED=1 turns a missing one into a failure); a
developer machine without it skips the tests that need it, with the reason shown.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from taiyi_ray.runtime import prepare_process_env

REPO_ROOT = Path(__file__).resolve().parent.parent

prepare_process_env()  # tests run in-process: same environment as every job (set before ray/torch load)


def shared_path() -> Path:
    return Path(os.environ.get("TAIYI_SHARED", REPO_ROOT.parent / "shared")).resolve()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared (real test-set files, Qwen2 tokenizer, KubeRay CRDs)."""
    path = shared_path()
    if not (path / "data").is_dir():
        if os.environ.get("TAIYI_REQUIRE_SHARED") == "1":
            pytest.fail(f"{path} is missing but TAIYI_REQUIRE_SHARED=1: real-data tests must run in CI")
        pytest.skip(f"{path} not present: this test needs the real files of ../shared")
    return path


@pytest.fixture(scope="session")
def qwen2_tokenizer_dir(shared_dir: Path) -> Path:
    return shared_dir / "tokenizers" / "qwen2"


@pytest.fixture(scope="session")
def ray_cluster(s3_endpoint: str) -> Iterator[None]:
    """One local Ray cluster (loopback only, 4 logical CPUs) shared by the whole test session.

    Started after the S3 endpoint so that every worker inherits its address and credentials."""
    import ray

    from taiyi_ray.config.platform import RayConfig
    from taiyi_ray.runtime import init_ray

    init_ray(RayConfig(num_cpus=4, object_store_memory_mb=512))
    yield
    ray.shutdown()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3-compatible HTTP server (moto) on 127.0.0.1 with the bucket `taiyi-test`.

    Credentials and the endpoint are exported the way production code reads them (AWS env vars), so
    Ray workers started afterwards inherit them too.
    """
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one log line per request otherwise
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    previous = {
        key: os.environ.get(key)
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION")
    }
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_DEFAULT_REGION": "us-east-1",
        }
    )
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket="taiyi-test")
    yield endpoint
    server.stop()
    for key, value in previous.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


class S3RequestLog(logging.Handler):
    """The S3 endpoint's request log (werkzeug's access lines of the moto server, which runs in this
    process whoever sends the requests): collects the request lines while installed."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    def gets(self, key: str) -> int:
        """GET requests of the object `key` (bucket/key path), ranged or whole."""
        return sum(f'"GET /{key} ' in line or f'"GET /{key}?' in line for line in self.lines)


@contextmanager
def s3_request_log() -> Iterator[S3RequestLog]:
    werkzeug = logging.getLogger("werkzeug")
    handler, level = S3RequestLog(), werkzeug.level
    werkzeug.addHandler(handler)
    werkzeug.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        werkzeug.setLevel(level)
        werkzeug.removeHandler(handler)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory, qwen2_tokenizer_dir: Path) -> Path:
    """An export-shaped model directory: tiny random Qwen2 + the real Qwen2 tokenizer, Taiyi chat format."""
    return build_tiny_export(tmp_path_factory.mktemp("tiny-model"), qwen2_tokenizer_dir, chat_format="taiyi")


def build_tiny_export(
    directory: Path, tokenizer_dir: Path, chat_format: str = "taiyi", seed: int = 0
) -> Path:
    """What `jobs/export.py` writes, for a random-weight model (no training needed)."""
    from taiyi_ray.config.model import TinyQwen2Shape
    from taiyi_ray.model.result import write_random_export

    shape = TinyQwen2Shape(hidden_size=32, intermediate_size=64, num_attention_heads=4, num_key_value_heads=2)
    return write_random_export(directory, tokenizer_dir, shape, chat_format=chat_format, seed=seed)
