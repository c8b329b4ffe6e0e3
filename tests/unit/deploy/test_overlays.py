"""Every overlay renders and passes every check, and says what it should (CPU demo vs 8-GPU recipe)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from deploy.helpers import OVERLAYS, REPO_ROOT, find
from taiyi_ray.config import JOB_CONFIGS, load_job_config
from taiyi_ray.deploy.capacity import group_capacity
from taiyi_ray.deploy.entrypoints import parse_entrypoint
from taiyi_ray.deploy.validate import validate_docs


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_is_valid(overlay: str, rendered: dict[str, list[dict[str, Any]]], crd_dir: Path) -> None:
    findings = validate_docs(rendered[overlay], crd_dir)
    assert not findings, "\n".join(str(finding) for finding in findings)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_has_every_resource(overlay: str, rendered: dict[str, list[dict[str, Any]]]) -> None:
    kinds = sorted(f"{doc['kind']}/{doc['metadata']['name']}" for doc in rendered[overlay])
    assert kinds == [
        "ConfigMap/taiyi-storage", "RayCluster/taiyi-ray",
        "RayJob/taiyi-evaluate", "RayJob/taiyi-export", "RayJob/taiyi-prepare-data", "RayJob/taiyi-stage1",
        "RayJob/taiyi-stage2", "RayService/taiyi-serve", "ServiceAccount/taiyi-ray",
    ]  # fmt: skip
    assert {doc["metadata"]["namespace"] for doc in rendered[overlay]} == {f"taiyi-{overlay}"}


def _stage_config(docs: list[dict[str, Any]], job: str) -> Any:
    _script, options, _ = parse_entrypoint(find(docs, "RayJob", f"taiyi-{job}")["spec"]["entrypoint"])
    return load_job_config(JOB_CONFIGS[job], REPO_ROOT / options["--config"][0], options.get("--set", []))


def test_dev_is_one_cpu_node_with_the_demo(rendered: dict[str, list[dict[str, Any]]]) -> None:
    docs = rendered["dev"]
    cluster = find(docs, "RayCluster")["spec"]
    assert [group["groupName"] for group in cluster["workerGroupSpecs"]] == ["cpu"]
    assert group_capacity(cluster, "nvidia.com/gpu") == 0 and group_capacity(cluster, "cpu") == 4
    assert "configs/demo.yaml" in find(docs, "RayJob", "taiyi-stage1")["spec"]["entrypoint"]
    stage1 = _stage_config(docs, "stage1").stage1
    assert not stage1.use_gpu and stage1.num_workers * stage1.cpus_per_worker <= 4


def test_prod_gpus_equal_the_recipe_workers(rendered: dict[str, list[dict[str, Any]]]) -> None:
    docs = rendered["prod"]
    cluster = find(docs, "RayJob", "taiyi-stage1")["spec"]["rayClusterSpec"]
    gpu_group = next(group for group in cluster["workerGroupSpecs"] if group["groupName"] == "gpu")
    assert gpu_group["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "8"
    for job in ("stage1", "stage2"):
        stage = getattr(_stage_config(docs, job), job)
        assert stage.use_gpu and stage.num_workers == group_capacity(cluster, "nvidia.com/gpu")
