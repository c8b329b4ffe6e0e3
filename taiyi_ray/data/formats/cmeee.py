"""`cmeee`: CBLUE CMeEE / CMeEE-V2 Chinese medical NER (one JSON array of sentences).

Each item is `{"text", "entities": [{"start_idx", "end_idx", "type", "entity"}]}`. **`end_idx` is
inclusive** (`text[start_idx:end_idx + 1] == entity`); records store `[start, end)`. Nested and
overlapping mentions are kept. Types are the nine CMeEE codes (dis, sym, pro, equ, dru, ite, bod, dep,
mic); `options.any_type: true` accepts others. The unlabelled test file has no `entities` and gives
records without mentions. The files hold no ids: a sentence's id is `{file}:{n}` (1-based).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from taiyi_ray.data.formats._io import bad, build_record, local_id, require_str
from taiyi_ray.data.formats._jsonstream import iter_json_items
from taiyi_ray.data.formats.base import BadRecord, Source
from taiyi_ray.data.schema import Record
from taiyi_ray.data.vocab import CMEEE_TYPES


def convert_cmeee(source: Source) -> Iterator[Record | BadRecord]:
    """Yield one NER record per sentence of a CMeEE JSON array."""
    any_type = bool(source.options.get("any_type", False))
    with source.storage.open(source.uri, "rb") as handle:
        for item in iter_json_items(handle):
            record_id = local_id(source, item.index + 1)
            if item.error:
                yield bad(source, item.line, None, item.error, item.raw)
                return
            try:
                fields = _fields(item.value, record_id, any_type)
            except ValueError as error:
                yield bad(source, item.line, record_id, str(error), item.raw)
                continue
            yield build_record(source, item.line, item.raw, fields)


def _fields(value: Any, record_id: str, any_type: bool) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"expected an object with 'text' and 'entities', got {type(value).__name__}")
    text = require_str(value.get("text"), "text")
    raw_entities = value.get("entities", [])
    if not isinstance(raw_entities, list):
        raise ValueError(f"'entities' must be a list, got {type(raw_entities).__name__}")
    entities = [_entity(entity, text, number, any_type) for number, entity in enumerate(raw_entities)]
    return {"id": record_id, "document_id": record_id, "task": "ner", "text": text, "entities": entities}


def _entity(entity: Any, text: str, number: int, any_type: bool) -> dict[str, Any]:
    if not isinstance(entity, dict):
        raise ValueError(f"entity {number + 1} must be an object, got {type(entity).__name__}")
    start, end = entity.get("start_idx"), entity.get("end_idx")
    mention, entity_type = entity.get("entity"), entity.get("type")
    if not isinstance(start, int) or not isinstance(end, int):
        raise ValueError(f"entity {mention!r}: start_idx/end_idx must be integers, got {start!r}/{end!r}")
    if not isinstance(mention, str) or not isinstance(entity_type, str):
        raise ValueError(
            f"entity {number + 1}: 'entity' and 'type' must be strings, got {mention!r}/{entity_type!r}"
        )
    if not any_type and entity_type not in CMEEE_TYPES:
        raise ValueError(
            f"entity {mention!r}: unknown type {entity_type!r}, expected one of {list(CMEEE_TYPES)}"
        )
    if not 0 <= start <= end < len(text):
        raise ValueError(
            f"entity {mention!r} [start_idx {start}, end_idx {end}] (end inclusive) lies outside the text "
            f"(length {len(text)})"
        )
    if text[start : end + 1] != mention:
        raise ValueError(
            f"entity text {mention!r} does not match the text at [start_idx {start}, end_idx {end}] "
            f"(end inclusive): {text[start : end + 1]!r}"
        )
    return {"id": f"T{number + 1}", "type": entity_type, "text": mention, "offsets": [(start, end + 1)]}
