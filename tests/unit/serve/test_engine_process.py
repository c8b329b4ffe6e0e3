"""The replica's engine process (`taiyi_ray.serve.engine.EngineProcess`): the same tokens, logprobs and
streams as the in-thread loop, cancellation reaching the decoding loop, errors crossing the pipe, and a
dead or unloadable engine process reported rather than hung on."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from taiyi_ray.config.serving import ServeConfig
from taiyi_ray.data.schema import Message
from taiyi_ray.model.generation import SamplingParams
from taiyi_ray.serve.engine import (
    Engine,
    EngineProcess,
    EngineSpec,
    EngineUnavailable,
    Finished,
    GenerationRequest,
)
from taiyi_ray.serve.models import ModelRegistry, ModelSource

QUESTIONS = ["What is aspirin used for?", "x", "患者出现发热咳嗽，诊断为肺炎。", "dose of the trial"]


def spec_for(model_dir: Path | str, **fields: object) -> EngineSpec:
    config = ServeConfig(model=str(model_dir), **fields)  # type: ignore[arg-type]
    return EngineSpec(ModelSource.of(config), "cpu", 1, config.model_dump(mode="json"))


@pytest.fixture(scope="module")
def engine_process(tiny_model_dir: Path) -> Iterator[EngineProcess]:
    engine = EngineProcess(spec_for(tiny_model_dir))
    yield engine
    engine.close()


def requests(registry: ModelRegistry, max_tokens: int = 12, **params: object) -> list[GenerationRequest]:
    ids = [
        registry.tokenizer(
            registry.chat_format.prompt_text([Message(role="user", content=q)]), add_special_tokens=False
        )["input_ids"]
        for q in QUESTIONS
    ]
    sampling = SamplingParams(max_new_tokens=max_tokens, logprobs=2, **params)  # type: ignore[arg-type]
    return [GenerationRequest(registry.base_id, list(prompt), sampling) for prompt in ids]


async def complete_all(engine, batch: list[GenerationRequest]):
    return await asyncio.gather(*(engine.complete(request) for request in batch))


def test_the_process_decodes_exactly_as_the_thread(
    engine_process: EngineProcess, registry: ModelRegistry, tiny_model_dir: Path
) -> None:
    """Same tokens, bitwise the same logprobs, greedy and seeded, and the echo prompt's logprobs.

    Both with one torch thread, as the engine process has (`spec_for`): log-softmax over the vocabulary
    sums in a different order on two threads (1 ulp apart on an AMD EPYC here; the tokens were equal)."""
    in_thread = Engine(registry, ServeConfig(model=str(tiny_model_dir)))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for batch in (requests(registry), requests(registry, temperature=0.9, seed=7)):
            batch = [*batch, GenerationRequest(**{**vars(batch[0]), "prompt_logprobs_top": 1})]
            here = asyncio.run(complete_all(in_thread, batch))
            there = asyncio.run(complete_all(engine_process, batch))
            _assert_same(here, there)
    finally:
        torch.set_num_threads(threads)


def _assert_same(here: list[Finished], there: list[Finished]) -> None:
    assert [f.completion for f in there] == [f.completion for f in here]
    assert there[-1].prompt_logprobs == here[-1].prompt_logprobs is not None
    assert len({tuple(f.completion.token_ids) for f in there}) > 1  # the prompts decode differently


def test_streamed_deltas_join_to_the_text(engine_process: EngineProcess, registry: ModelRegistry) -> None:
    request = GenerationRequest(**{**vars(requests(registry, 16)[0]), "stream": True})

    async def collect() -> tuple[list[str], str]:
        deltas, text = [], ""
        async for kind, value in engine_process.events(request):
            if kind == "delta":
                deltas.append(value)
            else:
                text = value.completion.text  # type: ignore[attr-defined]
        return deltas, text

    deltas, text = asyncio.run(collect())
    assert len(deltas) > 1 and "".join(deltas) == text


def test_a_cancelled_stream_leaves_the_decoding_loop(
    engine_process: EngineProcess, registry: ModelRegistry
) -> None:
    """A client that goes away after two deltas: the row stops within a few steps, not at max_tokens."""
    prompt = requests(registry)[0].prompt_ids
    request = GenerationRequest(registry.base_id, prompt, SamplingParams(max_new_tokens=500), stream=True)

    async def walk_away() -> tuple[int, int]:
        before = (await engine_process.stats()).steps
        seen = 0
        async for kind, _ in engine_process.events(request):
            seen += kind == "delta"
            if seen == 2:
                break
        await asyncio.sleep(0.5)
        after = (await engine_process.stats()).steps
        await asyncio.sleep(0.3)
        assert (await engine_process.stats()).steps == after  # idle again
        return before, after

    before, after = asyncio.run(walk_away())
    assert after - before < 100
    uncancelled = asyncio.run(engine_process.complete(request)).completion
    assert len(uncancelled.token_ids) == 500  # left alone, it would have run 500 steps


def test_errors_in_the_engine_reach_the_request(
    engine_process: EngineProcess, registry: ModelRegistry
) -> None:
    unknown_adapter = GenerationRequest(
        f"{registry.base_id}:nope", [1, 2, 3], SamplingParams(max_new_tokens=2)
    )
    with pytest.raises(KeyError, match="nope"):
        asyncio.run(engine_process.complete(unknown_adapter))
    stats = asyncio.run(engine_process.stats())  # still serving
    assert stats.loaded == [registry.base_id] and stats.requests > 0


def test_an_unloadable_model_fails_at_start_with_the_reason(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(RuntimeError, match=f"could not load {tmp_path}"):
        EngineProcess(spec_for(tmp_path))


def test_a_dead_engine_process_fails_requests_and_health(
    tiny_model_dir: Path, registry: ModelRegistry
) -> None:
    engine = EngineProcess(spec_for(tiny_model_dir, retry_after_s=2.5))
    pid = engine.pid
    assert pid is not None
    long_request = GenerationRequest(
        registry.base_id, requests(registry)[0].prompt_ids, SamplingParams(max_new_tokens=100_000)
    )

    async def kill_midway() -> None:
        task = asyncio.ensure_future(engine.complete(long_request))
        await asyncio.sleep(0.5)
        os.kill(pid, signal.SIGKILL)
        await asyncio.wait_for(task, timeout=30)

    with pytest.raises(EngineUnavailable, match="engine process exited") as in_flight:
        asyncio.run(kill_midway())
    with pytest.raises(EngineUnavailable, match="engine process exited") as afterwards:
        engine.check_health()
    for refusal in (in_flight.value, afterwards.value):  # a retry reaches a healthy replica: 503, not 500
        assert (refusal.status_code, refusal.code, refusal.headers) == (
            503, "engine_unavailable", {"Retry-After": "3"},  # serve.retry_after_s 2.5, rounded up
        )  # fmt: skip
    engine.close()


def test_a_dead_engine_answers_json_503_before_any_stream(
    tiny_model_dir: Path, registry: ModelRegistry
) -> None:
    """Through the replica's HTTP API: a request that reaches a replica whose engine process is gone gets
    an OpenAI error object, 503 + Retry-After (retry elsewhere), also when it asked for a stream."""
    from fastapi.testclient import TestClient

    from taiyi_ray.serve.api import create_api
    from taiyi_ray.serve.service import Service

    engine = EngineProcess(spec_for(tiny_model_dir, retry_after_s=0))
    assert engine.pid is not None
    os.kill(engine.pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not _is_down(engine):
        time.sleep(0.1)
    service = Service(ServeConfig(model=str(tiny_model_dir)), registry, engine)
    with TestClient(create_api(service, None), raise_server_exceptions=False) as client:
        for stream in (False, True):
            body = {"messages": [{"role": "user", "content": "x"}], "max_tokens": 4, "stream": stream}
            response = client.post("/v1/chat/completions", json=body)
            assert response.status_code == 503, response.text
            assert (
                response.headers["retry-after"] == "1"
            )  # serve.retry_after_s 0: at least 1, as the schema says
            assert response.json()["error"]["code"] == "engine_unavailable"
            assert "engine process exited" in response.json()["error"]["message"]
    engine.close()


def _is_down(engine: EngineProcess) -> bool:
    try:
        engine.check_health()
    except EngineUnavailable:
        return True
    return False
