"""`kuake_qic`: CBLUE KUAKE-QIC query-intent classification (one JSON array of `{id, query, label}`).

One single-label record per query. The label must be one of the 11 intents
(`taiyi_ray.data.vocab.KUAKE_QIC_LABELS`) unless `options.any_label: true`; the unlabelled test file
(no `label`) gives records without labels. The CBLUE ids (`s1`, ...) are unique only within a file,
so the document id is `{file}:{id}`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from taiyi_ray.data.formats._io import bad, build_record, require_str
from taiyi_ray.data.formats._jsonstream import iter_json_items
from taiyi_ray.data.formats.base import BadRecord, Source
from taiyi_ray.data.schema import Record
from taiyi_ray.data.vocab import KUAKE_QIC_LABELS
from taiyi_ray.storage import basename


def convert_kuake_qic(source: Source) -> Iterator[Record | BadRecord]:
    """Yield one classification record per query."""
    any_label = bool(source.options.get("any_label", False))
    with source.storage.open(source.uri, "rb") as handle:
        for item in iter_json_items(handle):
            if item.error:
                yield bad(source, item.line, None, item.error, item.raw)
                return
            record_id = item.value.get("id") if isinstance(item.value, dict) else None
            try:
                fields = _fields(item.value, basename(source.uri), any_label)
            except ValueError as error:
                yield bad(source, item.line, str(record_id) if record_id else None, str(error), item.raw)
                continue
            yield build_record(source, item.line, item.raw, fields)


def _fields(value: Any, file_name: str, any_label: bool) -> dict[str, Any]:
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
