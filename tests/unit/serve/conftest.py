"""A tiny random model loaded once, and the replica's HTTP API over it in-process (no Ray): the handlers,
validation, batching engine and decoder are the real ones; only Serve's HTTP proxy is absent, and the
decoding loop runs in a thread rather than the replica's engine process."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import torch
from fastapi.testclient import TestClient

from taiyi_ray.config.serving import ServeConfig
from taiyi_ray.model.factory import LoadedModel, load_for_inference
from taiyi_ray.serve.models import ModelRegistry, ModelSource


@pytest.fixture(scope="module")
def loaded(tiny_model_dir: Path) -> Iterator[LoadedModel]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a replica: tiny matrices run slower on two busy threads
    yield load_for_inference(tiny_model_dir)
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def registry(tiny_model_dir: Path) -> ModelRegistry:
    return ModelRegistry(ModelSource(str(tiny_model_dir)))


ApiFactory = Callable[..., TestClient]


@pytest.fixture
def make_api(registry: ModelRegistry, tiny_model_dir: Path) -> Iterator[ApiFactory]:
    """`make_api(api_key_digest=None, **serve_fields)`: a client of a fresh replica API over `registry`
    (its engine in a thread: `test_engine_process.py` shows the engine process decodes the same)."""
    from taiyi_ray.serve.api import create_api
    from taiyi_ray.serve.engine import Engine
    from taiyi_ray.serve.service import Service

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with ExitStack() as stack:

        def make(api_key_digest: str | None = None, **fields: Any) -> TestClient:
            config = ServeConfig(model=str(tiny_model_dir), **fields)
            engine = Engine(registry, config)
            app = create_api(Service(config, registry, engine), api_key_digest)
            return stack.enter_context(TestClient(app, raise_server_exceptions=False))

        yield make
    torch.set_num_threads(threads)


@pytest.fixture
def api(make_api: ApiFactory) -> TestClient:
    return make_api()
