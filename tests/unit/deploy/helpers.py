"""Shared constants and small helpers of the deployment tests (fixtures live in conftest.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[3]
OVERLAYS = ("dev", "prod")


def find(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    """The one resource of `kind` (and `name`) in `docs`."""
    matches = [
        doc for doc in docs if doc["kind"] == kind and (name is None or doc["metadata"]["name"] == name)
    ]
    assert len(matches) == 1, f"expected one {kind}/{name}, got {len(matches)}"
    return matches[0]
