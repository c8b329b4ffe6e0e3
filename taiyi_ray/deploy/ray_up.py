"""Checks of a `ray up` cluster config (cluster/aws.yaml): Ray's own schema and defaults, a head with no
workloads, GPU workers that match the training recipe, pinned installs, token auth, no credentials."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

from taiyi_ray.deploy import Finding
from taiyi_ray.deploy.credentials import check_credentials
from taiyi_ray.deploy.pins import pinned_version


def check_ray_up(
    config: dict[str, Any], repo_root: Path, where: str, training_gpus: int | None = None
) -> list[Finding]:
    """All rules for one cluster-launcher config; `training_gpus`: the recipe's GPU workers, if known."""
    findings = _ray_schema(config, where)
    nodes = config.get("available_node_types") or {}
    head = nodes.get(config.get("head_node_type"), {})
    if (head.get("resources") or {}).get("CPU") != 0:
        findings.append(
            Finding(
                "head-no-workloads",
                where,
                "available_node_types.<head>.resources",
                f"got {head.get('resources')!r}, expected CPU: 0",
            )
        )
    gpus = sum(
        int((node.get("resources") or {}).get("GPU", 0)) * int(node.get("max_workers", 0))
        for node in nodes.values()
    )
    if training_gpus is not None and gpus != training_gpus:
        findings.append(
            Finding(
                "gpu-count",
                where,
                "available_node_types",
                f"GPU x max_workers = {gpus}, expected the recipe's {training_gpus} GPU workers",
            )
        )
    commands = " ; ".join(
        str(item)
        for key in ("setup_commands", "head_setup_commands", "worker_setup_commands")
        for item in config.get(key) or []
    )
    torch = pinned_version(repo_root, "torch")
    if re.findall(r"torch==([\w.+-]+)", commands) != [torch]:
        findings.append(
            Finding(
                "versions",
                where,
                "setup_commands",
                f"expected torch=={torch} installed once (constraints.txt)",
            )
        )
    if not re.search(r"--constraint\s+\S*constraints\.txt", commands):
        findings.append(
            Finding(
                "versions",
                where,
                "setup_commands",
                "expected this package installed with --constraint constraints.txt",
            )
        )
    starts = " ; ".join(
        str(item)
        for key in ("head_start_ray_commands", "worker_start_ray_commands")
        for item in config.get(key) or []
    )
    if starts.count("RAY_AUTH_MODE=token") != 2:
        findings.append(
            Finding(
                "auth",
                where,
                "*_start_ray_commands",
                "expected RAY_AUTH_MODE=token on the head and the workers",
            )
        )
    findings += [
        Finding(item.rule, where, item.field, item.message)
        for item in check_credentials({"kind": "ray-up", **config})
    ]
    return findings


def _ray_schema(config: dict[str, Any], where: str) -> list[Finding]:
    """What `ray up` itself checks before launching anything (offline: defaults merged, JSON schema)."""
    import jsonschema
    from ray.autoscaler._private.util import prepare_config, validate_config

    try:
        validate_config(prepare_config(copy.deepcopy(config)))
    except (jsonschema.ValidationError, ValueError, KeyError) as error:
        message = error.message if isinstance(error, jsonschema.ValidationError) else str(error)
        return [Finding("ray-schema", where, "", f"Ray rejects it: {message}")]
    return []
