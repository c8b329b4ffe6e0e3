"""cluster/aws.yaml: accepted by Ray's own cluster-config validation, and the project's rules hold."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from deploy.helpers import REPO_ROOT
from taiyi_ray.deploy.ray_up import check_ray_up

AWS = REPO_ROOT / "cluster" / "aws.yaml"


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return yaml.safe_load(AWS.read_text())


def recipe_gpus() -> int | None:
    from taiyi_ray.config import JOB_CONFIGS, load_job_config

    recipe = REPO_ROOT / "configs" / "qwen2.5-7b-8gpu.yaml"
    stage1 = load_job_config(JOB_CONFIGS["stage1"], recipe).stage1  # type: ignore[attr-defined]
    return stage1.num_workers if stage1.use_gpu else None


def test_aws_config_is_valid(config: dict[str, Any]) -> None:
    findings = check_ray_up(config, REPO_ROOT, "cluster/aws.yaml", training_gpus=recipe_gpus())
    assert not findings, "\n".join(map(str, findings))
    assert set(config["available_node_types"]) == {"ray.head.default", "ray.worker.gpu", "ray.worker.cpu"}


CASES = [
    ("ray-schema", lambda c: c.update(head_node_type="ray.head.missing")),
    ("ray-schema", lambda c: c["available_node_types"]["ray.worker.gpu"].update(min_worker=0)),
    ("ray-schema", lambda c: c.pop("provider")),
    ("head-no-workloads", lambda c: c["available_node_types"]["ray.head.default"].update(resources={})),
    ("gpu-count", lambda c: c["available_node_types"]["ray.worker.gpu"].update(max_workers=3)),
    (
        "versions",
        lambda c: c.update(
            setup_commands=[cmd.replace("torch==2.13.0", "torch") for cmd in c["setup_commands"]]
        ),
    ),
    (
        "versions",
        lambda c: c.update(
            setup_commands=[
                cmd.replace("--constraint ~/taiyi-ray/constraints.txt ", "") for cmd in c["setup_commands"]
            ]
        ),
    ),
    (
        "auth",
        lambda c: c.update(
            worker_start_ray_commands=[
                cmd.replace("RAY_AUTH_MODE=token ", "") for cmd in c["worker_start_ray_commands"]
            ]
        ),
    ),
    ("inline-credentials", lambda c: c["provider"].update(aws_secret_access_key="abc123")),
]


@pytest.mark.parametrize(
    ("rule", "mutate"), CASES, ids=[f"{rule}-{index}" for index, (rule, _) in enumerate(CASES)]
)
def test_rule_fires(rule: str, mutate: Any, config: dict[str, Any]) -> None:
    broken = copy.deepcopy(config)
    mutate(broken)
    rules = {finding.rule for finding in check_ray_up(broken, REPO_ROOT, "aws.yaml", training_gpus=8)}
    assert rule in rules, f"expected {rule}, got {rules}"
