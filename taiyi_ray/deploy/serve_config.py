"""The RayService's serveConfigV2 is configs/serve.yaml, differing only where a pod must differ: the
proxy listens on 0.0.0.0, and the replica count/size fits the cluster. Its `args` validate as the
`serve` section, its import path exists, and the model its replicas load is the one the `model-sync`
init container copies there from the export job's output."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from taiyi_ray.config.serving import ServeConfig
from taiyi_ray.deploy import Finding, resource_name
from taiyi_ray.deploy.capacity import check_serving

SIZING_ARGS = frozenset({"num_replicas", "num_cpus_per_replica", "num_gpus_per_replica", "autoscaling"})
MODEL_SYNC = "model-sync"


def check_service(doc: dict[str, Any], repo_root: Path, export_model: str | None) -> list[Finding]:
    """All serving rules for one RayService; `export_model` is the export RayJob's `<run dir>/model`."""
    where, spec = resource_name(doc), doc.get("spec") or {}
    try:
        deployed = yaml.safe_load(str(spec.get("serveConfigV2", "")))
    except yaml.YAMLError as error:
        return [Finding("serve-config", where, "spec.serveConfigV2", f"not YAML: {error}")]
    source = yaml.safe_load((repo_root / "configs" / "serve.yaml").read_text())
    apps = (deployed or {}).get("applications") or []
    if len(apps) != 1:
        return [
            Finding(
                "serve-config",
                where,
                "spec.serveConfigV2.applications",
                f"got {len(apps)} applications, expected 1",
            )
        ]
    findings = _drift(where, source, deployed)
    args = apps[0].get("args") or {}
    try:
        ServeConfig.model_validate(args)
    except ValidationError as error:
        findings.append(
            Finding(
                "serve-args", where, "spec.serveConfigV2.applications[0].args", str(error).replace("\n", "; ")
            )
        )
    module = str(apps[0].get("import_path", "")).split(":")[0]
    if not (repo_root / (module.replace(".", "/") + ".py")).is_file():
        findings.append(
            Finding(
                "serve-import",
                where,
                "spec.serveConfigV2.applications[0].import_path",
                f"got {module!r}, no such module in the repo",
            )
        )
    cluster = spec.get("rayClusterConfig") or {}
    findings += _model_sync(where, cluster, str(args.get("model")), export_model)
    findings += check_serving(where, cluster, args)
    return findings


def _drift(where: str, source: dict[str, Any], deployed: dict[str, Any]) -> list[Finding]:
    findings = []
    host = (deployed.get("http_options") or {}).get("host")
    if host != "0.0.0.0":
        findings.append(
            Finding(
                "serve-config",
                where,
                "spec.serveConfigV2.http_options.host",
                f"got {host!r}, expected 0.0.0.0 inside a pod",
            )
        )
    expected, got = _comparable(source), _comparable(deployed)
    for key in sorted(set(expected) | set(got)):
        if expected.get(key) != got.get(key):
            findings.append(
                Finding(
                    "serve-config-drift",
                    where,
                    f"spec.serveConfigV2.{key}",
                    f"got {got.get(key)!r}, expected {expected.get(key)!r} as in configs/serve.yaml",
                )
            )
    return findings


def _comparable(config: dict[str, Any]) -> dict[str, Any]:
    """Flattened serve config without the fields a pod may change."""
    flat: dict[str, Any] = {}

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict) and node:
            for key, value in node.items():
                walk(value, f"{path}.{key}" if path else str(key))
        elif isinstance(node, list) and node:
            for index, value in enumerate(node):
                walk(value, f"{path}[{index}]")
        else:
            flat[path] = node

    walk(config, "")
    return {
        key: value for key, value in flat.items()
        if key != "http_options.host" and not any(f".args.{name}" in key for name in SIZING_ARGS)
    }  # fmt: skip


def _model_sync(where: str, cluster: dict[str, Any], model: str, export_model: str | None) -> list[Finding]:
    findings = []
    for index, group in enumerate(cluster.get("workerGroupSpecs") or []):
        pod = (group.get("template") or {}).get("spec") or {}
        sync = [item for item in pod.get("initContainers") or [] if item.get("name") == MODEL_SYNC]
        path = f"spec.rayClusterConfig.workerGroupSpecs[{index}].template.spec.initContainers"
        if not sync:
            findings.append(
                Finding(
                    "serve-model", where, path, f"expected a {MODEL_SYNC!r} init container filling {model}"
                )
            )
            continue
        command = [str(part) for part in sync[0].get("command") or []]
        source, target = (command[-2], command[-1]) if len(command) >= 2 else (None, None)
        if target != model:
            findings.append(
                Finding(
                    "serve-model",
                    where,
                    path,
                    f"{MODEL_SYNC} writes {target!r}, but the replicas load args.model {model!r}",
                )
            )
        if export_model is not None and source != export_model:
            findings.append(
                Finding(
                    "chain",
                    where,
                    path,
                    f"{MODEL_SYNC} copies {source!r}, expected the export job's model {export_model!r}",
                )
            )
    return findings
