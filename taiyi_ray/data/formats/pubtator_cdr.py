"""`pubtator_cdr`: PubTator files of the BioCreative V CDR corpus (and any PubTator file like them).

A document is a block of lines ended by a blank line:
`PMID|t|title`, `PMID|a|abstract`, mention lines
`PMID<TAB>start<TAB>end<TAB>mention<TAB>type<TAB>ids[<TAB>individual mentions]` and relation lines
`PMID<TAB>CID<TAB>chemical id<TAB>disease id`. One record per abstract: the text is title + " " +
abstract (the corpus' offsets count that way). A composite mention line ("hemorrhagic cystitis" with
ids `D006470|D003556`) is one entity carrying every id in `normalized`; the id `-1` (no concept) gives
none. CID relations hold between MeSH concepts, not mentions, so a relation's head and tail are
concept keys `MESH:D...` (DESIGN.md); the schema checks that some entity carries each of them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from taiyi_ray.data.formats._io import Line, bad, build_record, iter_lines
from taiyi_ray.data.formats.base import BadRecord, Source
from taiyi_ray.data.schema import Record

MESH = "MESH"


class _Problem(ValueError):
    """A malformed line of a document: its line number and why."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(reason)
        self.line = line


def convert_pubtator_cdr(source: Source) -> Iterator[Record | BadRecord]:
    """Yield one record per PubTator document (entities and their CID relations)."""
    for block in _blocks(source):
        yield _convert_document(source, block)


def _blocks(source: Source) -> Iterator[list[Line]]:
    block: list[Line] = []
    for line in iter_lines(source):
        if line.error is None and not line.text.strip():
            if block:
                yield block
            block = []
        else:
            block.append(line)
    if block:
        yield block


def _convert_document(source: Source, block: list[Line]) -> Record | BadRecord:
    raw = "\n".join(line.text for line in block)
    pmid = block[0].text.split("|", 1)[0].split("\t", 1)[0].strip() or None
    try:
        fields = _document_fields(block)
    except _Problem as problem:
        return bad(source, problem.line, pmid, str(problem), raw)
    return build_record(source, block[0].number, raw, fields)


def _document_fields(block: list[Line]) -> dict[str, Any]:
    title: str | None = None
    abstract: str | None = None
    pmid = ""
    annotations: list[tuple[int, list[str]]] = []
    for line in block:
        if line.error:
            raise _Problem(line.number, line.error)
        head = line.text.split("|", 2)
        if len(head) == 3 and head[1] in ("t", "a") and "\t" not in head[0]:
            pmid = _same_pmid(pmid, head[0], line.number)
            if head[1] == "t":
                title = head[2]
            else:
                abstract = head[2]
            continue
        parts = line.text.split("\t")
        pmid = _same_pmid(pmid, parts[0], line.number)
        annotations.append((line.number, parts))
    if title is None or abstract is None:
        missing = "title (PMID|t|...)" if title is None else "abstract (PMID|a|...)"
        raise _Problem(block[0].number, f"document {pmid or '?'} has no {missing} line")
    text = f"{title} {abstract}"
    entities, relations = _annotations(annotations, text)
    return {
        "id": pmid,
        "document_id": pmid,
        "task": "re",
        "text": text,
        "entities": entities,
        "relations": relations,
    }


def _annotations(
    annotations: list[tuple[int, list[str]]], text: str
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Mention lines (second column a number) and relation lines (second column a type such as CID)."""
    entities: list[dict[str, Any]] = []
    relations: list[dict[str, str]] = []
    for number, parts in annotations:
        is_mention = len(parts) > 1 and parts[1].strip().isdigit()
        if is_mention and len(parts) in (6, 7):
            entities.append(_mention(parts, number, text, len(entities)))
        elif not is_mention and len(parts) == 4:
            relations.append(_relation(parts, number))
        else:
            kind, expected = (
                ("mention", "6 or 7 (PMID, start, end, mention, type, ids[, individual mentions])")
                if is_mention
                else ("relation", "4 (PMID, type, id, id)")
            )
            raise _Problem(number, f"a {kind} line needs {expected} tab-separated columns, got {len(parts)}")
    return entities, relations


def _same_pmid(current: str, found: str, line: int) -> str:
    found = found.strip()
    if not found:
        raise _Problem(line, "line has no PMID in its first field")
    if current and found != current:
        raise _Problem(
            line, f"PMID {found} inside document {current}: expected a blank line between documents"
        )
    return found


def _mention(parts: list[str], line: int, text: str, number: int) -> dict[str, Any]:
    try:
        start, end = int(parts[1]), int(parts[2])
    except ValueError:
        raise _Problem(line, f"mention offsets must be integers, got {parts[1]!r} and {parts[2]!r}") from None
    mention, entity_type, ids = parts[3], parts[4].strip(), parts[5].strip()
    if not 0 <= start < end <= len(text):
        raise _Problem(
            line, f"mention {mention!r} offsets [{start}, {end}) lie outside the text (length {len(text)})"
        )
    if text[start:end] != mention:
        raise _Problem(
            line, f"mention text {mention!r} does not match the text at [{start}, {end}): {text[start:end]!r}"
        )
    normalized = [
        {"db": MESH, "id": concept} for concept in ids.split("|") if concept.strip() not in ("", "-1")
    ]
    return {
        "id": f"T{number + 1}",
        "type": entity_type,
        "text": mention,
        "offsets": [(start, end)],
        "normalized": normalized,
    }


def _relation(parts: list[str], line: int) -> dict[str, str]:
    relation_type, head, tail = (part.strip() for part in parts[1:4])
    if not relation_type or not head or not tail:
        raise _Problem(line, "a relation line needs a type and two concept ids")
    return {"type": relation_type, "head_id": f"{MESH}:{head}", "tail_id": f"{MESH}:{tail}"}
