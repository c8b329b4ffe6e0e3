"""`cmeie`: CBLUE CMeIE / CMeIE-V2 Chinese medical relation extraction (JSON Lines).

Each line is `{"text", "spo_list": [{"Combined", "predicate", "subject", "subject_type", "object",
"object_type"}]}`; `object` / `object_type` are `{"@value": ...}` dicts (v1 and V2) or plain strings
(older releases). One record per line; a relation per `spo_list` item, duplicates kept as the source
has them. Subjects and objects become entities, one per distinct (text, type). The source gives **no
offsets**: an entity's offsets are resolved to the **first occurrence** of its text in the sentence
(DESIGN.md); a text that does not occur is a bad record. `Combined` (whether the triple spans
sentences) is not kept. An object dict with keys other than `@value` (a complex object) is rejected,
not flattened.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from taiyi_ray.data.formats._io import records_from_json_lines, require_str
from taiyi_ray.data.formats.base import BadRecord, Source
from taiyi_ray.data.schema import Record


def convert_cmeie(source: Source) -> Iterator[Record | BadRecord]:
    """Yield one RE record per line of a CMeIE JSONL file."""
    return records_from_json_lines(source, _fields)


def _fields(value: Any, record_id: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"expected an object with 'text' and 'spo_list', got {type(value).__name__}")
    text = require_str(value.get("text"), "text")
    spo_list = value.get("spo_list", [])
    if not isinstance(spo_list, list):
        raise ValueError(f"'spo_list' must be a list, got {type(spo_list).__name__}")
    entities: dict[tuple[str, str], dict[str, Any]] = {}
    relations = []
    for number, spo in enumerate(spo_list, start=1):
        if not isinstance(spo, dict):
            raise ValueError(f"spo_list item {number} must be an object, got {type(spo).__name__}")
        predicate = require_str(spo.get("predicate"), f"spo_list[{number}].predicate")
        head = _entity(
            entities,
            text,
            _plain(spo.get("subject"), "subject"),
            _plain(spo.get("subject_type"), "subject_type"),
        )
        tail = _entity(
            entities, text, _plain(spo.get("object"), "object"), _plain(spo.get("object_type"), "object_type")
        )
        relations.append({"type": predicate, "head_id": head, "tail_id": tail})
    return {
        "id": record_id,
        "document_id": record_id,
        "task": "re",
        "text": text,
        "entities": list(entities.values()),
        "relations": relations,
    }


def _plain(value: Any, field: str) -> str:
    """A subject/object (or type) as a string: plain, or the `@value` of a V2 dict."""
    if isinstance(value, dict):
        extra = sorted(set(value) - {"@value"})
        if extra:
            raise ValueError(f"{field} has keys {extra} besides '@value': complex objects are not supported")
        value = value.get("@value")
    return require_str(value, field)


def _entity(
    entities: dict[tuple[str, str], dict[str, Any]], text: str, mention: str, entity_type: str
) -> str:
    key = (mention, entity_type)
    if key not in entities:
        start = text.find(mention)
        if start < 0:
            raise ValueError(f"{entity_type} {mention!r} does not occur in the text")
        entities[key] = {
            "id": f"T{len(entities) + 1}",
            "type": entity_type,
            "text": mention,
            "offsets": [(start, start + len(mention))],
        }
    return str(entities[key]["id"])
