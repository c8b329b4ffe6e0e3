"""Unified JSONL record files: `taiyi-ray data convert` writes them, `read_records` reads them back, and
`taiyi-ray data stats` counts them (`compute_stats`), as DESIGN.md defines the counts per format.

Bad items never vanish: with `on_error="fail"` (the default) the first one raises `ConvertError`
naming file, line (or record id) and reason, and no output file is left behind; with `"quarantine"`
each goes, with its reason, to `OUT.rejects.jsonl` and the counts are reported.

The counts are taken from the records as the converters store them, which is as the sources hold
them: a mention per entity (a PubTator composite mention line is one entity), a relation per stored
relation (CMeIE duplicates kept), an event per stored event, each record's labels (HoC: `none` for a
sentence with no hallmark), each record's answer (PubMedQA decision, MedQA letter). `documents` counts
distinct document ids (a BIO sentence is its own document, so there documents = records).
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import IO, Any, Literal

from taiyi_ray.config.data import DatasetEntry, Language
from taiyi_ray.data.answers import DEFAULT_ENTITY_TYPES
from taiyi_ray.data.formats import FORMAT_LANGUAGES, FORMAT_TASKS, FORMATS, BadRecord, Source
from taiyi_ray.data.schema import Record
from taiyi_ray.storage import Storage, basename

log = logging.getLogger(__name__)

OnError = Literal["fail", "quarantine"]

_SPLIT_PATTERNS = (
    ("train", re.compile(r"train", re.IGNORECASE)),
    ("dev", re.compile(r"dev|valid", re.IGNORECASE)),
    ("test", re.compile(r"test", re.IGNORECASE)),
)


class ConvertError(ValueError):
    """A source item could not be converted; the message names the file, line or record id, and reason."""


@dataclass(frozen=True)
class ConvertReport:
    """What `convert_file` wrote: counts, the output, and the rejects file (None when nothing was rejected)."""

    records: int
    rejects: int
    output: str
    rejects_path: str | None


def guess_split(uri: str) -> str:
    """The split a file name suggests (`CDR_TestSet...` -> test, `devel.tsv` -> dev); `train` otherwise."""
    name = basename(uri)
    for split, pattern in _SPLIT_PATTERNS:
        if pattern.search(name):
            return split
    return "train"


def rejects_path_for(output_uri: str) -> str:
    """`OUT.jsonl` -> `OUT.rejects.jsonl` (DESIGN.md)."""
    stem = output_uri[: -len(".jsonl")] if output_uri.endswith(".jsonl") else output_uri
    return f"{stem}.rejects.jsonl"


def converter_for(fmt: str):
    if fmt not in FORMATS:
        raise ConvertError(f"unknown format {fmt!r}: expected one of {sorted(FORMATS)}")
    return FORMATS[fmt]


def iter_records(entry: DatasetEntry, storage: Storage) -> Iterator[Record | BadRecord]:
    """The records of one catalogue entry, shaped for its task, in source order (bad items included).

    The converter's records are re-labelled with the entry's task (a PubTator file feeds `ner` or
    `re`); for NER the entities are restricted to the entry's entity types (relations are then not
    used and dropped from the record). A `unified_jsonl` record must already have the entry's task.
    """
    converter = converter_for(entry.format)
    allowed = FORMAT_TASKS[entry.format]
    if entry.task not in allowed:
        raise ConvertError(
            f"dataset {entry.name!r}: format {entry.format} feeds tasks {list(allowed)}, not {entry.task!r}"
        )
    source = Source(
        uri=entry.uri,
        dataset=entry.name,
        split=entry.split,
        language=entry.language,
        storage=storage,
        options=entry.options,
        unlabelled=entry.unlabelled,
        task=entry.task,
    )
    keep_types = (
        set(entry.entity_types or DEFAULT_ENTITY_TYPES.get(entry.format, ()))
        if entry.task == "ner"
        else set()
    )
    for item in converter(source):
        if isinstance(item, BadRecord):
            yield item
        elif entry.format == "unified_jsonl" and item.task != entry.task:
            reason = f"record task {item.task!r} differs from the catalogue entry's task {entry.task!r}"
            yield BadRecord(entry.uri, None, item.id, reason, item.model_dump_json())
        else:
            yield _shape(item, entry, keep_types)


def _shape(record: Record, entry: DatasetEntry, keep_types: set[str]) -> Record:
    update: dict[str, object] = {}
    if record.task != entry.task:
        update["task"] = entry.task
    if entry.task == "ner":
        if record.relations:
            update["relations"] = []
        if entry.entity_types is not None and any(
            entity.type not in keep_types for entity in record.entities
        ):
            update["entities"] = [entity for entity in record.entities if entity.type in keep_types]
    return record.model_copy(update=update) if update else record


def record_line(record: Record) -> str:
    """A record as one JSONL line (None-valued fields left out; readers get them back as defaults)."""
    return json.dumps(record.model_dump(mode="json", exclude_none=True), ensure_ascii=False) + "\n"


def reject_line(item: BadRecord) -> str:
    return json.dumps(asdict(item), ensure_ascii=False) + "\n"


def convert_file(
    fmt: str,
    input_uri: str,
    output_uri: str,
    on_error: OnError,
    storage: Storage,
    dataset: str | None = None,
    split: str | None = None,
    language: Language | None = None,
    unlabelled: bool = False,
) -> ConvertReport:
    """Convert one source file to unified JSONL at `output_uri` (local path or URI).

    `unlabelled` reads a file that carries no gold (a test split); otherwise a record of a labelled
    format without its label is a bad record (an error, or a reject with `on_error="quarantine"`).
    """
    converter = converter_for(fmt)
    if on_error not in ("fail", "quarantine"):
        raise ValueError(f"on_error must be 'fail' or 'quarantine', got {on_error!r}")
    name = dataset or basename(input_uri).split(".")[0]
    source = Source(
        uri=input_uri,
        dataset=name,
        split=split or guess_split(input_uri),
        language=language or FORMAT_LANGUAGES[fmt],
        storage=storage,
        unlabelled=unlabelled,
    )
    rejects_uri = rejects_path_for(output_uri)
    storage.remove(rejects_uri)
    try:
        with storage.open(output_uri, "w", encoding="utf-8") as output:
            records, rejects = _write(converter(source), output, on_error, storage, rejects_uri)
    except ConvertError:
        storage.remove(output_uri)
        raise
    if rejects:
        log.warning("%s: %d records written, %d rejected -> %s", input_uri, records, rejects, rejects_uri)
    return ConvertReport(records, rejects, output_uri, rejects_uri if rejects else None)


def _write(
    items: Iterator[Record | BadRecord],
    output: IO[str],
    on_error: OnError,
    storage: Storage,
    rejects_uri: str,
) -> tuple[int, int]:
    records = rejects = 0
    rejects_file: IO[str] | None = None
    try:
        for item in items:
            if isinstance(item, Record):
                output.write(record_line(item))
                records += 1
                continue
            if on_error == "fail":
                raise ConvertError(f"{item.describe()} (use --on-error quarantine to set such records aside)")
            if rejects_file is None:
                rejects_file = storage.open(rejects_uri, "w", encoding="utf-8")
            rejects_file.write(reject_line(item))
            rejects += 1
    finally:
        if rejects_file is not None:
            rejects_file.close()
    return records, rejects


def read_records(uri: str, storage: Storage | None = None) -> Iterator[Record]:
    """Read unified JSONL records back (what `convert_file` wrote); raises on an invalid line."""
    store = storage or Storage()
    source = Source(uri=uri, dataset="", split="", language="en", storage=store)
    for item in FORMATS["unified_jsonl"](source):
        if isinstance(item, BadRecord):
            raise ConvertError(item.describe())
        yield item


def compute_stats(path: str, storage: Storage | None = None) -> dict[str, Any]:
    """`{"records", "documents", "entity_mentions", "relations", "events", "labels", "answers"}` of a JSONL file."""
    records = 0
    documents: set[str] = set()
    mentions: Counter[str] = Counter()
    relations: Counter[str] = Counter()
    events: Counter[str] = Counter()
    labels: Counter[str] = Counter()
    answers: Counter[str] = Counter()
    for record in read_records(path, storage):
        records += 1
        documents.add(record.document_id)
        mentions.update(entity.type for entity in record.entities)
        relations.update(relation.type for relation in record.relations)
        events.update(event.type for event in record.events)
        labels.update(record.labels)
        if record.answer is not None and record.task in ("qa_yesno", "qa_mc"):
            answers[record.answer] += 1
    return {
        "records": records,
        "documents": len(documents),
        "entity_mentions": dict(sorted(mentions.items())),
        "relations": dict(sorted(relations.items())),
        "events": dict(sorted(events.items())),
        "labels": dict(sorted(labels.items())),
        "answers": dict(sorted(answers.items())),
    }


def format_stats(stats: dict[str, Any]) -> str:
    """A short human-readable summary (the `--json` flag prints the object instead)."""
    lines = [f"records   {stats['records']}", f"documents {stats['documents']}"]
    for key in ("entity_mentions", "relations", "events", "labels", "answers"):
        counts = stats[key]
        if counts:
            shown = ", ".join(f"{name} {count}" for name, count in counts.items())
            lines.append(f"{key:<9} {sum(counts.values())} ({shown})")
    return "\n".join(lines)
