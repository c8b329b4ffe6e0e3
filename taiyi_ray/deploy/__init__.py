"""Offline checks of the deployment files (k8s/ manifests, Dockerfile, cluster/aws.yaml).

No cluster is needed: overlays are rendered with `kubectl kustomize`, KubeRay resources are validated
strictly against the v1.7 CRD schemas, and the rules the API server (CEL) or the KubeRay operator would
enforce, plus this project's own (entrypoints, GPU counts, images, credentials), are checked by hand.
Every check returns `Finding`s (defined here, the one type every check module shares); an empty list
means valid. Imports only `taiyi_ray.config`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Finding:
    """A broken rule. `rule` is a stable id (tests select on it), `where` names the resource or file,
    `field` the dotted path inside it, `message` says got X, expected Y."""

    rule: str
    where: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"[{self.rule}] {self.where} {self.field}: {self.message}"


def resource_name(doc: dict[str, Any]) -> str:
    """`Kind/name` of a Kubernetes object (`Kind/?` when it has no name)."""
    return f"{doc.get('kind', '?')}/{(doc.get('metadata') or {}).get('name', '?')}"


__all__ = ["Finding", "resource_name"]
