"""One problem found in a deployment file, said the house way: where, what was found, what was expected."""

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
