"""Gold and prediction files: unified JSONL records, prediction lines carrying a few extra fields.

A prediction line is a unified `Record` (the parsed prediction, with the gold record's id, document
and passage) plus what produced it: `prompt`, `raw_output`, `parsed` (False when no answer could be
read), `problems` (the parser's notes), `gold_answer` (the serialised gold), `finish_reason` and
`corrupted` (oracle noise). `read_predictions` drops those extras, so `taiyi-ray eval score --pred`
reads an evaluation run's `predictions/SET.jsonl` as it reads any unified JSONL file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from taiyi_ray.data.schema import Record
from taiyi_ray.storage import Storage

EXTRA_FIELDS = ("prompt", "raw_output", "parsed", "problems", "gold_answer", "finish_reason", "corrupted")


class RecordFileError(ValueError):
    """A gold or prediction file line is not a valid record; the message names file, line and field."""


@dataclass(frozen=True)
class PredictionLine:
    """One line of `predictions/SET.jsonl`."""

    record: Record
    prompt: str
    raw_output: str
    parsed: bool
    gold_answer: str
    problems: tuple[str, ...] = ()
    finish_reason: str | None = None
    corrupted: bool = False

    def to_json(self) -> str:
        """The JSONL line: the record's fields (None left out) followed by the extra fields."""
        value = self.record.model_dump(mode="json", exclude_none=True)
        value.update(
            prompt=self.prompt,
            raw_output=self.raw_output,
            parsed=self.parsed,
            problems=list(self.problems),
            gold_answer=self.gold_answer,
            finish_reason=self.finish_reason,
            corrupted=self.corrupted,
        )
        return json.dumps(value, ensure_ascii=False) + "\n"


def _json_lines(uri: str, storage: Storage) -> Iterator[tuple[int, dict[str, Any]]]:
    with storage.open(uri, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            text = raw.decode("utf-8-sig" if number == 1 else "utf-8").strip()
            if not text:
                continue
            try:
                value = json.loads(text)
            except json.JSONDecodeError as error:
                raise RecordFileError(
                    f"{uri}:{number}: not valid JSON ({error.msg} at column {error.colno})"
                ) from None
            if not isinstance(value, dict):
                raise RecordFileError(
                    f"{uri}:{number}: expected a JSON object (a record), got {type(value).__name__}"
                )
            yield number, value


def _record(uri: str, number: int, value: dict[str, Any]) -> Record:
    try:
        return Record.model_validate(value)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "record"
        message = str(first["msg"]).removeprefix("Value error, ")
        raise RecordFileError(
            f"{uri}:{number}: field {where}: {message} (got {str(first.get('input'))[:80]!r}); "
            "expected a unified record (taiyi_ray.data.schema.Record)"
        ) from None


def read_gold(uri: str, storage: Storage) -> list[Record]:
    """Every record of a unified JSONL file (a prediction file's extra fields are ignored here too)."""
    records = []
    for number, value in _json_lines(uri, storage):
        for name in EXTRA_FIELDS:
            value.pop(name, None)
        records.append(_record(uri, number, value))
    return records


def read_predictions(uri: str, storage: Storage) -> dict[str, Record]:
    """Predicted records by id; an id given twice is an error naming both lines."""
    found: dict[str, Record] = {}
    lines: dict[str, int] = {}
    for number, value in _json_lines(uri, storage):
        for name in EXTRA_FIELDS:
            value.pop(name, None)
        record = _record(uri, number, value)
        if record.id in found:
            raise RecordFileError(
                f"{uri}:{number}: record id {record.id!r} was already given on line {lines[record.id]}; "
                "expected one prediction per id"
            )
        found[record.id] = record
        lines[record.id] = number
    return found


def record_json(record: Record) -> str:
    """A record as one JSONL line (None-valued fields left out), as `taiyi-ray data convert` writes it."""
    return json.dumps(record.model_dump(mode="json", exclude_none=True), ensure_ascii=False) + "\n"
