"""Render kustomize overlays and walk the pod templates inside KubeRay resources."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

RAY_API_VERSION = "ray.io/v1"
KUBERAY_KINDS = ("RayCluster", "RayJob", "RayService")


class RenderError(RuntimeError):
    """`kubectl kustomize` failed or is missing."""


def render(overlay: str | Path) -> list[dict[str, Any]]:
    """The resources `kubectl kustomize OVERLAY` produces (offline), as parsed YAML documents."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise RenderError("kubectl not found on PATH; expected kubectl >= 1.27 (it bundles kustomize v5)")
    result = subprocess.run([kubectl, "kustomize", str(overlay)], capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise RenderError(
            f"kubectl kustomize {overlay} failed (exit {result.returncode}):\n{result.stderr.strip()}"
        )
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def cluster_specs(doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(field path, RayClusterSpec) of a RayCluster, RayJob or RayService."""
    spec = doc.get("spec") or {}
    kind = doc.get("kind")
    if kind == "RayCluster":
        yield "spec", spec
    elif kind == "RayJob" and isinstance(spec.get("rayClusterSpec"), dict):
        yield "spec.rayClusterSpec", spec["rayClusterSpec"]
    elif kind == "RayService" and isinstance(spec.get("rayClusterConfig"), dict):
        yield "spec.rayClusterConfig", spec["rayClusterConfig"]


@dataclass(frozen=True)
class PodTemplate:
    """A pod spec inside a resource: `role` is head, worker or submitter; `group` the worker group."""

    path: str
    role: str
    group: str
    spec: dict[str, Any]
    ray_start_params: dict[str, Any]


def pod_templates(doc: dict[str, Any]) -> Iterator[PodTemplate]:
    """Every pod template of a KubeRay resource: head, each worker group, the RayJob submitter."""
    for base, cluster in cluster_specs(doc):
        head = cluster.get("headGroupSpec") or {}
        path = f"{base}.headGroupSpec.template.spec"
        yield PodTemplate(path, "head", "head", _spec(head), head.get("rayStartParams") or {})
        for index, group in enumerate(cluster.get("workerGroupSpecs") or []):
            path = f"{base}.workerGroupSpecs[{index}].template.spec"
            name = str(group.get("groupName", index))
            yield PodTemplate(path, "worker", name, _spec(group), group.get("rayStartParams") or {})
    submitter = (doc.get("spec") or {}).get("submitterPodTemplate")
    if doc.get("kind") == "RayJob" and isinstance(submitter, dict):
        yield PodTemplate(
            "spec.submitterPodTemplate.spec", "submitter", "submitter", submitter.get("spec") or {}, {}
        )


def _spec(group: dict[str, Any]) -> dict[str, Any]:
    return (group.get("template") or {}).get("spec") or {}


def containers(pod: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(`containers[i]` / `initContainers[i]`, container) of a pod spec."""
    for key in ("initContainers", "containers"):
        for index, container in enumerate(pod.get(key) or []):
            yield f"{key}[{index}]", container


def quantity(value: Any) -> float:
    """A Kubernetes quantity as a number: "8" -> 8, "500m" -> 0.5, "16Gi" -> 16 * 2**30."""
    text = str(value).strip()
    suffixes = {
        "m": 1e-3,
        "k": 1e3,
        "M": 1e6,
        "G": 1e9,
        "T": 1e12,
        "Ki": 2**10,
        "Mi": 2**20,
        "Gi": 2**30,
        "Ti": 2**40,
    }
    for suffix in sorted(suffixes, key=len, reverse=True):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * suffixes[suffix]
    return float(text)


def as_int(value: Any, default: int = 0) -> int:
    """An integer field, or `default` when it is missing or mistyped (the schema check reports those)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else default
