"""`alpaca_json`: single-turn instruction data in the Alpaca layout (a JSON array, or JSON Lines).

Each item: `instruction`, optional `input` (appended to the instruction after a blank line), `output`,
optional `system`, and optional `history` (earlier `[user, assistant]` pairs, as LLaMA-Factory writes
it). One dialogue record per item: the turns are the history, then instruction(+input) -> output.
A file starting with `[` is read as one streamed array, anything else as JSON Lines.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from taiyi_ray.data.formats._io import bad, build_record, iter_json_lines, local_id, require_str
from taiyi_ray.data.formats._jsonstream import iter_json_items
from taiyi_ray.data.formats.base import BadRecord, Source
from taiyi_ray.data.schema import Record


def convert_alpaca_json(source: Source) -> Iterator[Record | BadRecord]:
    """Yield one dialogue record per instruction item."""
    for number, line, value, error, raw in _items(source):
        record_id = local_id(source, number)
        if error:
            yield bad(source, line, record_id, error, raw)
            continue
        try:
            fields = {"id": record_id, "document_id": record_id, "task": "dialogue", "turns": _turns(value)}
        except ValueError as problem:
            yield bad(source, line, record_id, str(problem), raw)
            continue
        yield build_record(source, line, raw, fields)


def _items(source: Source) -> Iterator[tuple[int, int, Any, str | None, str]]:
    with source.storage.open(source.uri, "rb") as handle:
        head = handle.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"["):
        with source.storage.open(source.uri, "rb") as handle:
            for item in iter_json_items(handle):
                yield item.index + 1, item.line, item.value, item.error, item.raw
                if item.error:
                    return
    else:
        for entry in iter_json_lines(source):
            yield entry.number, entry.line.number, entry.value, entry.error, entry.line.text


def _turns(value: Any) -> list[dict[str, str]]:
    if not isinstance(value, dict):
        raise ValueError(f"expected an object with 'instruction' and 'output', got {type(value).__name__}")
    instruction = require_str(value.get("instruction"), "instruction")
    extra = value.get("input") or ""
    if not isinstance(extra, str):
        raise ValueError(f"'input' must be a string, got {type(extra).__name__}")
    output = require_str(value.get("output"), "output")
    turns: list[dict[str, str]] = []
    system = value.get("system")
    if isinstance(system, str) and system.strip():
        turns.append({"role": "system", "content": system})
    for number, pair in enumerate(value.get("history") or [], start=1):
        if (
            not isinstance(pair, list | tuple)
            or len(pair) != 2
            or not all(isinstance(part, str) for part in pair)
        ):
            raise ValueError(f"history item {number} must be a [user, assistant] pair of strings")
        turns += [{"role": "user", "content": pair[0]}, {"role": "assistant", "content": pair[1]}]
    prompt = f"{instruction}\n\n{extra}" if extra.strip() else instruction
    turns += [{"role": "user", "content": prompt}, {"role": "assistant", "content": output}]
    return turns
