"""The strict CRD validation: the conversion KubeRay uses, real KubeRay samples accepted, unknown fields
rejected, and every CEL rule of the CRDs mirrored by a hand-written check."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from taiyi_ray.deploy.crd import strict, validate_resource
from taiyi_ray.deploy.kuberay_rules import CEL_RULES


def test_strict_closes_objects_but_not_preserved_ones() -> None:
    schema = {
        "type": "object",
        "properties": {
            "a": {"type": "object", "properties": {"b": {"type": "string"}}},
            "free": {"type": "object", "properties": {"c": {}}, "x-kubernetes-preserve-unknown-fields": True},
            "map": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    }
    result = strict(schema)
    assert result["additionalProperties"] is False
    assert result["properties"]["a"]["additionalProperties"] is False
    assert "additionalProperties" not in result["properties"]["free"]
    assert result["properties"]["map"]["additionalProperties"] == {"type": "string"}
    assert "additionalProperties" not in schema, "the input schema must not be modified"


def _samples(shared_dir: Path) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted((shared_dir / "kuberay" / "samples").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("apiVersion") == "ray.io/v1":
                found.append((path.name, doc))
    return found


def test_kuberay_samples_validate(shared_dir: Path, crd_dir: Path) -> None:
    samples = _samples(shared_dir)
    assert len(samples) >= 8
    for name, doc in samples:
        assert validate_resource(doc, crd_dir) == [], name


def test_unknown_fields_are_rejected_at_every_depth(shared_dir: Path, crd_dir: Path) -> None:
    name, doc = next(item for item in _samples(shared_dir) if item[1]["kind"] == "RayJob")
    for where in ("spec", "spec.rayClusterSpec.headGroupSpec.template.spec.containers.0"):
        broken = copy.deepcopy(doc)
        node: Any = broken
        for part in where.split("."):
            node = node[int(part)] if part.isdigit() else node[part]
        node["shutdownAfterJobFinish"] = True
        findings = validate_resource(broken, crd_dir)
        assert [finding.rule for finding in findings] == ["crd-schema"], (name, where, findings)
        assert "shutdownAfterJobFinish" in findings[0].message


def _cel_rules(node: Any) -> set[str]:
    rules: set[str] = set()
    if isinstance(node, dict):
        for item in node.get("x-kubernetes-validations") or []:
            rules.add(item["rule"])
        for value in node.values():
            rules |= _cel_rules(value)
    elif isinstance(node, list):
        for value in node:
            rules |= _cel_rules(value)
    return rules


@pytest.mark.parametrize("crd", ["ray.io_rayclusters.yaml", "ray.io_rayjobs.yaml", "ray.io_rayservices.yaml"])
def test_every_cel_rule_has_a_check(crd: str, crd_dir: Path) -> None:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the CRD files are 17-25k lines
    rules = _cel_rules(yaml.load((crd_dir / crd).read_text(), Loader=loader))
    assert rules, f"{crd}: no CEL rules found; expected at least managedBy's"
    assert rules <= set(CEL_RULES), (
        f"{crd}: CEL rules without a hand-written check: {sorted(rules - set(CEL_RULES))}"
    )
