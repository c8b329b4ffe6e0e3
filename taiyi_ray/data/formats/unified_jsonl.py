"""`unified_jsonl`: records already in the unified schema (`taiyi_ray.data.schema.Record`), one per line.

This is how a user adds any of the ~140 datasets Taiyi used: write a small converter of your own that
emits this JSONL (or add a module here and register it in `FORMATS`), then list the file in a
catalogue with `format: unified_jsonl`. Each line is validated like every converter's output; the
records keep their own dataset, split and language.
"""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import ValidationError

from taiyi_ray.data.formats._io import bad, iter_json_lines, validation_reason
from taiyi_ray.data.formats.base import BadRecord, Source
from taiyi_ray.data.schema import Record


def convert_unified_jsonl(source: Source) -> Iterator[Record | BadRecord]:
    """Yield the records of a unified JSONL file, validated."""
    for item in iter_json_lines(source):
        if item.error:
            yield bad(source, item.line.number, None, item.error, item.line.text)
            continue
        record_id = item.value.get("id") if isinstance(item.value, dict) else None
        try:
            yield Record.model_validate(item.value)
        except ValidationError as error:
            yield bad(
                source,
                item.line.number,
                str(record_id) if record_id else None,
                validation_reason(error),
                item.line.text,
            )
