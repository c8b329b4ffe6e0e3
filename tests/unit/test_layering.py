"""The import direction of STYLE.md, enforced: jobs -> everything; serve, eval -> data and model;
train -> data and model; all -> config, storage. jobs/ is never imported by the package."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "taiyi_ray"

ALLOWED = {
    "config": {"config"},
    "storage": {"config", "storage"},
    "runtime": {"config", "runtime"},
    "data": {"config", "storage", "runtime", "data"},
    "model": {"config", "storage", "data", "model"},
    "train": {"config", "storage", "runtime", "data", "model", "train"},
    "serve": {"config", "storage", "runtime", "data", "model", "serve"},
    "eval": {"config", "storage", "runtime", "data", "model", "eval"},
    "deploy": {"config", "deploy"},
}
TOP_LEVEL = {"entry", "cli", "pipeline", "__init__"}  # orchestration: may import any part


def project_imports(path: Path) -> set[str]:
    """First component under taiyi_ray of every import in the file (module level or inside functions)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "jobs":
                found.add("jobs")
            if parts[0] == "taiyi_ray" and len(parts) > 1:
                found.add(parts[1])
    return found


def part_of(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0].removesuffix(".py")


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda path: str(path.relative_to(PACKAGE)))
def test_imports_point_one_way(path: Path) -> None:
    part = part_of(path)
    imports = project_imports(path)
    assert "jobs" not in imports, f"{path}: the package must never import jobs/"
    if part in TOP_LEVEL:
        return
    assert part in ALLOWED, (
        f"{path}: {part!r} is not a known part of the package; add it to the layering rules"
    )
    forbidden = imports - ALLOWED[part] - TOP_LEVEL - {"__init__"}
    assert not forbidden, f"{path}: taiyi_ray.{part} must not import taiyi_ray.{sorted(forbidden)}"
    assert not imports & (TOP_LEVEL - {"__init__"}), f"{path}: library code must not import the job layer"


def test_the_checker_sees_function_level_imports(tmp_path: Path) -> None:
    source = tmp_path / "x.py"
    source.write_text("def f():\n    from taiyi_ray.train.loop import x\n    import jobs.stage1\n")
    assert project_imports(source) == {"train", "jobs"}
