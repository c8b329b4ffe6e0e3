"""No credential in a manifest: no Secret with data, no AWS key id, no `NAME=value` or YAML key that
names a credential, anywhere (entrypoints, serveConfigV2, runtimeEnvYAML, ConfigMaps...)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import yaml

from taiyi_ray.deploy import Finding, resource_name
from taiyi_ray.deploy.pods import is_credential_name

AWS_KEY_ID = re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b")
ASSIGNMENT = re.compile(r"([A-Za-z_][\w.-]*)=(\S+)")


def check_credentials(doc: dict[str, Any]) -> list[Finding]:
    """Inline credentials anywhere in one rendered document."""
    where = resource_name(doc)
    findings = []
    if doc.get("kind") == "Secret" and (doc.get("data") or doc.get("stringData")):
        findings.append(
            Finding(
                "inline-credentials",
                where,
                "data",
                "got a Secret with values in the manifests, expected it created outside git",
            )
        )
    findings += [Finding("inline-credentials", where, field, message) for field, message in _walk(doc, "")]
    return findings


def _walk(node: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            child = f"{path}.{key}" if path else str(key)
            if is_credential_name(str(key)) and _literal(value):
                yield child, f"got a value for credential key {key!r}, expected it only in a Secret"
            yield from _walk(value, child)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, f"{path}[{index}]")
    elif isinstance(node, str):
        yield from _scan_text(node, path)


def _literal(value: Any) -> bool:
    """A value that is the credential itself, not a reference to one (a path or ${VAR})."""
    text = str(value).strip() if isinstance(value, str | int | float) else ""
    return bool(text) and not text.startswith(("~", "/", "./", "../", "$"))


def _scan_text(text: str, path: str) -> Iterator[tuple[str, str]]:
    if AWS_KEY_ID.search(text):
        yield path, "got an AWS access key id, expected credentials only in a Secret"
    for name, _ in ASSIGNMENT.findall(text):
        if is_credential_name(name):
            yield path, f"got {name}=<value>, expected credentials only through envFrom of a Secret"
    if "\n" in text:  # an embedded YAML document (serveConfigV2, runtimeEnvYAML)
        try:
            embedded = yaml.safe_load(text)
        except yaml.YAMLError:
            return
        if isinstance(embedded, dict | list):
            yield from _walk(embedded, f"{path}<yaml>")
