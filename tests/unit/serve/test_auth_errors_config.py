"""Bearer auth, error objects that name the field, and the Serve deployment built from the config."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from taiyi_ray.config.serving import ServeConfig
from taiyi_ray.serve import auth
from taiyi_ray.serve.errors import describe_validation_error
from taiyi_ray.serve.schemas import ChatCompletionRequest, CompletionRequest

SERVE_YAML = Path(__file__).resolve().parents[3] / "configs" / "serve.yaml"


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc", "abc"),
        ("bearer  abc ", "abc"),
        ("Basic abc", None),
        ("Bearer", None),
        ("Bearer ", None),
        (None, None),
    ],
)
def test_bearer_token(header: str | None, token: str | None) -> None:
    assert auth.bearer_token(header) == token


def test_key_is_compared_by_digest() -> None:
    digest = auth.key_digest("s3cret")
    assert "s3cret" not in digest
    assert auth.is_authorised("Bearer s3cret", digest)
    assert not auth.is_authorised("Bearer s3cre", digest)
    assert not auth.is_authorised(None, digest)
    assert auth.api_key_digest_from_env({"TAIYI_API_KEY": "s3cret"}) == digest
    assert auth.api_key_digest_from_env({"TAIYI_API_KEY": ""}) is None
    assert auth.api_key_digest_from_env({}) is None


def problem(model: type, body: object) -> tuple[str, str | None]:
    """What the API answers for `body`: FastAPI wraps pydantic errors with a leading "body" location."""
    try:
        model.model_validate(body)
    except ValidationError as error:
        errors = [{**item, "loc": ("body", *item["loc"])} for item in error.errors()]
        return describe_validation_error(RequestValidationError(errors))
    raise AssertionError(f"{body!r} validated")


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "messages"),
        ({"messages": []}, "messages"),
        ({"messages": "hi"}, "messages"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages.0.content"),
        ({"messages": [{"role": "robot", "content": "hi"}]}, "messages.0.role"),
        ({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}, "messages"),
        ({"messages": [{"role": "user", "content": "hi"}], "temperature": "hot"}, "temperature"),
        ({"messages": [{"role": "user", "content": "hi"}], "max_tokens": -1}, "max_tokens"),
        ({"messages": [{"role": "user", "content": "hi"}], "n": 0}, "n"),
        ({"messages": [{"role": "user", "content": "hi"}], "stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"messages": [{"role": "user", "content": "hi"}], "top_logprobs": 99}, "top_logprobs"),
    ],
)
def test_chat_validation_errors_name_the_field(body: object, param: str) -> None:
    message, named = problem(ChatCompletionRequest, body)
    assert named == param
    assert message.startswith(f"{param}: ")
    assert "got" in message


def test_completion_validation_errors_name_the_field() -> None:
    assert problem(CompletionRequest, {})[1] == "prompt"
    assert problem(CompletionRequest, {"prompt": "a", "logprobs": -1})[1] == "logprobs"
    assert problem(CompletionRequest, {"prompt": "a", "best_of": 3})[1] == "best_of"
    assert problem(CompletionRequest, {"prompt": {"a": 1}})[1] == "prompt"


def test_text_parts_and_prompt_forms() -> None:
    parts = ChatCompletionRequest.model_validate(
        {
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}
            ]
        }
    )
    assert parts.messages[0].text() == "ab"
    assert CompletionRequest(prompt="x").prompts() == ["x"]
    assert CompletionRequest(prompt=[1, 2]).prompts() == [[1, 2]]
    assert CompletionRequest(prompt=[[1], [2]]).prompts() == [[1], [2]]
    assert CompletionRequest(prompt=["a", "b"]).prompts() == ["a", "b"]


def test_serve_yaml_builds_the_application(tmp_path: Path) -> None:
    """configs/serve.yaml: Serve's own schema accepts it; its args are a valid `serve` section."""
    from ray.serve.schema import ServeDeploySchema

    from taiyi_ray.serve.app import DEPLOYMENT_NAME, build_app, deployment_options

    data = yaml.safe_load(SERVE_YAML.read_text())
    ServeDeploySchema.model_validate(data)
    (application,) = data["applications"]
    assert application["import_path"] == "taiyi_ray.serve.app:build_app"
    config = ServeConfig.model_validate(application["args"])
    options = deployment_options(config)
    assert config.max_ongoing_requests >= config.max_batch_size
    # Serve passes the headroom through, so that the replica itself refuses with an OpenAI error
    assert options["max_ongoing_requests"] == config.max_ongoing_requests + config.admission_headroom
    assert options["max_queued_requests"] == config.max_queued_requests
    assert options["backpressure_config"].status_code == 503
    assert options["backpressure_config"].retry_after_s == config.retry_after_s
    assert options["ray_actor_options"] == {"num_cpus": 1, "num_gpus": 0}
    assert options["num_replicas"] == 1
    app = build_app({**application["args"], "model": str(tmp_path)})  # builds lazily: nothing is loaded here
    assert type(app).__name__ == "Application"
    assert options["name"] == DEPLOYMENT_NAME


def test_autoscaling_replaces_num_replicas() -> None:
    from taiyi_ray.serve.app import deployment_options

    config = ServeConfig(
        model="/m", num_gpus_per_replica=1, autoscaling={"min_replicas": 1, "max_replicas": 4}
    )
    options = deployment_options(config)
    assert "num_replicas" not in options
    assert options["autoscaling_config"] == {
        "min_replicas": 1,
        "max_replicas": 4,
        "target_ongoing_requests": 16,
    }
    assert options["ray_actor_options"]["num_gpus"] == 1


@pytest.mark.parametrize("name", ["a:b", "a/b", ""])
def test_adapter_names_cannot_break_model_ids(name: str) -> None:
    with pytest.raises(ValidationError, match="adapter name"):
        ServeConfig(adapters={name: "/x"})


def test_batches_need_room() -> None:
    with pytest.raises(ValidationError, match="max_ongoing_requests"):
        ServeConfig(max_batch_size=16, max_ongoing_requests=8)


def test_cuda_graphs_need_gpu_replicas() -> None:
    with pytest.raises(ValidationError, match=r"cuda_graphs needs GPU replicas \(num_gpus_per_replica > 0\)"):
        ServeConfig(cuda_graphs=True)
    assert ServeConfig(cuda_graphs=True, num_gpus_per_replica=1).cuda_graphs


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("tools", [{"type": "function", "function": {"name": "f"}}]),
        ("tools", []),
        ("tool_choice", "auto"),
        ("tool_choice", "none"),
        ("functions", [{"name": "f"}]),
        ("function_call", "auto"),
        ("parallel_tool_calls", False),
        ("logit_bias", {"50256": -100}),
        ("response_format", "text"),
    ],
)
def test_fields_we_cannot_honour_are_refused_by_name(field: str, value: object) -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], field: value}
    message, param = problem(ChatCompletionRequest, body)
    assert param == field and message.startswith(f"{field}: ")
    if field == "logit_bias":
        assert problem(CompletionRequest, {"prompt": "x", field: value})[0] == message


def test_harmless_values_and_unknown_fields_are_accepted() -> None:
    request = ChatCompletionRequest.model_validate(
        {
            "messages": [{"role": "user", "content": "hi"}],
            "response_format": {"type": "text"},
            "logit_bias": {},
            "tools": None,
            "store": True,  # unknown to this server: ignored, as before
        }
    )
    assert request.response_format is not None and request.response_format.type == "text"
    assert CompletionRequest.model_validate({"prompt": "x", "logit_bias": None}).logit_bias is None
