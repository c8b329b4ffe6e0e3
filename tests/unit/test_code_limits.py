"""The size limits of the package (issue 17), enforced so that later work stays inside them: at most 100
modules (`__init__` files aside; one module per idea, one per format family), none over 500 lines, and
the 90th percentile of function lengths at most 30 lines (def line to last line, docstring included)."""

from __future__ import annotations

import ast
import statistics
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "taiyi_ray"
MAX_MODULES = 100
MAX_MODULE_LINES = 500
MAX_P90_FUNCTION_LINES = 30

SOURCES = sorted(PACKAGE.rglob("*.py"))


def function_lengths() -> list[int]:
    lengths = []
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                assert node.end_lineno is not None
                lengths.append(node.end_lineno - node.lineno + 1)
    return lengths


def test_at_most_100_modules() -> None:
    modules = [path.relative_to(PACKAGE) for path in SOURCES if path.name != "__init__.py"]
    assert len(modules) <= MAX_MODULES, (
        f"{len(modules)} modules in taiyi_ray/ (limit {MAX_MODULES}): put the new code into the module of "
        "the idea it belongs to (a format into its family's module) rather than a module of its own"
    )


def test_no_module_over_500_lines() -> None:
    too_long = {
        str(path.relative_to(PACKAGE)): lines
        for path in SOURCES
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert not too_long, f"modules over {MAX_MODULE_LINES} lines: {too_long}; split them by idea"


def test_most_functions_are_short() -> None:
    lengths = function_lengths()
    p90 = statistics.quantiles(lengths, n=10)[-1]
    assert p90 <= MAX_P90_FUNCTION_LINES, (
        f"90th percentile of function lengths is {p90:g} lines (limit {MAX_P90_FUNCTION_LINES}; median "
        f"{statistics.median(lengths):g}): split the long functions"
    )
