"""OpenAI fidelity of the replica's API, in-process over the tiny random model: what real clients
(the `openai` package, lm-evaluation-harness, schemathesis) rely on beyond the happy path."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from taiyi_ray.serve.models import ModelRegistry

CHAT = {"messages": [{"role": "user", "content": "What is aspirin?"}], "max_tokens": 4}


@pytest.fixture
def ends_at_once(registry: ModelRegistry) -> Iterator[int]:
    """Makes the end token the model's greedy choice everywhere (as after a trained model's answer)."""
    end_id = registry.tokenizer.convert_tokens_to_ids(registry.chat_format.end_token)

    def boost(module: object, args: object, output) -> None:
        output.logits[..., end_id] += 50.0

    with registry.activate(registry.base_id) as loaded:
        handle = loaded.model.register_forward_hook(boost)
    try:
        yield end_id
    finally:
        handle.remove()


def test_lm_eval_loglikelihood_keeps_the_end_token_entry(api: TestClient, ends_at_once: int) -> None:
    """lm-eval scores `token_logprobs[ctxlen:-1]` of (echo, max_tokens 1): the generated end token must be
    the last entry, or the continuation's last token is cut off."""
    context, continuation = "Aspirin inhibits", " cyclooxygenase in platelets"
    ctxlen = len(
        api.post(
            "/v1/completions", json={"prompt": context, "max_tokens": 0, "echo": True, "logprobs": 0}
        ).json()["choices"][0]["logprobs"]["tokens"]
    )
    scored = api.post(
        "/v1/completions",
        json={"prompt": context + continuation, "max_tokens": 0, "echo": True, "logprobs": 1},
    ).json()
    asked = api.post(
        "/v1/completions",
        json={
            "prompt": context + continuation,
            "max_tokens": 1,
            "echo": True,
            "logprobs": 1,
            "temperature": 0,
        },
    ).json()
    choice = asked["choices"][0]
    assert choice["finish_reason"] == "stop" and choice["text"] == context + continuation
    logprobs = choice["logprobs"]
    prompt_tokens = scored["usage"]["prompt_tokens"]
    assert len(logprobs["tokens"]) == prompt_tokens + 1 and ctxlen < prompt_tokens
    assert logprobs["tokens"][-1] == "" and logprobs["text_offset"][-1] == len(choice["text"])
    assert logprobs["token_logprobs"][-1] > -1e-3  # the boosted end token is all but certain
    assert logprobs["top_logprobs"][-1] == {"": pytest.approx(logprobs["token_logprobs"][-1])}
    expected = scored["choices"][0]["logprobs"]["token_logprobs"][ctxlen:]
    assert logprobs["token_logprobs"][ctxlen:-1] == pytest.approx(expected, abs=1e-5)
    assert len(expected) == prompt_tokens - ctxlen >= 2


def test_chat_logprobs_show_the_end_token_with_empty_text(api: TestClient, ends_at_once: int) -> None:
    answer = api.post("/v1/chat/completions", json={**CHAT, "logprobs": True, "top_logprobs": 2}).json()
    choice = answer["choices"][0]
    assert choice["message"]["content"] == "" and choice["finish_reason"] == "stop"
    (entry,) = choice["logprobs"]["content"]
    assert entry["token"] == "" and entry["bytes"] == [] and entry["logprob"] > -1e-3
    assert entry["top_logprobs"][0]["token"] == "" and len(entry["top_logprobs"]) == 2


def test_generated_logprobs_without_the_end_token_are_unchanged(api: TestClient) -> None:
    answer = api.post(
        "/v1/completions", json={"prompt": "The patient", "max_tokens": 3, "logprobs": 2, "temperature": 0}
    ).json()
    logprobs = answer["choices"][0]["logprobs"]
    assert answer["choices"][0]["finish_reason"] == "length" and len(logprobs["tokens"]) == 3
    assert "".join(logprobs["tokens"]) == answer["choices"][0]["text"]
    assert all(token for token in logprobs["tokens"])


# -- n choices -------------------------------------------------------------------------------------------


def chat_texts(api: TestClient, **fields: object) -> list[str]:
    response = api.post("/v1/chat/completions", json={**CHAT, **fields})
    assert response.status_code == 200, response.text
    body = response.json()
    assert [choice["index"] for choice in body["choices"]] == list(range(len(body["choices"])))
    return [choice["message"]["content"] for choice in body["choices"]]


def test_n_choices_use_seed_plus_index(api: TestClient) -> None:
    sampled = {"temperature": 1.0, "seed": 40, "max_tokens": 6}
    three = chat_texts(api, n=3, **sampled)
    alone = [chat_texts(api, **{**sampled, "seed": 40 + i})[0] for i in range(3)]
    assert three == alone and len(set(three)) == 3
    greedy = chat_texts(api, n=2, temperature=0)
    assert len(greedy) == 2 and greedy[0] == greedy[1]


def test_n_choices_of_each_legacy_prompt_in_order(api: TestClient) -> None:
    body = {"prompt": ["a b", "c"], "n": 2, "max_tokens": 3, "temperature": 1.0, "seed": 9}
    answer = api.post("/v1/completions", json=body).json()
    texts = [choice["text"] for choice in answer["choices"]]
    assert [choice["index"] for choice in answer["choices"]] == [0, 1, 2, 3]
    single = {
        (prompt, seed): api.post(
            "/v1/completions", json={**body, "prompt": prompt, "n": 1, "seed": seed}
        ).json()
        for prompt in ("a b", "c")
        for seed in (9, 10)
    }
    assert texts == [single[key]["choices"][0]["text"] for key in single]
    prompt_tokens = sum(single[(prompt, 9)]["usage"]["prompt_tokens"] for prompt in ("a b", "c"))
    assert answer["usage"]["prompt_tokens"] == prompt_tokens and answer["usage"]["completion_tokens"] == 12


@pytest.mark.parametrize(("fields", "limit"), [({"n": 5}, 4), ({"n": 3}, 2), ({"n": 2, "stream": True}, 4)])
def test_n_beyond_the_limit_is_refused(make_api, fields: dict, limit: int) -> None:
    api = make_api(max_choices=limit)
    for path, body in (("/v1/chat/completions", CHAT), ("/v1/completions", {"prompt": "x", "max_tokens": 2})):
        response = api.post(path, json={**body, **fields})
        assert response.status_code == 400 and response.json()["error"]["param"] == "n", response.text


# -- fields we cannot honour -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "field", "value"),
    [
        ("/v1/chat/completions", "tools", [{"type": "function", "function": {"name": "f"}}]),
        ("/v1/completions", "logit_bias", {"11": 5}),
    ],
)
def test_unhonoured_fields_are_openai_400s(api: TestClient, path: str, field: str, value: object) -> None:
    body = CHAT if path.endswith("chat/completions") else {"prompt": "x", "max_tokens": 2}
    response = api.post(path, json={**body, field: value})
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["param"], error["type"]) == (field, "invalid_request_error")
    assert "not supported" in error["message"]


def test_json_schema_response_format_is_honoured(api: TestClient) -> None:
    """Constrained decoding: a random model, asked for a JSON schema's output, answers with JSON that
    satisfies it (and ends there: finish_reason "stop"); a schema outlines-core cannot compile is a 400."""
    schema = {
        "type": "object",
        "properties": {"answer": {"enum": ["yes", "no", "maybe"]}, "sure": {"type": "boolean"}},
        "required": ["answer", "sure"],
    }
    response_format = {
        "type": "json_schema",
        "json_schema": {"name": "verdict", "schema": schema, "strict": True},
    }
    body = {
        **CHAT,
        "max_tokens": 48,
        "n": 2,
        "temperature": 1.0,
        "seed": 7,
        "response_format": response_format,
    }
    response = api.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    for choice in response.json()["choices"]:
        assert choice["finish_reason"] == "stop"
        value = json.loads(choice["message"]["content"])
        assert set(value) == {"answer", "sure"} and value["answer"] in ("yes", "no", "maybe")
    free = api.post("/v1/chat/completions", json={**CHAT, "max_tokens": 48}).json()
    assert not free["choices"][0]["message"]["content"].startswith("{")
    bad = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "no-such-type"}}}
    refused = api.post("/v1/chat/completions", json={**CHAT, "response_format": bad})
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["param"] == "response_format.json_schema.schema"


# -- the schema is what validation accepts ---------------------------------------------------------------


def integer_branch(schema: dict, model: str, field: str) -> dict:
    prop = schema["components"]["schemas"][model]["properties"][field]
    (branch,) = [b for b in [prop, *prop.get("anyOf", [])] if b.get("type") == "integer"]
    return branch


def test_schema_carries_the_deployment_limits(make_api) -> None:
    api = make_api(max_tokens_limit=5, max_choices=3)
    schema = api.get("/openapi.json").json()
    assert integer_branch(schema, "ChatCompletionRequest", "max_tokens") == {
        "type": "integer",
        "minimum": 1,
        "maximum": 5,
    }
    assert integer_branch(schema, "ChatCompletionRequest", "max_completion_tokens")["maximum"] == 5
    assert integer_branch(schema, "CompletionRequest", "max_tokens") == {
        "type": "integer",
        "minimum": 0,
        "maximum": 5,
    }
    n = integer_branch(schema, "ChatCompletionRequest", "n")
    assert (n["minimum"], n["maximum"]) == (1, 3)
    assert integer_branch(schema, "NERRequest", "max_tokens")["maximum"] == 5
    chat = {**CHAT, "temperature": 0}
    assert api.post("/v1/chat/completions", json={**chat, "max_tokens": 5}).status_code == 200
    for path, body in (("/v1/chat/completions", chat), ("/v1/completions", {"prompt": "x"})):
        refused = api.post(path, json={**body, "max_tokens": 6})
        assert refused.status_code == 400 and refused.json()["error"]["param"] == "max_tokens"
    zero = api.post("/v1/chat/completions", json={**chat, "max_tokens": 0})
    assert zero.status_code == 400 and zero.json()["error"]["param"] == "max_tokens"
    nothing = api.post("/v1/completions", json={"prompt": "x", "max_tokens": 0}).json()["choices"][0]
    assert (nothing["text"], nothing["finish_reason"]) == ("", "length")


STRICT = [
    ("/v1/chat/completions", CHAT, "stream", "true"),
    ("/v1/chat/completions", CHAT, "stream", 1),
    ("/v1/chat/completions", CHAT, "logprobs", 1),
    ("/v1/chat/completions", CHAT, "max_tokens", 2.5),
    ("/v1/chat/completions", CHAT, "max_tokens", "2"),
    ("/v1/chat/completions", CHAT, "n", True),
    ("/v1/chat/completions", CHAT, "seed", "7"),
    ("/v1/chat/completions", CHAT, "temperature", "0.5"),
    ("/v1/completions", {"prompt": "x"}, "echo", "false"),
    ("/v1/completions", {"prompt": "x"}, "logprobs", True),
    ("/v1/completions", {"prompt": "x"}, "prompt", [1.5, 2.0]),
    ("/v1/completions", {"prompt": "x"}, "prompt", ""),
    ("/v1/completions", {"prompt": "x"}, "prompt", [[]]),
    ("/v1/tasks/tc", {"text": "x", "labels": ["a", "b"]}, "multi_label", "true"),
    ("/v1/tasks/ner", {"text": "x"}, "max_tokens", 4.5),
    ("/v1/tasks/ner", {"text": "x"}, "seed", True),
]


@pytest.mark.parametrize(("path", "body", "field", "value"), STRICT)
def test_no_lax_coercion(api: TestClient, path: str, body: dict, field: str, value: object) -> None:
    response = api.post(path, json={**body, field: value})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == field


@pytest.mark.parametrize("role", ["system", "assistant"])
def test_conversation_must_end_with_the_user(api: TestClient, role: str) -> None:
    messages = [*CHAT["messages"], {"role": role, "content": "Answer briefly."}]
    response = api.post("/v1/chat/completions", json={**CHAT, "messages": messages})
    assert response.status_code == 400 and response.json()["error"]["param"] == "messages"


def test_numbers_still_take_integers(api: TestClient) -> None:
    answer = api.post("/v1/chat/completions", json={**CHAT, "temperature": 0, "top_p": 1, "max_tokens": 2})
    assert answer.status_code == 200 and answer.json()["usage"]["completion_tokens"] == 2


def test_integers_take_integral_numbers(api: TestClient) -> None:
    """JSON Schema's `integer` is any number with a zero fractional part: 2.0 is one, as the schema says."""
    answer = api.post("/v1/chat/completions", json={**CHAT, "max_tokens": 2.0, "n": 2.0, "seed": 7.0})
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["choices"]) == 2 and answer.json()["usage"]["completion_tokens"] == 4
    ids = api.post("/v1/completions", json={"prompt": [9707.0, 11], "max_tokens": 0, "echo": True}).json()
    assert (
        ids["usage"]["prompt_tokens"] == 2
        and ids["choices"][0]["text"]
        == api.post("/v1/completions", json={"prompt": [9707, 11], "max_tokens": 0, "echo": True}).json()[
            "choices"
        ][0]["text"]
    )


@dataclass
class FuzzReport:
    """What `fuzz_openapi` ran: cases, the status codes they got, the checks run, the failures found."""

    cases: int = 0
    checks: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    out_of_time: int = 0


def fuzz_openapi(schema: Any, max_examples: int, deadline_s: float, **call: Any) -> FuzzReport:
    """schemathesis' positive and negative cases of every operation in `schema` (`max_examples` each),
    every response checked: no 5xx; status code, content type, headers and body as documented; auth
    enforced where declared; schema-valid requests accepted and invalid ones refused. Derandomised (the
    same cases every run); cases after `deadline_s` are skipped and counted in `out_of_time`. `call`:
    the arguments of `case.call` (base_url, headers, timeout).

    Two rules JSON Schema cannot state are in the schema's descriptions: the conversation ends with a
    user message (an array's last item), and a `json_schema` response format holds a JSON Schema that
    outlines-core can compile (any object is valid for the OpenAPI schema). Positive chat cases get a
    user message appended when theirs end otherwise, and a compilable schema in place of the generated
    one, so that they stay what the descriptions promise is valid."""
    from schemathesis import checks
    from schemathesis.generation.modes import GenerationMode

    common = [
        checks.not_a_server_error,
        checks.status_code_conformance,
        checks.content_type_conformance,
        checks.response_schema_conformance,
        checks.response_headers_conformance,
        checks.ignored_auth,
    ]
    by_mode = {
        GenerationMode.POSITIVE: [*common, checks.positive_data_acceptance],
        GenerationMode.NEGATIVE: [*common, checks.negative_data_rejection],
    }
    report, deadline = FuzzReport(), time.monotonic() + deadline_s
    for result in schema.get_all_operations():
        for mode, mode_checks in by_mode.items():
            _fuzz_operation(result.ok(), mode, mode_checks, max_examples, report, deadline, call)
    return report


def _fuzz_operation(
    operation: Any,
    mode: Any,
    mode_checks: list,
    max_examples: int,
    report: FuzzReport,
    deadline: float,
    call: dict[str, Any],
) -> None:
    from hypothesis import HealthCheck, given, settings
    from hypothesis.errors import Unsatisfiable

    strategy = operation.as_strategy(generation_mode=mode)
    if mode.is_positive and operation.path == "/v1/chat/completions":
        strategy = strategy.map(_as_described)
    transport = {key: call[key] for key in ("base_url", "headers", "timeout") if key in call}

    @settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case: Any) -> None:
        if time.monotonic() > deadline:
            report.out_of_time += 1
            return
        response = case.call(**call)
        report.cases += 1
        report.checks += len(mode_checks)
        report.statuses[response.status_code] += 1
        try:
            case.validate_response(
                response, checks=mode_checks, headers=call.get("headers"), transport_kwargs=transport
            )
        except BaseExceptionGroup as group:  # schemathesis' FailureGroup: one per failed check
            sent = f"{case.method} {case.path} ({mode.value}) {repr(case.body)[:300]}"
            label = f"{sent} -> {response.status_code} {response.text[:300]}"
            report.failures += [f"{label}: {failure}" for failure in group.exceptions]

    try:
        run()
    except Unsatisfiable:  # nothing to get wrong: a GET without parameters
        assert mode.is_negative


def _as_described(case: Any) -> Any:
    if isinstance(case.body, dict) and case.body["messages"][-1].get("role") != "user":
        case.body["messages"].append({"role": "user", "content": "And?"})
    response_format = case.body.get("response_format") if isinstance(case.body, dict) else None
    if isinstance(response_format, dict) and response_format.get("type") == "json_schema":
        response_format["json_schema"]["schema"] = {
            "type": "object",
            "properties": {"ok": {"type": "boolean"}},
        }
    return case


def test_openapi_schema_is_what_the_api_accepts_and_answers(make_api) -> None:
    """schemathesis over the in-process API (ASGI, with the API key on): zero failures of any check."""
    import schemathesis

    from taiyi_ray.serve.auth import key_digest

    headers = {"Authorization": "Bearer sk-fuzz"}
    app = make_api(api_key_digest=key_digest("sk-fuzz"), max_tokens_limit=32, default_max_tokens=8).app
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, headers=headers)
    report = fuzz_openapi(schema, max_examples=10, deadline_s=60, headers=headers)
    assert not report.failures, "\n\n".join(report.failures[:5])
    assert report.out_of_time == 0 and report.cases >= 150
    assert {200, 400, 401, 404} <= set(report.statuses) and max(report.statuses) < 500, report.statuses


# -- model id and system_fingerprint ---------------------------------------------------------------------


def test_model_id_is_the_exports_model_name(api: TestClient, tiny_model_dir) -> None:
    name = json.loads((tiny_model_dir / "taiyi_export.json").read_text())["model_name"]
    assert name != tiny_model_dir.name
    assert [card["id"] for card in api.get("/v1/models").json()["data"]] == [name]
    assert api.post("/v1/chat/completions", json={**CHAT, "model": name}).json()["model"] == name
    assert api.post("/v1/chat/completions", json=CHAT).json()["model"] == name  # no model: the base
    for unknown in ("model", tiny_model_dir.name):
        error = api.post("/v1/chat/completions", json={**CHAT, "model": unknown})
        assert error.status_code == 404
        assert (error.json()["error"]["param"], error.json()["error"]["code"]) == ("model", "model_not_found")


def sse_payloads(text: str) -> list[dict]:
    lines = [line[len("data: ") :] for line in text.splitlines() if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    return [json.loads(line) for line in lines[:-1]]


def test_system_fingerprint_is_set_and_follows_the_engine_settings(make_api) -> None:
    api = make_api()
    fingerprints = {
        api.post("/v1/chat/completions", json=CHAT).json()["system_fingerprint"],
        api.post("/v1/completions", json={"prompt": "x", "max_tokens": 2}).json()["system_fingerprint"],
        *(
            chunk["system_fingerprint"]
            for path, body in (
                ("/v1/chat/completions", CHAT),
                ("/v1/completions", {"prompt": "x", "max_tokens": 2}),
            )
            for chunk in sse_payloads(api.post(path, json={**body, "stream": True}).text)
        ),
    }
    (fingerprint,) = fingerprints
    options = {"stream": True, "stream_options": {"include_usage": True}}
    for path, body in (("/v1/chat/completions", CHAT), ("/v1/completions", {"prompt": "x", "max_tokens": 4})):
        chunks = sse_payloads(api.post(path, json={**body, **options}).text)
        assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 4
        assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert fingerprint.startswith("fp_") and len(fingerprint) == 15
    assert make_api().post("/v1/chat/completions", json=CHAT).json()["system_fingerprint"] == fingerprint
    # on a CPU the engine is batch-invariant: the batch size does not change outputs, so not the fingerprint
    same = make_api(max_batch_size=2).post("/v1/chat/completions", json=CHAT).json()["system_fingerprint"]
    other = (
        make_api(max_context_tokens=64).post("/v1/chat/completions", json=CHAT).json()["system_fingerprint"]
    )
    assert same == fingerprint and other.startswith("fp_") and other != fingerprint


def test_model_digest_follows_the_export_info(tmp_path: Path) -> None:
    from taiyi_ray.serve.models import model_digest

    (tmp_path / "config.json").write_text('{"hidden_size": 8}')
    before = model_digest(tmp_path)
    (tmp_path / "taiyi_export.json").write_text('{"model_name": "a", "from_run": "r1"}')
    first = model_digest(tmp_path)
    (tmp_path / "taiyi_export.json").write_text('{"model_name": "a", "from_run": "r2"}')
    assert len({before, first, model_digest(tmp_path)}) == 3


# -- health for probes -----------------------------------------------------------------------------------


def test_healthz_is_open_to_probes_but_shows_models_only_with_the_key(
    make_api, registry: ModelRegistry
) -> None:
    from taiyi_ray.serve.auth import key_digest

    api = make_api(api_key_digest=key_digest("s3cret"))
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        probe = api.get("/healthz", headers=headers)
        assert probe.status_code == 200 and registry.base_id not in probe.text
        assert probe.json() == {
            "status": "ok",
            "models": None,
            "loaded": None,
            "steps": None,
            "requests": None,
            "largest_batch": None,
        }
        for path in ("/v1/models", "/openapi.json"):
            assert api.get(path, headers=headers).status_code == 401
    full = api.get("/healthz", headers={"Authorization": "Bearer s3cret"}).json()
    assert full["models"] == [registry.base_id] and full["requests"] == 0
    assert make_api().get("/healthz").json()["models"] == [registry.base_id]  # no key configured: all shown


# -- admission -------------------------------------------------------------------------------------------


def test_admission_refuses_beyond_the_limit_with_json_503() -> None:
    """Two streamed requests held inside; the next three are refused at once, as OpenAI errors; once the
    streams end, a new one is admitted again. GETs (health) are never counted."""
    import asyncio

    import httpx
    from fastapi import FastAPI
    from fastapi.responses import StreamingResponse

    from taiyi_ray.serve.api import Admission

    release = asyncio.Event()
    inner = FastAPI()

    @inner.post("/work")
    async def work() -> StreamingResponse:
        async def events() -> AsyncIterator[str]:
            yield "data: first\n\n"  # headers and a first event are out: the request still counts
            await release.wait()
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    @inner.get("/healthz")
    async def health() -> dict:
        return {"status": "ok"}

    async def scenario() -> None:
        admission = Admission(inner, limit=2, retry_after_s=1.5)
        transport = httpx.ASGITransport(app=admission)
        async with httpx.AsyncClient(transport=transport, base_url="http://replica") as http:
            held = [asyncio.ensure_future(http.post("/work")) for _ in range(2)]
            while admission.active < 2:
                await asyncio.sleep(0.01)
            refused = await asyncio.wait_for(asyncio.gather(*(http.post("/work") for _ in range(3))), 5)
            assert (await http.get("/healthz")).status_code == 200
            for response in refused:
                assert response.status_code == 503 and response.headers["retry-after"] == "2"
                error = response.json()["error"]
                assert (error["type"], error["code"]) == ("overloaded_error", "overloaded")
            assert not any(task.done() for task in held)
            release.set()
            assert [(await task).status_code for task in held] == [200, 200]
            assert admission.active == 0 and (await http.post("/work")).status_code == 200

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("path", "body", "field", "allowed"),
    [
        (
            "/v1/tasks/qa",
            {"question": "Which is an NSAID?", "choices": {"A": "insulin", "B": "ibuprofen", "C": "x"}},
            "answer",
            {"A", "B", "C"},
        ),
        (
            "/v1/tasks/qa",
            {"question": "Is aspirin an NSAID?", "qa_type": "yes_no"},
            "answer",
            {"yes", "no", "maybe"},
        ),
        (
            "/v1/tasks/qa",
            {"question": "阿司匹林是非甾体抗炎药吗？", "qa_type": "yes_no", "language": "zh"},
            "answer",
            {"yes", "no", "maybe"},
        ),
        (
            "/v1/tasks/tc",
            {
                "text": "患者咳嗽三天，应该挂哪个科？",
                "language": "zh",
                "labels": ["就医建议", "病因分析", "其他"],
            },
            "labels",
            {"就医建议", "病因分析", "其他"},
        ),
    ],
)
def test_closed_task_answers_always_parse(
    api: TestClient, path: str, body: dict, field: str, allowed: set
) -> None:
    """/v1/tasks/*: a closed question's answer is decoded under a grammar of its whole answers, so even a
    random model's output parses to one of them (and ends right there)."""
    for seed in range(3):
        response = api.post(path, json={**body, "temperature": 1.0, "seed": seed, "max_tokens": 32})
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["parsed"] and answer["finish_reason"] == "stop", answer
        got = answer[field] if field == "answer" else answer[field][0]
        assert got in allowed, answer
