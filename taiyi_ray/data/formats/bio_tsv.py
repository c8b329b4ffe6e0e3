"""`bio_tsv`: CoNLL-style BIO token/tag TSV (BC5CDR-Chem/-Dise, NCBI-Disease, CHEMDNER as released by
Crichton et al. 2017 and BLURB).

One `token<TAB>tag` per line (the tag is the last of `options.columns` columns, default 2), a blank
line between sentences, optional `-DOCSTART-` lines. One record per sentence; the files hold no
document ids, so each sentence is its own document (`{file}:{n}`). The sentence text is the tokens
joined by single spaces and each mention's text is rebuilt from its tokens, so offsets always match.

An `I-X` that does not continue an `X` chunk (after `O`, or after another type) starts a new chunk —
the conlleval convention, which seqeval's default mode follows too; such tags are counted in a warning.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

from taiyi_ray.data.formats._io import (
    Line,
    bad,
    bio_chunks,
    bio_tag_problem,
    build_record,
    iter_lines,
    local_id,
)
from taiyi_ray.data.formats.base import BadRecord, Source
from taiyi_ray.data.schema import Record

log = logging.getLogger(__name__)


@dataclass
class _Sentence:
    first_line: int
    lines: list[Line] = field(default_factory=list)


def convert_bio_tsv(source: Source) -> Iterator[Record | BadRecord]:
    """Yield one NER record per sentence of a BIO TSV file."""
    columns = int(source.options.get("columns", 2))
    counters = {"orphan_inside": 0}
    for number, sentence in enumerate(_sentences(source), start=1):
        yield _convert_sentence(source, sentence, number, columns, counters)
    if counters["orphan_inside"]:
        log.warning(
            "%s: %d I- tags did not continue a chunk of their type; each started a new mention "
            "(the conlleval convention)",
            source.uri,
            counters["orphan_inside"],
        )


def _sentences(source: Source) -> Iterator[_Sentence]:
    current: _Sentence | None = None
    for line in iter_lines(source):
        if line.error is None and (not line.text.strip() or line.text.startswith("-DOCSTART-")):
            if current is not None:
                yield current
            current = None
            continue
        if current is None:
            current = _Sentence(first_line=line.number)
        current.lines.append(line)
    if current is not None:
        yield current


def _convert_sentence(
    source: Source, sentence: _Sentence, number: int, columns: int, counters: dict[str, int]
) -> Record | BadRecord:
    record_id = local_id(source, number)
    raw = "\n".join(line.text for line in sentence.lines)
    tokens: list[str] = []
    tags: list[str] = []
    for line in sentence.lines:
        if line.error:
            return bad(source, line.number, record_id, line.error, raw)
        parts = line.text.split("\t")
        if len(parts) != columns:
            reason = f"expected {columns} tab-separated columns (token, tag), got {len(parts)}: {line.text!r}"
            return bad(source, line.number, record_id, reason, raw)
        token, tag = parts[0], parts[-1].strip()
        problem = bio_tag_problem(tag) or ("empty token" if not token.strip() else None)
        if problem:
            return bad(source, line.number, record_id, problem, raw)
        tokens.append(token.strip())
        tags.append(tag)
    text, entities = _chunks(tokens, tags, counters)
    fields = {"id": record_id, "document_id": record_id, "task": "ner", "text": text, "entities": entities}
    return build_record(source, sentence.first_line, raw, fields)


def _chunks(
    tokens: list[str], tags: list[str], counters: dict[str, int]
) -> tuple[str, list[dict[str, object]]]:
    """The sentence text and its mentions (offsets into the text, `[start, end)`)."""
    starts: list[int] = []
    position = 0
    for token in tokens:
        starts.append(position)
        position += len(token) + 1
    text = " ".join(tokens)
    chunks, orphans = bio_chunks(tags)
    counters["orphan_inside"] += orphans
    return text, [_entity(number, chunk, starts, tokens, text) for number, chunk in enumerate(chunks)]


def _entity(
    number: int, chunk: tuple[str, int, int], starts: list[int], tokens: list[str], text: str
) -> dict[str, object]:
    entity_type, first, last = chunk
    start, end = starts[first], starts[last] + len(tokens[last])
    return {"id": f"T{number + 1}", "type": entity_type, "text": text[start:end], "offsets": [(start, end)]}
