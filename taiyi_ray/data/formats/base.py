"""The converter interface: a source file in, unified records (or bad-record reports) out, streaming."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from taiyi_ray.config.data import Language, Task
from taiyi_ray.data.schema import Record
from taiyi_ray.storage import Storage


@dataclass(frozen=True)
class Source:
    """What a converter reads: one file (local path or URI, opened through `storage`) and its labels."""

    uri: str
    dataset: str
    split: str
    language: Language
    storage: Storage
    options: Mapping[str, Any] = field(default_factory=dict)
    unlabelled: bool = False
    """True for a file that carries no gold (a test split): a record without its label is read as
    unlabelled. False (the default): such a record is a `BadRecord` naming the label field."""
    task: Task | None = None
    """The task a catalogue entry reads the file for (None from `data convert`). A format whose items
    read two ways follows it (a `bigbio_text` entry of task tc_multilabel takes several labels)."""


@dataclass(frozen=True)
class BadRecord:
    """A record the converter could not turn into a valid `Record`: where it is and why."""

    source: str
    line: int | None
    record_id: str | None
    reason: str
    raw: str = ""

    def describe(self) -> str:
        where = self.source + (f":{self.line}" if self.line is not None else "")
        record = f" (record {self.record_id})" if self.record_id else ""
        return f"{where}{record}: {self.reason}"


Converter = Callable[[Source], Iterator[Record | BadRecord]]
"""Yields records in source order; yields a `BadRecord` (never raises) for a malformed item so that the
caller decides between failing and quarantining. Raises only when the whole file is unreadable."""
