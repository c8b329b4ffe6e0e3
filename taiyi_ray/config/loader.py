"""Load YAML configs into pydantic models, with dotted overrides and errors that name file, line and field.

Why a loader of our own instead of OmegaConf/Hydra: we need exactly three things — `${VAR:-default}`
environment expansion in strings, `--set a.b.c=value` overrides, and validation errors that point at
the YAML line of the offending field — and all three fit in this module on top of PyYAML + pydantic.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

ModelT = TypeVar("ModelT", bound=BaseModel)

_ENV_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(ValueError):
    """A config file or override is invalid; the message names the file, line and field."""


def expand_env(value: str, source: str) -> str:
    """Expand `${VAR}` and `${VAR:-default}` in `value`; an unset VAR without default is an error."""

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        raise ConfigError(
            f"{source}: environment variable ${{{name}}} is not set and has no default (use ${{{name}:-default}})"
        )

    return _ENV_PATTERN.sub(replace, value)


def _expand_tree(node: Any, source: str) -> Any:
    if isinstance(node, str):
        return expand_env(node, source)
    if isinstance(node, dict):
        return {key: _expand_tree(value, source) for key, value in node.items()}
    if isinstance(node, list):
        return [_expand_tree(value, source) for value in node]
    return node


def _line_index(node: yaml.Node, prefix: tuple[str, ...], index: dict[tuple[str, ...], int]) -> None:
    """Record the 1-based line of every mapping key / sequence item under `node`."""
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            path = (*prefix, str(key_node.value))
            index[path] = key_node.start_mark.line + 1
            _line_index(value_node, path, index)
    elif isinstance(node, yaml.SequenceNode):
        for position, item in enumerate(node.value):
            path = (*prefix, str(position))
            index[path] = item.start_mark.line + 1
            _line_index(item, path, index)


def read_yaml(path: str | Path) -> tuple[dict[str, Any], dict[tuple[str, ...], int]]:
    """Parse a YAML mapping; returns (data with env expanded, {field path: line number})."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from error
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    lines: dict[tuple[str, ...], int] = {}
    if root is not None:
        _line_index(root, (), lines)
    return _expand_tree(data, str(path)), lines


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split `a.b.c=value` into (["a", "b", "c"], parsed value); the value is read as YAML."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected key=value, e.g. --set stage1.epochs=2")
    key, raw = text.split("=", 1)
    parts = [part for part in key.strip().split(".") if part]
    if not parts:
        raise ConfigError(f"--set {text!r}: the key before '=' is empty")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as error:
        raise ConfigError(f"--set {text!r}: value is not valid YAML: {error}") from error
    if isinstance(value, str):
        value = expand_env(value, f"--set {key}")
    return parts, value


def apply_overrides(data: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Return a copy of `data` with every `key=value` override applied (later ones win)."""
    result: dict[str, Any] = _deep_copy(data)
    for text in overrides:
        parts, value = parse_override(text)
        cursor: Any = result
        for depth, part in enumerate(parts[:-1]):
            child = cursor.get(part) if isinstance(cursor, dict) else None
            if child is None:
                child = {}
                cursor[part] = child
            if not isinstance(child, dict):
                where = ".".join(parts[: depth + 1])
                raise ConfigError(f"--set {text!r}: {where} is a {type(child).__name__}, not a section")
            cursor = child
        cursor[parts[-1]] = value
    return result


def _deep_copy(node: Any) -> Any:
    if isinstance(node, dict):
        return {key: _deep_copy(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_deep_copy(value) for value in node]
    return node


def format_validation_error(
    error: ValidationError, source: str, lines: Mapping[tuple[str, ...], int], prefix: tuple[str, ...] = ()
) -> str:
    """One line per problem: `file:line: field.path: message (got value)`."""
    messages = []
    for problem in error.errors():
        path = (*prefix, *(str(part) for part in problem["loc"]))
        line = _nearest_line(path, lines)
        where = f"{source}:{line}" if line else source
        field = ".".join(path) or "<top level>"
        got = problem.get("input")
        shown = "" if isinstance(got, dict | list) or got is None else f" (got {got!r})"
        messages.append(f"{where}: {field}: {problem['msg']}{shown}")
    return "\n".join(messages)


def _nearest_line(path: tuple[str, ...], lines: Mapping[tuple[str, ...], int]) -> int | None:
    for end in range(len(path), 0, -1):
        if path[:end] in lines:
            return lines[path[:end]]
    return None


def validate_file(model: type[ModelT], path: str | Path, overrides: Iterable[str] = ()) -> ModelT:
    """Read the YAML file at `path` (a catalogue; job configs go through `load_job_config`), apply
    overrides, validate against `model`; errors name the file, line and field."""
    data, lines = read_yaml(path)
    data = apply_overrides(data, overrides)
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise ConfigError(format_validation_error(error, str(path), lines)) from None
