"""Plain Kubernetes objects in the overlays, checked against their required fields (no API server here)."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from taiyi_ray.deploy import Finding, resource_name
from taiyi_ray.deploy.manifests import KUBERAY_KINDS, RAY_API_VERSION

DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
# kind -> (apiVersion, allowed top-level fields)
CORE_KINDS: dict[str, tuple[str, frozenset[str]]] = {
    "ConfigMap": ("v1", frozenset({"apiVersion", "kind", "metadata", "data", "binaryData", "immutable"})),
    "Secret": (
        "v1",
        frozenset({"apiVersion", "kind", "metadata", "data", "stringData", "type", "immutable"}),
    ),
    "ServiceAccount": (
        "v1",
        frozenset(
            {"apiVersion", "kind", "metadata", "secrets", "imagePullSecrets", "automountServiceAccountToken"}
        ),
    ),
    "Namespace": ("v1", frozenset({"apiVersion", "kind", "metadata", "spec"})),
}


def check_core(doc: dict[str, Any]) -> list[Finding]:
    """Required fields of ConfigMap/Secret/ServiceAccount/Namespace; any other kind is unexpected."""
    kind, where = doc.get("kind"), resource_name(doc)
    if kind in KUBERAY_KINDS:
        return [] if doc.get("apiVersion") == RAY_API_VERSION else [
            Finding("api-version", where, "apiVersion", f"got {doc.get('apiVersion')!r}, expected {RAY_API_VERSION}")
        ]  # fmt: skip
    if kind not in CORE_KINDS:
        return [
            Finding(
                "unknown-kind",
                where,
                "kind",
                f"got {kind!r}, expected one of {sorted([*CORE_KINDS, *KUBERAY_KINDS])}",
            )
        ]
    api_version, allowed = CORE_KINDS[str(kind)]
    findings = []
    if doc.get("apiVersion") != api_version:
        findings.append(
            Finding(
                "core-schema", where, "apiVersion", f"got {doc.get('apiVersion')!r}, expected {api_version!r}"
            )
        )
    for field in sorted(set(doc) - allowed):
        findings.append(
            Finding("core-schema", where, field, f"unknown field; expected only {sorted(allowed)}")
        )
    name = str((doc.get("metadata") or {}).get("name", ""))
    if not name or len(name) > 253 or not DNS1123_SUBDOMAIN.match(name):
        findings.append(
            Finding("core-schema", where, "metadata.name", f"got {name!r}, expected a DNS-1123 subdomain")
        )
    findings += _data(doc, where)
    return findings


def _data(doc: dict[str, Any], where: str) -> list[Finding]:
    findings = []
    for field in ("data", "stringData", "binaryData"):
        values = doc.get(field) or {}
        if not isinstance(values, dict):
            findings.append(
                Finding("core-schema", where, field, f"got {type(values).__name__}, expected a map")
            )
            continue
        for key, value in values.items():
            if not CONFIG_KEY.match(str(key)):
                findings.append(
                    Finding("core-schema", where, f"{field}.{key}", "key must match [-._a-zA-Z0-9]+")
                )
            if not isinstance(value, str):
                findings.append(
                    Finding(
                        "core-schema",
                        where,
                        f"{field}.{key}",
                        f"got {type(value).__name__}, expected a string",
                    )
                )
            elif field in ("binaryData",) or (field == "data" and doc.get("kind") == "Secret"):
                try:
                    base64.b64decode(value, validate=True)
                except binascii.Error:
                    findings.append(Finding("core-schema", where, f"{field}.{key}", "expected base64"))
    return findings
