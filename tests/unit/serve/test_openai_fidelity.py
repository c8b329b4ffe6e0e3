"""OpenAI fidelity of the replica's API, in-process over the tiny random model: what real clients
(the `openai` package, lm-evaluation-harness, schemathesis) rely on beyond the happy path."""

from __future__ import annotations

from collections.abc import Iterator

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
