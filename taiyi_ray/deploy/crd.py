"""Strict validation of KubeRay resources against the CRDs' OpenAPI schemas, offline.

What KubeRay's own kubeconform conversion (scripts/openapi2jsonschema.py) does: take the schema of the
served version, add `additionalProperties: false` wherever `properties` is set and
`x-kubernetes-preserve-unknown-fields` is not, so an unknown (e.g. misspelt) field is an error, as the
API server's pruning would silently drop it. CEL rules (`x-kubernetes-validations`) are not evaluated
here: `kuberay_rules` checks them by hand.
"""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from taiyi_ray.deploy import Finding, resource_name

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def strict(schema: Any) -> Any:
    """A copy of `schema` with `additionalProperties: false` added where KubeRay's conversion adds it."""
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    result = {key: strict(value) for key, value in schema.items()}
    if "properties" in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
        result.setdefault("additionalProperties", False)
    return result


@cache
def load_schemas(crd_dir: str, version: str = "v1") -> dict[tuple[str, str], dict[str, Any]]:
    """{(apiVersion, kind): strict schema} of every CRD file in `crd_dir`."""
    schemas: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(Path(crd_dir).glob("*.yaml")):
        crd = yaml.load(path.read_text(), Loader=_LOADER)  # a safe loader, in C: the files are 70k lines
        if not isinstance(crd, dict) or crd.get("kind") != "CustomResourceDefinition":
            continue
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for served in crd["spec"]["versions"]:
            if served["name"] == version:
                schemas[(f"{group}/{version}", kind)] = strict(served["schema"]["openAPIV3Schema"])
    if not schemas:
        raise FileNotFoundError(
            f"{crd_dir}: no CustomResourceDefinition with a {version} schema; expected KubeRay's CRDs"
        )
    return schemas


def validate_resource(doc: dict[str, Any], crd_dir: str | Path) -> list[Finding]:
    """Schema errors of one custom resource (none when its apiVersion/kind has no CRD in `crd_dir`)."""
    schema = load_schemas(str(crd_dir)).get((str(doc.get("apiVersion")), str(doc.get("kind"))))
    if schema is None:
        return []
    validator = jsonschema.Draft7Validator(schema)
    findings = []
    for error in sorted(validator.iter_errors(copy.deepcopy(doc)), key=lambda item: list(item.absolute_path)):
        field = _dotted(error.absolute_path) or "<root>"
        findings.append(Finding("crd-schema", resource_name(doc), field, _message(error)))
    return findings


def _dotted(path: Any) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _message(error: jsonschema.ValidationError) -> str:
    if error.validator == "additionalProperties":
        return f"{error.message}; expected only the fields of the KubeRay v1 schema"
    return f"{error.message} (schema rule {error.validator}: {error.validator_value!r})"[:400]
