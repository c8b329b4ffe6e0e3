"""CBLUE's Chinese biomedical layouts (one JSON array or JSON Lines per file).

`cmeee`: CBLUE CMeEE / CMeEE-V2 Chinese medical NER (one JSON array of sentences).

Each item is `{"text", "entities": [{"start_idx", "end_idx", "type", "entity"}]}`. **`end_idx` is
inclusive** (`text[start_idx:end_idx + 1] == entity`); records store `[start, end)`. Nested and
overlapping mentions are kept. Types are the nine CMeEE codes (dis, sym, pro, equ, dru, ite, bod, dep,
mic); `options.any_type: true` accepts others. The unlabelled test file has no `entities` and gives
records without mentions. The files hold no ids: a sentence's id is `{file}:{n}` (1-based).

`cmeie`: CBLUE CMeIE / CMeIE-V2 Chinese medical relation extraction (JSON Lines).

Each line is `{"text", "spo_list": [{"Combined", "predicate", "subject", "subject_type", "object",
"object_type"}]}`; `object` / `object_type` are `{"@value": ...}` dicts (v1 and V2) or plain strings
(older releases). One record per line; a relation per `spo_list` item, duplicates kept as the source
has them. Subjects and objects become entities, one per distinct (text, type). The source gives **no
offsets**: an entity's offsets are resolved to the **first occurrence** of its text in the sentence
(DESIGN.md); a text that does not occur is a bad record. `Combined` (whether the triple spans
sentences) is not kept. An object dict with keys other than `@value` (a complex object) is rejected,
not flattened.

`kuake_qic`: CBLUE KUAKE-QIC query-intent classification (one JSON array of `{id, query, label}`).

One single-label record per query. The label must be one of the 11 intents
(`taiyi_ray.data.answers.KUAKE_QIC_LABELS`) unless `options.any_label: true`; the unlabelled test file
(no `label`) gives records without labels. The CBLUE ids (`s1`, ...) are unique only within a file,
so the document id is `{file}:{id}`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from taiyi_ray.data.answers import CMEEE_TYPES, KUAKE_QIC_LABELS
from taiyi_ray.data.formats._io import local_id, records_from_json_array, records_from_json_lines, require_str
from taiyi_ray.data.formats.base import BadRecord, Source
from taiyi_ray.data.schema import Record
from taiyi_ray.storage import basename


def convert_cmeee(source: Source) -> Iterator[Record | BadRecord]:
    """Yield one NER record per sentence of a CMeEE JSON array."""
    any_type = bool(source.options.get("any_type", False))
    return records_from_json_array(
        source,
        lambda value, index: _cmeee_fields(value, local_id(source, index + 1), any_type),
        lambda value, index: local_id(source, index + 1),
    )


def _cmeee_fields(value: Any, record_id: str, any_type: bool) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"expected an object with 'text' and 'entities', got {type(value).__name__}")
    text = require_str(value.get("text"), "text")
    raw_entities = value.get("entities", [])
    if not isinstance(raw_entities, list):
        raise ValueError(f"'entities' must be a list, got {type(raw_entities).__name__}")
    entities = [_cmeee_entity(entity, text, number, any_type) for number, entity in enumerate(raw_entities)]
    return {"id": record_id, "document_id": record_id, "task": "ner", "text": text, "entities": entities}


def _cmeee_entity(entity: Any, text: str, number: int, any_type: bool) -> dict[str, Any]:
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


def convert_cmeie(source: Source) -> Iterator[Record | BadRecord]:
    """Yield one RE record per line of a CMeIE JSONL file."""
    return records_from_json_lines(source, _cmeie_fields)


def _cmeie_fields(value: Any, record_id: str) -> dict[str, Any]:
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
        head = _cmeie_entity(
            entities,
            text,
            _cmeie_plain(spo.get("subject"), "subject"),
            _cmeie_plain(spo.get("subject_type"), "subject_type"),
        )
        tail = _cmeie_entity(
            entities,
            text,
            _cmeie_plain(spo.get("object"), "object"),
            _cmeie_plain(spo.get("object_type"), "object_type"),
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


def _cmeie_plain(value: Any, field: str) -> str:
    """A subject/object (or type) as a string: plain, or the `@value` of a V2 dict."""
    if isinstance(value, dict):
        extra = sorted(set(value) - {"@value"})
        if extra:
            raise ValueError(f"{field} has keys {extra} besides '@value': complex objects are not supported")
        value = value.get("@value")
    return require_str(value, field)


def _cmeie_entity(
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


def convert_kuake_qic(source: Source) -> Iterator[Record | BadRecord]:
    """Yield one classification record per query."""
    any_label = bool(source.options.get("any_label", False))
    file_name = basename(source.uri)
    return records_from_json_array(
        source, lambda value, index: _kuake_qic_fields(value, file_name, any_label), _kuake_qic_id
    )


def _kuake_qic_id(value: Any, index: int) -> str | None:
    record_id = value.get("id") if isinstance(value, dict) else None
    return str(record_id) if record_id else None


def _kuake_qic_fields(value: Any, file_name: str, any_label: bool) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"expected an object with 'id', 'query' and 'label', got {type(value).__name__}")
    record_id = require_str(value.get("id"), "id")
    query = require_str(value.get("query"), "query")
    label = value.get("label")
    labels: list[str] = []
    if label is not None:
        label = require_str(label, "label")
        if not any_label and label not in KUAKE_QIC_LABELS:
            raise ValueError(f"unknown label {label!r}, expected one of {list(KUAKE_QIC_LABELS)}")
        labels = [label]
    document_id = f"{file_name}:{record_id}"
    return {"id": record_id, "document_id": document_id, "task": "tc", "text": query, "labels": labels}
