"""Shared reading helpers of the converters: streamed lines with numbers, record building, local ids.

Every converter reads through `Source.storage` (local paths and s3:// alike), line by line or item by
item, so a file is never loaded whole. Building a `Record` is wrapped so that a validation failure
becomes a `BadRecord` naming the file, line and reason instead of an exception.
"""

from __future__ import annotations

import codecs
import csv
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from pydantic import ValidationError

from taiyi_ray.data.formats._jsonstream import iter_json_items
from taiyi_ray.data.formats.base import BadRecord, Source
from taiyi_ray.data.schema import Record
from taiyi_ray.storage import basename

MAX_RAW_CHARS = 20_000
"""A rejected item's raw text is kept up to this many characters in the rejects file."""


@dataclass(frozen=True)
class Line:
    """One line of a text file: its 1-based number and its text without the line end.

    `error` is set (and `text` empty) when the line is not valid UTF-8.
    """

    number: int
    text: str
    error: str | None = None


def iter_lines(source: Source) -> Iterator[Line]:
    """Stream a UTF-8 text file line by line (LF or CRLF ends; a leading BOM is dropped).

    Lines are split on `\\n` only, so a stray `\\r` or other Unicode line separator inside a field stays
    part of its line. An undecodable line is reported on its own rather than failing the whole file.
    """
    with source.storage.open(source.uri, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if number == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8) :]
            raw = raw.rstrip(b"\n").rstrip(b"\r")
            try:
                yield Line(number, raw.decode("utf-8"))
            except UnicodeDecodeError as error:
                yield Line(number, "", f"not valid UTF-8 ({error.reason} at byte {error.start})")


def validation_reason(error: ValidationError) -> str:
    """The first problem of a pydantic error as one sentence (without pydantic's 'Value error,' prefix)."""
    problems = error.errors()
    first = problems[0]
    message = str(first["msg"]).removeprefix("Value error, ")
    where = ".".join(str(part) for part in first["loc"])
    extra = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
    return (f"{where}: {message}" if where else message) + extra


def build_record(source: Source, line: int | None, raw: str, fields: dict[str, Any]) -> Record | BadRecord:
    """A validated `Record` with the source's dataset/split/language, or a `BadRecord` saying why not.

    `fields` may override the language (an item that names its own, as Taiyi's instruction data does).
    """
    try:
        defaults = {"dataset": source.dataset, "split": source.split, "language": source.language}
        return Record.model_validate({**defaults, **fields})
    except ValidationError as error:
        return bad(source, line, str(fields.get("id") or "") or None, validation_reason(error), raw)


def bad(source: Source, line: int | None, record_id: str | None, reason: str, raw: str = "") -> BadRecord:
    return BadRecord(
        source=source.uri, line=line, record_id=record_id, reason=reason, raw=raw[:MAX_RAW_CHARS]
    )


def local_id(source: Source, number: int) -> str:
    """An id for an item of a source that has none: `{file name}:{n}` (unique within the file).

    Such ids are local to their file; decontamination compares document ids only when they are PubMed
    ids, so two files' `test.tsv:12` never count as the same document.
    """
    return f"{basename(source.uri)}:{number}"


def require_str(value: Any, field: str) -> str:
    """`value` when it is a non-empty string; raises ValueError naming the field otherwise."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"field {field!r} must be a non-empty string, got {value!r}")
    return value


def label_or_none(source: Source, value: Any, field: str) -> Any:
    """The label `value` of a labelled item, or None for an item of an unlabelled file.

    A missing (None or empty) label in a labelled file raises ValueError naming `field`: such a record
    would otherwise train as an empty answer. `Source.unlabelled` (`--unlabelled`, `unlabelled: true` on
    a catalogue entry) reads test files that carry no labels.
    """
    if value is None or value == "" or value == []:
        if source.unlabelled:
            return None
        raise ValueError(
            f"no label: field {field!r} is missing or empty in a labelled file "
            "(read a test file without labels with --unlabelled, or unlabelled: true in the catalogue)"
        )
    return value


def present_or_none(source: Source, item: dict[str, Any], field: str) -> Any:
    """`item[field]` when the key is there, even empty; a missing key goes through `label_or_none`.

    For list-valued gold (NER mentions, triples, events) an empty list is a real answer ("nothing
    here"), so only an absent key means "no label".
    """
    if field in item and item[field] is not None:
        return item[field]
    return label_or_none(source, None, field)


def bio_tag_problem(tag: str) -> str | None:
    """Why `tag` is not `O`, `B-TYPE` or `I-TYPE` (None when it is one)."""
    if tag == "O":
        return None
    prefix, _, entity_type = tag.partition("-")
    if prefix in ("B", "I") and entity_type:
        return None
    return f"unknown tag {tag!r}: expected O, B-TYPE or I-TYPE"


def bio_chunks(tags: list[str]) -> tuple[list[tuple[str, int, int]], int]:
    """The chunks `(type, first index, last index)` of valid BIO tags, and how many started with `I-`.

    An `I-X` that does not continue an `X` chunk starts a new one (what conlleval does).
    """
    chunks: list[tuple[str, int, int]] = []
    orphans = 0
    current: tuple[str, int, int] | None = None
    for index, tag in enumerate([*tags, "O"]):
        prefix, _, entity_type = tag.partition("-")
        if current is not None and prefix == "I" and entity_type == current[0]:
            current = (current[0], current[1], index)
            continue
        if current is not None:
            chunks.append(current)
            current = None
        if prefix in ("B", "I"):
            orphans += prefix == "I"
            current = (entity_type, index, index)
    return chunks, orphans


def require_object(value: Any, keys: str) -> dict[str, Any]:
    """`value` when it is a JSON object; raises ValueError saying which keys were expected otherwise."""
    if not isinstance(value, dict):
        raise ValueError(f"expected an object with {keys}, got {type(value).__name__}")
    return value


def item_id(value: Any, index: int) -> str | None:
    """The `id` of an item, for reporting it when it is bad (None when it has none)."""
    record_id = value.get("id") if isinstance(value, dict) else None
    return str(record_id) if record_id not in (None, "") else None


def required_id(value: dict[str, Any]) -> str:
    """The item's own `id` as a string (CBLUE writes strings, CHIP-CDEE integers)."""
    record_id = value.get("id")
    return require_str(str(record_id) if isinstance(record_id, int) else record_id, "id")


def checked_label(source: Source, value: Any, field: str, allowed: tuple[str, ...]) -> str | None:
    """A checked single label (ints written as strings), or None for an unlabelled file's item."""
    label = label_or_none(source, value, field)
    if label is None:
        return None
    label = require_str(
        str(label) if isinstance(label, int) and not isinstance(label, bool) else label, field
    )
    if allowed and label not in allowed and not source.options.get("any_label", False):
        raise ValueError(f"unknown {field} {label!r}, expected one of {list(allowed)}")
    return label


def first_offsets(text: str, mention: str) -> list[tuple[int, int]] | None:
    """The span of the first occurrence of `mention` in `text`, or None when it does not occur."""
    start = text.find(mention)
    return [(start, start + len(mention))] if start >= 0 else None


def mention_id(
    entities: dict[tuple[str, str], dict[str, Any]],
    text: str,
    mention: str,
    entity_type: str,
    must_occur: bool = True,
) -> str:
    """The id of the entity (mention, type), added at the first occurrence of its text when new.

    A text that does not occur is an error when `must_occur`, else an entity without offsets.
    """
    key = (mention, entity_type)
    if key not in entities:
        offsets = first_offsets(text, mention)
        if offsets is None and must_occur:
            raise ValueError(f"{entity_type} {mention!r} does not occur in the text")
        entities[key] = {
            "id": f"T{len(entities) + 1}",
            "type": entity_type,
            "text": mention,
            "offsets": offsets,
        }
    return str(entities[key]["id"])


@dataclass(frozen=True)
class JsonLine:
    """A non-blank line of a JSON Lines file: its 1-based item number, line, parsed value or error."""

    number: int
    line: Line
    value: Any
    error: str | None


def iter_json_lines(source: Source) -> Iterator[JsonLine]:
    """Stream a JSON Lines file; an undecodable or invalid line yields an item with `error` set."""
    number = 0
    for line in iter_lines(source):
        if line.error is None and not line.text.strip():
            continue
        number += 1
        if line.error:
            yield JsonLine(number, line, None, line.error)
            continue
        try:
            yield JsonLine(number, line, json.loads(line.text), None)
        except json.JSONDecodeError as error:
            yield JsonLine(number, line, None, f"not valid JSON: {error.msg} at column {error.colno}")


def records_from_json_lines(
    source: Source, fields: Callable[[Any, str], dict[str, Any]]
) -> Iterator[Record | BadRecord]:
    """The loop every JSON Lines converter shares: one record per non-blank line.

    `fields(value, local id)` turns a parsed line into Record fields and raises ValueError (naming the
    field) for a malformed item; an invalid line or a ValueError becomes a BadRecord with its line.
    """
    return records_from_items(source, iter_json_lines(source), fields)


def records_from_items(
    source: Source,
    items: Iterable[JsonLine],
    fields: Callable[[Any, str], dict[str, Any]],
    item_id: Callable[[Any], str | None] | None = None,
) -> Iterator[Record | BadRecord]:
    """`records_from_json_lines` over any stream of parsed items (JSON Lines, Parquet rows, ...).

    A rejected item is named by `item_id(value)` when that gives an id (the source's own), else by its
    local id `{file}:{n}`.
    """
    for item in items:
        record_id = local_id(source, item.number)
        # An item with an error may still carry what was read of it (a CSV row of the wrong width).
        named = (item_id(item.value) if item_id and item.value is not None else None) or record_id
        if item.error:
            yield bad(source, item.line.number, named, item.error, item.line.text)
            continue
        try:
            built = fields(item.value, record_id)
        except ValueError as error:
            yield bad(source, item.line.number, named, str(error), item.line.text)
            continue
        yield build_record(source, item.line.number, item.line.text, built)


class UndecodableLine(Exception):
    """A line of a CSV file that is not valid in its encoding; the rows after it cannot be located."""

    def __init__(self, number: int, reason: str) -> None:
        super().__init__(f"line {number}: {reason}")
        self.number = number


def _decoded_lines(handle: IO[bytes], encoding: str) -> Iterator[str]:
    """The lines of a binary stream, decoded one at a time so that a bad byte is reported at its line.

    Lines are split on `\\n` bytes, which is safe for UTF-8 and GB18030 (no multi-byte sequence holds
    0x0A), not for UTF-16. The incremental decoder drops a UTF-8 BOM under `utf-8-sig`.
    """
    decoder = codecs.getincrementaldecoder(encoding)()
    for number, raw in enumerate(handle, start=1):
        try:
            yield decoder.decode(raw)
        except UnicodeDecodeError as error:
            reason = f"not valid {encoding} ({error.reason} at byte {error.start} of the line)"
            raise UndecodableLine(number, reason) from error


def records_from_csv(
    source: Source,
    required: tuple[str, ...],
    fields: Callable[[dict[str, str], str], dict[str, Any]],
    item_id: Callable[[Any], str | None] | None = None,
    encoding: str = "utf-8-sig",
) -> Iterator[Record | BadRecord]:
    """The loop every CSV converter shares: a header row naming the columns, then one record per row.

    Read as a stream in `encoding`; quoted fields may span lines, and a row's line is that of its first
    line. `fields(cells by column name, local id)` works as in `records_from_items`; blank rows are
    skipped. A header without the `required` columns, broken quoting or an undecodable line ends the
    file with one BadRecord (nothing after it can be located); a row of the wrong width is a BadRecord.
    """
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise ValueError(
            f"unknown encoding {encoding!r}: name a codec Python knows (utf-8, gb18030, ...)"
        ) from None
    with source.storage.open(source.uri, "rb") as handle:
        reader = csv.reader(_decoded_lines(handle, encoding))
        try:
            header = _csv_header(reader, required)
        except ValueError as error:
            yield bad(source, 1, None, str(error))
            return
        if header:
            yield from records_from_items(source, _csv_rows(reader, header), fields, item_id)


def _csv_header(reader: Any, required: tuple[str, ...]) -> list[str]:
    """The column names of the first row ([] for an empty file); ValueError when they lack `required`."""
    try:
        header = [name.strip() for name in next(reader)]
    except StopIteration:
        return []
    except (csv.Error, UndecodableLine) as error:
        raise ValueError(f"unreadable CSV header: {error}") from error
    missing = [name for name in required if name not in header]
    if missing:
        raise ValueError(f"header lacks columns {missing}: got {header}, expected at least {list(required)}")
    return header


def _csv_rows(reader: Any, header: list[str]) -> Iterator[JsonLine]:
    """The non-blank rows after the header as items `{column: cell}` numbered from 1, with their lines."""
    number, line = 0, reader.line_num + 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except (csv.Error, UndecodableLine) as error:
            yield JsonLine(number + 1, Line(line, ""), None, f"unreadable CSV row: {error}")
            return
        start, line = line, reader.line_num + 1
        if not any(cell.strip() for cell in row):
            continue
        number += 1
        width = (
            None
            if len(row) == len(header)
            else f"expected {len(header)} columns as in the header, got {len(row)}"
        )
        yield JsonLine(number, Line(start, ",".join(row)), dict(zip(header, row, strict=False)), width)


def records_from_json_array(
    source: Source,
    fields: Callable[[Any, int], dict[str, Any]],
    item_id: Callable[[Any, int], str | None],
) -> Iterator[Record | BadRecord]:
    """The loop every JSON-array converter shares: one record per array item, read as a stream.

    `fields(value, index)` turns an item into Record fields and raises ValueError (naming the field)
    for a malformed one, which becomes a BadRecord under `item_id(value, index)`. Broken JSON ends the
    file with one BadRecord at its line: nothing after it can be located.
    """
    with source.storage.open(source.uri, "rb") as handle:
        for item in iter_json_items(handle):
            if item.error:
                yield bad(source, item.line, None, item.error, item.raw)
                return
            try:
                built = fields(item.value, item.index)
            except ValueError as error:
                yield bad(source, item.line, item_id(item.value, item.index), str(error), item.raw)
                continue
            yield build_record(source, item.line, item.raw, built)


@dataclass(frozen=True)
class ItemProblem:
    """A malformed part of a member that yields several records (an utterance of a dialogue)."""

    record_id: str
    reason: str


def records_from_json_members(
    source: Source, expand: Callable[[str, Any], Iterator[dict[str, Any] | ItemProblem]]
) -> Iterator[Record | BadRecord]:
    """The loop of converters over a top-level JSON object `{key: item}`, read member by member.

    `expand(key, value)` yields the Record fields of each record the member gives (an IMCS dialogue
    gives one per utterance) or an `ItemProblem` for a bad part, and raises ValueError when the whole
    member is malformed. Only one member is held in memory at a time.
    """
    with source.storage.open(source.uri, "rb") as handle:
        for item in iter_json_items(handle):
            if item.error or item.key is None:
                reason = item.error or "expected a top-level JSON object {id: item}, got an array"
                yield bad(source, item.line, None, reason, item.raw)
                return
            try:
                for built in expand(item.key, item.value):
                    if isinstance(built, ItemProblem):
                        yield bad(source, item.line, built.record_id, built.reason, item.raw)
                    else:
                        yield build_record(source, item.line, item.raw, built)
            except ValueError as error:
                yield bad(source, item.line, item.key, str(error), item.raw)
