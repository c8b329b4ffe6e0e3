"""The Serve application over real HTTP on 127.0.0.1: OpenAI API (with the `openai` client), task endpoints,
adapters, bad input, auth, an OpenAPI fuzz and a load test (overload and draining: test_serve_overload.py).

One Serve instance for the module with two applications: the main one (configs/serve.yaml's builder, API
key on) serves the random tiny Qwen2 plus a LoRA adapter; `/tasks` serves a tiny Qwen2 trained here to
answer four task prompts exactly, so structured answers can be checked.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from taiyi_ray.config.serving import ServeConfig
from taiyi_ray.data import instruct
from taiyi_ray.data.schema import Entity, Relation
from taiyi_ray.serve import tasks as t
from taiyi_ray.serve.schemas import ChatCompletion
from tests.conftest import build_tiny_export, free_port
from tests.integration.helpers import memorise

pytestmark = pytest.mark.integration
log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
KEY = f"sk-test-{uuid.uuid4().hex}"
CHAT = {"messages": [{"role": "user", "content": "What is aspirin?"}], "max_tokens": 8}
NER_TEXT = "Famotidine-associated delirium. A series of six cases. Famotidine is an H2 blocker."


MENTIONS = [
    Entity(id="T1", type="Chemical", text="Famotidine", offsets=[(0, 10)]),
    Entity(id="T2", type="Disease", text="delirium", offsets=[(22, 30)]),
]
PAIR = [
    Entity(id="a", type="Chemical", text="Cisplatin"),
    Entity(id="b", type="Disease", text="nephrotoxicity"),
]
TASK_EXAMPLES = {  # task -> (request body, the gold record fields the tiny model is trained to answer with)
    "ner": ({"text": NER_TEXT}, {"entities": MENTIONS}),
    "re": (
        {"text": "Cisplatin induced nephrotoxicity."},
        {"entities": PAIR, "relations": [Relation(type="CID", head_id="a", tail_id="b")]},
    ),
    "tc": (
        {"text": "患者咳嗽三天，应该挂哪个科？", "language": "zh", "labels": ["就医建议", "病因分析"]},
        {"labels": ["就医建议"]},
    ),
    "qa": (
        {"question": "Which drug is an NSAID?", "choices": {"A": "insulin", "B": "ibuprofen"}},
        {"answer": "B"},
    ),
}


@dataclass
class Models:
    main: Path
    adapter: Path
    tasks: Path
    gold: dict[str, str]


@pytest.fixture(scope="module")
def models(
    tmp_path_factory: pytest.TempPathFactory, qwen2_tokenizer_dir: Path, tiny_model_dir: Path
) -> Models:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from taiyi_ray.model.factory import load_for_inference

    tasks = build_tiny_export(tmp_path_factory.mktemp("served") / "tasks", qwen2_tokenizer_dir)
    loaded = load_for_inference(tasks)
    encode = lambda text: loaded.tokenizer(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    pairs, gold = [], {}
    for task, (body, fields) in TASK_EXAMPLES.items():
        request = {"ner": t.NERRequest, "re": t.RERequest, "tc": t.TCRequest, "qa": t.QARequest}[task](**body)
        record, entry = t.build_record(task, request)
        gold[task] = instruct.gold_answer(record.model_copy(update=fields), entry)
        prompt = loaded.chat_format.prompt_text(instruct.build_prompt(record, entry, seed=0))
        pairs.append((encode(prompt), encode(gold[task] + loaded.chat_format.end_token)))
    started = time.monotonic()
    memorise(tasks, pairs)
    log.info("trained the tiny model on %d task answers in %.1f s", len(pairs), time.monotonic() - started)
    adapter = tmp_path_factory.mktemp("adapter") / "med"
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir), lora).save_pretrained(adapter)
    return Models(tiny_model_dir, adapter, tasks, gold)


@dataclass
class Endpoint:
    url: str
    headers: dict[str, str]
    tasks_url: str


@pytest.fixture(scope="module")
def endpoint(ray_cluster: None, models: Models) -> Iterator[Endpoint]:
    from ray import serve

    from taiyi_ray.serve.app import build_app, build_application

    started = time.monotonic()
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port, "request_timeout_s": 120})
    args = yaml.safe_load((REPO / "configs" / "serve.yaml").read_text())["applications"][0]["args"]
    args |= {
        "model": str(models.main),
        "model_id": "tiny",
        "adapters": {"med": str(models.adapter)},
        "max_batch_size": 16,
        "max_tokens_limit": 64,
        "default_max_tokens": 16,
        "max_queued_requests": 256,
    }
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TAIYI_API_KEY", KEY)  # as a Secret would set it: read by the builder, never an argument
        main = build_app(args)
    tasks = ServeConfig(model=str(models.tasks), model_id="tasks", num_cpus_per_replica=0.5)
    serve.run_many(  # the two replicas start side by side
        [
            serve.RunTarget(main, name="taiyi-test", route_prefix="/"),
            serve.RunTarget(build_application(tasks), name="tasks", route_prefix="/tasks"),
        ]
    )
    url = f"http://127.0.0.1:{port}"
    log.info("Serve with two applications up in %.1f s", time.monotonic() - started)
    try:
        yield Endpoint(url, {"Authorization": f"Bearer {KEY}"}, f"{url}/tasks")
    finally:
        serve.shutdown()


@pytest.fixture(scope="module")
def client(endpoint: Endpoint) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=endpoint.url, headers=endpoint.headers, timeout=120) as http:
        yield http


def chat(client: httpx.Client, **fields: Any) -> dict[str, Any]:
    response = client.post("/v1/chat/completions", json={**CHAT, **fields})
    assert response.status_code == 200, response.text
    return ChatCompletion.model_validate(response.json()).model_dump()


def sse_payloads(response: httpx.Response) -> list[Any]:
    lines = [line[len("data: ") :] for line in response.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    return [json.loads(line) for line in lines[:-1]]


# -- API surface ------------------------------------------------------------------------------------------


def test_health_models_and_schema(client: httpx.Client) -> None:
    health = client.get("/healthz").json()
    assert health["status"] == "ok" and health["models"] == ["tiny", "tiny:med"]
    assert health["loaded"] == ["tiny"]  # the adapter loads on its first request
    models = client.get("/v1/models").json()
    assert [card["id"] for card in models["data"]] == ["tiny", "tiny:med"]
    assert models["data"][1]["parent"] == "tiny"
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/healthz",
        "/v1/models",
        "/v1/chat/completions",
        "/v1/completions",
        *(f"/v1/tasks/{x}" for x in t.TASKS),
    ):
        assert path in paths


def test_adapter_loads_on_demand_and_matches_peft(client: httpx.Client, models: Models) -> None:
    """`tiny:med` scores text as PEFT's own model with that adapter does, and unlike the base."""
    from peft import PeftModel

    from taiyi_ray.model.factory import load_for_inference
    from taiyi_ray.model.generation import prompt_logprobs

    body = {
        "prompt": "Aspirin inhibits cyclooxygenase in platelets",
        "max_tokens": 0,
        "echo": True,
        "logprobs": 0,
    }
    scored = {
        model: client.post("/v1/completions", json={**body, "model": model}).json()["choices"][0]["logprobs"]
        for model in ("tiny:med", "tiny")
    }
    assert client.get("/healthz").json()["loaded"] == ["tiny", "tiny:med"]
    loaded = load_for_inference(models.main)
    loaded.model = PeftModel.from_pretrained(loaded.model, str(models.adapter)).eval()
    ids = loaded.tokenizer(body["prompt"], add_special_tokens=False)["input_ids"]
    reference = [item.logprob for item in prompt_logprobs(loaded, ids, top_k=0)[1:]]
    assert scored["tiny:med"]["token_logprobs"][1:] == pytest.approx(reference, abs=1e-4)
    assert scored["tiny"]["token_logprobs"][1:] != pytest.approx(reference, abs=1e-2)
    assert chat(client, model="tiny:med")["model"] == "tiny:med"


def test_openai_client(endpoint: Endpoint) -> None:
    import openai

    api = openai.OpenAI(base_url=f"{endpoint.url}/v1", api_key=KEY, max_retries=0)
    assert [model.id for model in api.models.list()] == ["tiny", "tiny:med"]
    answer = api.chat.completions.create(model="tiny", messages=CHAT["messages"], max_tokens=5, temperature=0)
    assert answer.choices[0].finish_reason in ("stop", "length") and answer.usage.completion_tokens <= 5
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens
    assert answer.system_fingerprint and answer.system_fingerprint.startswith("fp_")
    pair = api.chat.completions.create(
        model="tiny", messages=CHAT["messages"], max_tokens=5, temperature=1.0, seed=11, n=2
    )
    assert [choice.index for choice in pair.choices] == [0, 1]
    assert pair.system_fingerprint == answer.system_fingerprint
    with pytest.raises(openai.BadRequestError, match="tools"):
        api.chat.completions.create(
            model="tiny",
            messages=CHAT["messages"],
            tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        )
    streamed = api.chat.completions.create(
        model="tiny", messages=CHAT["messages"], max_tokens=5, temperature=0, stream=True
    )
    assert (
        "".join(chunk.choices[0].delta.content or "" for chunk in streamed if chunk.choices)
        == answer.choices[0].message.content
    )
    legacy = api.completions.create(
        model="tiny", prompt="Aspirin is", max_tokens=3, logprobs=2, echo=True, temperature=0
    )
    assert (
        legacy.choices[0].text.startswith("Aspirin is")
        and legacy.choices[0].logprobs.token_logprobs[0] is None
    )
    with pytest.raises(openai.NotFoundError):
        api.chat.completions.create(model="nope", messages=CHAT["messages"])
    with pytest.raises(openai.BadRequestError):
        api.chat.completions.create(model="tiny", messages=[])
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{endpoint.url}/v1", api_key="wrong", max_retries=0).models.list()


def test_streaming_yields_the_same_text_as_not_streaming(client: httpx.Client) -> None:
    sampled = {"temperature": 0.9, "top_p": 0.95, "seed": 7, "max_tokens": 24, "stop": ["zz"]}
    whole = chat(client, **sampled)
    with client.stream(
        "POST",
        "/v1/chat/completions",
        json={**CHAT, **sampled, "stream": True, "stream_options": {"include_usage": True}},
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        chunks = sse_payloads(response)
    text = "".join(chunk["choices"][0]["delta"].get("content") or "" for chunk in chunks if chunk["choices"])
    assert text == whole["choices"][0]["message"]["content"]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-2]["choices"][0]["finish_reason"] == whole["choices"][0]["finish_reason"]
    assert chunks[-1]["usage"] == whole["usage"]
    body = {"prompt": "The patient", "max_tokens": 12, "seed": 3, "temperature": 1.0}
    plain = client.post("/v1/completions", json=body).json()["choices"][0]["text"]
    with client.stream("POST", "/v1/completions", json={**body, "stream": True}) as response:
        assert "".join(chunk["choices"][0]["text"] for chunk in sse_payloads(response)) == plain


def test_seed_is_honoured_exactly_under_concurrent_load(endpoint: Endpoint, client: httpx.Client) -> None:
    seeded = {**CHAT, "temperature": 1.0, "seed": 1234, "max_tokens": 16}
    alone = chat(client, **seeded)["choices"][0]["message"]["content"]
    assert chat(client, **{**seeded, "seed": 4321})["choices"][0]["message"]["content"] != alone

    async def crowd() -> list[dict[str, Any]]:
        async with httpx.AsyncClient(base_url=endpoint.url, headers=endpoint.headers, timeout=120) as http:
            others = [http.post("/v1/chat/completions", json={**CHAT, "temperature": 1.0}) for _ in range(8)]
            mine = [http.post("/v1/chat/completions", json=seeded) for _ in range(3)]
            responses = await asyncio.gather(*others, *mine)
        return [response.json() for response in responses[-3:]]

    assert [r["choices"][0]["message"]["content"] for r in asyncio.run(crowd())] == [alone] * 3


def test_completions_echo_and_logprobs(client: httpx.Client) -> None:
    body = {"prompt": "Aspirin inhibits cyclooxygenase", "max_tokens": 0, "echo": True, "logprobs": 1}
    scored = client.post("/v1/completions", json=body).json()
    choice = scored["choices"][0]
    assert choice["text"] == body["prompt"] and scored["usage"]["completion_tokens"] == 0
    logprobs = choice["logprobs"]
    assert len(logprobs["tokens"]) == scored["usage"]["prompt_tokens"]
    assert logprobs["token_logprobs"][0] is None and all(v <= 0 for v in logprobs["token_logprobs"][1:])
    for token, offset in zip(logprobs["tokens"], logprobs["text_offset"], strict=True):
        assert choice["text"][offset : offset + len(token)] == token
    generated = client.post(
        "/v1/completions", json={"prompt": ["a b", "c"], "max_tokens": 4, "logprobs": 2, "temperature": 0}
    ).json()
    assert [c["index"] for c in generated["choices"]] == [0, 1]
    first = generated["choices"][0]["logprobs"]
    assert first["text_offset"][0] == len("a b") and len(first["tokens"]) == 4
    assert all(
        max(top.values()) == pytest.approx(lp)
        for top, lp in zip(first["top_logprobs"], first["token_logprobs"], strict=True)
    )
    assert client.post("/v1/completions", json={"prompt": [9707, 1879], "max_tokens": 2}).status_code == 200


def test_task_endpoints_return_structured_answers(endpoint: Endpoint, models: Models) -> None:
    answers = {}
    for task, (body, _) in TASK_EXAMPLES.items():
        response = httpx.post(
            f"{endpoint.tasks_url}/v1/tasks/{task}", json={**body, "max_tokens": 64}, timeout=60
        )
        assert response.status_code == 200, response.text
        answers[task] = response.json()
        assert answers[task]["raw"] == models.gold[task] and answers[task]["parsed"] is True
    entities = {(e["type"], e["text"]): e["offsets"] for e in answers["ner"]["entities"]}
    assert entities == {("Chemical", "Famotidine"): [[0, 10], [55, 65]], ("Disease", "delirium"): [[22, 30]]}
    assert all(NER_TEXT[a:b] == text for (_, text), spans in entities.items() for a, b in spans)
    assert answers["re"]["relations"] == [{"type": "CID", "head": "Cisplatin", "tail": "nephrotoxicity"}]
    assert answers["tc"]["labels"] == ["就医建议"]
    assert (answers["qa"]["answer"], answers["qa"]["answer_text"]) == ("B", "ibuprofen")
    assert answers["ner"]["finish_reason"] == "stop" and answers["ner"]["usage"]["completion_tokens"] > 0


# -- bad input, auth ----------------------------------------------------------------------------------------

LONG = " ".join(["word"] * 5000)  # > 4096 tokens, the tiny model's context
BAD = [
    ("/v1/chat/completions", b"{not json", 400, "body"),
    ("/v1/chat/completions", {}, 400, "messages"),
    ("/v1/chat/completions", {"messages": []}, 400, "messages"),
    ("/v1/chat/completions", {"messages": "hi"}, 400, "messages"),
    ("/v1/chat/completions", {"messages": [{"role": "user"}]}, 400, "messages.0.content"),
    ("/v1/chat/completions", {**CHAT, "max_tokens": 0}, 400, "max_tokens"),
    ("/v1/chat/completions", {**CHAT, "max_tokens": 65}, 400, "max_tokens"),
    ("/v1/chat/completions", {**CHAT, "temperature": "hot"}, 400, "temperature"),
    ("/v1/chat/completions", {**CHAT, "model": "tiny:nope"}, 404, "model"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": LONG}]}, 400, "messages"),
    ("/v1/completions", {"prompt": [1] * 4090, "max_tokens": 10}, 400, "max_tokens"),
    ("/v1/completions", {"prompt": [1] * 4096, "max_tokens": 1}, 400, "prompt"),
    ("/v1/completions", {"prompt": [], "max_tokens": 1}, 400, "prompt"),
    ("/v1/completions", {"prompt": "", "max_tokens": 1}, 400, "prompt"),
    ("/v1/completions", {"prompt": [10**9]}, 400, "prompt"),
    ("/v1/completions", {"prompt": "a", "stream": True, "logprobs": 1}, 400, "stream"),
    ("/v1/tasks/ner", {"language": "en"}, 400, "text"),
    ("/v1/tasks/ner", {"text": "x", "entity_types": "Chemical"}, 400, "entity_types"),
    ("/v1/tasks/tc", {"text": "x"}, 400, "labels"),
    ("/v1/tasks/qa", {"question": "q", "qa_type": "multiple_choice"}, 400, "choices"),
    ("/v1/tasks/qa", {"question": "q", "language": "fr"}, 400, "language"),
    ("/v1/tasks/re", {"text": "x", "surprise": 1}, 400, "surprise"),
    ("/v1/tasks/ner", {"text": LONG}, 400, "text"),
    ("/v1/tasks/summarise", {"text": "x"}, 404, "task"),
]


@pytest.mark.parametrize(
    ("path", "body", "status", "param"),
    BAD,
    ids=[f"{p}:{param}:{i}" for i, (p, _, _, param) in enumerate(BAD)],
)
def test_bad_input_is_a_4xx_naming_the_field(
    client: httpx.Client, path: str, body: Any, status: int, param: str
) -> None:
    response = client.post(path, content=body) if isinstance(body, bytes) else client.post(path, json=body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["param"] == param and error["message"]
    assert param in error["message"] or param == "task"


def test_auth_is_required_and_the_key_never_logged(endpoint: Endpoint) -> None:
    import ray

    for headers in ({}, {"Authorization": "Bearer wrong-key-123"}, {"Authorization": KEY}):
        for path in ("/openapi.json", "/v1/models"):
            response = httpx.get(f"{endpoint.url}{path}", headers=headers)
            assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
            assert response.json()["error"]["code"] == "invalid_api_key"
        probe = httpx.get(f"{endpoint.url}/healthz", headers=headers)  # open to probes, without the models
        assert probe.status_code == 200 and probe.json()["models"] is None and "tiny" not in probe.text
    response = httpx.post(f"{endpoint.url}/v1/chat/completions", json=CHAT)
    assert response.status_code == 401
    assert httpx.get(f"{endpoint.url}/healthz", headers=endpoint.headers).status_code == 200
    time.sleep(1)  # let the log monitors flush
    logs = Path(ray._private.worker._global_node.get_logs_dir_path())
    leaked = [path.name for path in logs.rglob("*") if path.is_file() and KEY.encode() in path.read_bytes()]
    assert not leaked, f"the API key appears in {leaked}"
    assert not [
        path.name for path in logs.rglob("*") if path.is_file() and b"wrong-key-123" in path.read_bytes()
    ]


# -- fuzz, load, overload, drain ----------------------------------------------------------------------------


def test_openapi_fuzz_never_answers_5xx(endpoint: Endpoint) -> None:
    """schemathesis over HTTP through Serve's proxy, every check on every case (see `fuzz_openapi`):
    zero 5xx and zero mismatches between /openapi.json and what the API accepts and answers; bounded to
    12 cases per operation and mode, derandomised, and 150 s."""
    import schemathesis

    from tests.unit.serve.test_openai_fidelity import fuzz_openapi

    started = time.monotonic()
    schema = schemathesis.openapi.from_url(f"{endpoint.url}/openapi.json", headers=endpoint.headers)
    call = {"base_url": endpoint.url, "headers": endpoint.headers, "timeout": 60}
    report = fuzz_openapi(schema, max_examples=12, deadline_s=140, **call)
    log.info(
        "schemathesis: %d cases, %d checks, statuses %s, %d skipped (deadline) in %.1f s",
        report.cases,
        report.checks,
        dict(report.statuses),
        report.out_of_time,
        time.monotonic() - started,
    )
    assert not report.failures, "\n\n".join(report.failures[:5])
    assert report.cases >= 150 and report.out_of_time == 0
    assert {200, 400, 401, 404} <= set(report.statuses) and max(report.statuses) < 500, report.statuses


def test_load_500_requests_at_concurrency_32(endpoint: Endpoint, client: httpx.Client) -> None:
    async def load() -> tuple[list[httpx.Response], float]:
        gate = asyncio.Semaphore(32)
        limits = httpx.Limits(max_connections=32)
        async with httpx.AsyncClient(
            base_url=endpoint.url, headers=endpoint.headers, timeout=120, limits=limits
        ) as http:

            async def one(index: int) -> httpx.Response:
                async with gate:
                    body = {**CHAT, "max_tokens": 4 + index % 5, "temperature": 0.0 if index % 2 else 0.8}
                    return await http.post("/v1/chat/completions", json=body)

            started = time.monotonic()
            responses = await asyncio.gather(*(one(index) for index in range(500)))
        return responses, time.monotonic() - started

    before = client.get("/healthz").json()
    responses, elapsed = asyncio.run(load())
    assert [r.status_code for r in responses] == [200] * 500
    for index, response in enumerate(responses):
        parsed = ChatCompletion.model_validate(response.json())
        assert parsed.usage.completion_tokens <= 4 + index % 5
    after = client.get("/healthz").json()
    assert after["requests"] - before["requests"] == 500
    assert after["largest_batch"] > 1 and after["steps"] - before["steps"] < 500 * 4  # it batched
    assert elapsed < 240


# -- the engine process's lifetime ------------------------------------------------------------------------


def _replica_and_engine(app: str) -> tuple[Any, Any]:
    """The app's replica process and its engine process (the replica's one spawned child)."""
    import psutil

    for process in psutil.process_iter(["cmdline"]):
        if f"ServeReplica:{app}:" in " ".join(process.info["cmdline"] or []):
            engines = [c for c in process.children() if "spawn_main" in " ".join(c.cmdline())]
            assert len(engines) == 1, engines
            return process, engines[0]
    raise AssertionError(f"no replica of {app}")


def test_the_engine_process_ends_with_its_replica(endpoint: Endpoint, models: Models) -> None:
    """A replica killed (an OOM kill, a pod eviction) takes its engine process with it, Serve's replacement
    starts a new one, and deleting the app leaves no engine process behind."""
    import psutil
    from ray import serve

    from taiyi_ray.serve.app import build_application

    config = ServeConfig(model=str(models.tasks), model_id="life", num_cpus_per_replica=0.5)
    serve.run(build_application(config), name="life", route_prefix="/life")
    replica, engine = _replica_and_engine("life")
    assert httpx.get(f"{endpoint.url}/life/healthz", timeout=30).json()["loaded"] == ["life"]
    replica.kill()
    psutil.wait_procs([engine], timeout=30)
    assert not engine.is_running()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        answer = httpx.get(f"{endpoint.url}/life/healthz", timeout=30)
        if answer.status_code == 200 and answer.json().get("loaded") == ["life"]:
            break
        time.sleep(1)
    else:
        raise AssertionError("Serve did not replace the killed replica")
    _, new_engine = _replica_and_engine("life")
    serve.delete("life")
    psutil.wait_procs([new_engine], timeout=60)
    assert not new_engine.is_running()
