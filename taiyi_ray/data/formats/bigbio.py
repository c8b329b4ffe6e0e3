"""The six BigBIO schemas (bigscience-workshop/biomedical, `bigbio/utils/schemas/*.py`), as exported.

A BigBIO config (`ncbi_disease_bigbio_kb`, `pubmed_qa_labeled_fold0_bigbio_qa`, ...) loaded with the
HuggingFace `datasets` library and saved with `Dataset.to_json` (JSON Lines: one document per line) or
`Dataset.to_parquet` (one document per row). Parquet is recognised by a `.parquet` name or the `PAR1`
magic bytes and read batch by batch, never whole; a rejected row's `line` is its 1-based row number.
BigBIO's null string `<BB_NULL_STR>` (PubMedQA's unlabelled answers) counts as missing. A record's id
is the item's `id` (else `{file}:{n}`), its document id `document_id` (else the id).

`bigbio_kb` {id, document_id, passages, entities, events, coreferences, relations}: one record per
document. The text is every passage text joined by one space, as BigBIO's offsets count. An entity's
`text` and `offsets` are lists (several pieces for a discontiguous mention, piece i spelled at offsets
i): the record's entity text is the pieces joined by one space, as `Entity` defines it; a piece the
text does not spell at its offsets is a bad record naming the entity. `normalized` {db_name, db_id}
become {db, id}; relations arg1_id/arg2_id become head_id/tail_id (entity ids: BigBIO's BC5CDR writes
CID mention by mention, one relation per chemical-mention x disease-mention pair); a relation's own
`normalized` is not kept. Events keep their trigger and role-named arguments (`ref_id` an entity or
another event: nested events). **Coreference chains are not stored** (a `Record` has no field for
them): they are counted and logged per file. The task is `ee` when the document has events, else `re`
when it has relations, else `ner`.

`bigbio_qa` {id, question_id, document_id, question, type, choices, context, answer: [str]}: `yesno`
-> qa_yesno (the answer lower-cased, yes/no/maybe); `multiple_choice` -> qa_mc, the choices keyed
A, B, ... in order and the answer the key of the choice spelled as the answer (stripped); any other
type (factoid, list, summary, ...) -> qa_open, the answers joined by "; ". Read for a catalogue task,
an item of another type is refused rather than mislabelled.

`bigbio_text` {id, document_id, text, labels}: tc, exactly one label; tc_multilabel with
`options.multilabel: true` or a catalogue entry of task tc_multilabel.

`bigbio_pairs` {id, document_id, text_1, text_2, label}: text_pair (text, context = text_2, one
label); with `options.score: true` or task sts (BIOSSES's averaged scores) an sts record whose answer
is the numeric label as a decimal string.

`bigbio_te` {id, premise, hypothesis, label}: text_pair (text = premise, context = hypothesis).

`bigbio_t2t` {id, document_id, text_1, text_2, text_1_name, text_2_name}: generation (text = text_1,
answer = text_2); with `options.translation: true` or task translation, a translation record whose
text is the side named by the record's language code (`text_N_name`, e.g. "zh") and answer the other.

A labelled item without its label (answer, labels, label, text_2) is a bad record naming the field
unless the file is read as unlabelled (`--unlabelled`, `unlabelled: true`).
"""

from __future__ import annotations

import json
import logging
import math
import string
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow.parquet as pq

from taiyi_ray.data.answers import YES_NO_MAYBE
from taiyi_ray.data.formats._io import (
    JsonLine,
    Line,
    iter_json_lines,
    label_or_none,
    records_from_items,
    require_str,
)
from taiyi_ray.data.formats.base import BadRecord, Source
from taiyi_ray.data.schema import Record
from taiyi_ray.storage import basename

log = logging.getLogger(__name__)

NULL = "<BB_NULL_STR>"
"""BigBIO's stand-in for a missing string value (`bigbio.utils.constants.BigBioValues.NULL`)."""
PARQUET_MAGIC = b"PAR1"
PARQUET_BATCH_ROWS = 256
"""Rows per Parquet batch: a batch of kb documents (a few kB each) stays small in memory."""
CHOICE_KEYS = string.ascii_uppercase
QA_TASKS = {"yesno": "qa_yesno", "multiple_choice": "qa_mc"}
"""BigBIO QA types with their own task; every other type is open QA."""

Fields = dict[str, Any]


# -- reading: JSON Lines or Parquet, one document per item ------------------------------------------


def _items(source: Source) -> Iterator[JsonLine]:
    return _parquet_rows(source) if _is_parquet(source) else iter_json_lines(source)


def _is_parquet(source: Source) -> bool:
    if source.uri.lower().endswith(".parquet"):
        return True
    with source.storage.open(source.uri, "rb") as handle:
        return bool(handle.read(len(PARQUET_MAGIC)) == PARQUET_MAGIC)


def _parquet_rows(source: Source) -> Iterator[JsonLine]:
    """Rows of a Parquet file as parsed items (line = row number, raw = the row as JSON)."""
    with source.storage.open(source.uri, "rb") as handle:
        number = 0
        for batch in pq.ParquetFile(handle).iter_batches(batch_size=PARQUET_BATCH_ROWS):
            for row in batch.to_pylist():
                number += 1
                yield JsonLine(
                    number, Line(number, json.dumps(row, ensure_ascii=False, default=str)), row, None
                )


def _records(
    source: Source, schema: str, fields: Callable[[Fields, str], Fields]
) -> Iterator[Record | BadRecord]:
    """One record per item; `fields(item, local id)` gets the item checked to be an object."""
    return records_from_items(
        source, _items(source), lambda value, record_id: fields(_object(value, schema), record_id), _own_id
    )


def _own_id(value: Any) -> str | None:
    return _text_or_none(value.get("id")) if isinstance(value, dict) else None


def _object(value: Any, what: str) -> Fields:
    if not isinstance(value, dict):
        raise ValueError(f"expected a BigBIO {what} object, got {type(value).__name__}")
    return value


def _text_or_none(value: Any) -> str | None:
    """A string (or integer id) field as text; None when missing, blank or BigBIO's null string."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value.strip() and value != NULL:
        return value
    return None


def _ids(item: Fields, record_id: str) -> Fields:
    own = _text_or_none(item.get("id")) or record_id
    return {"id": own, "document_id": _text_or_none(item.get("document_id")) or own}


def _list(item: Fields, field: str) -> list[Any]:
    """A list field (missing or null: empty)."""
    value = item.get(field)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"field {field!r} must be a list, got {type(value).__name__}")
    return value


def _required_id(value: Any, field: str) -> str:
    found = _text_or_none(value)
    if found is None:
        raise ValueError(f"field {field!r} must be a non-empty string id, got {value!r}")
    return found


def _strings(item: Fields, field: str) -> list[str]:
    values = _list(item, field)
    if not all(isinstance(value, str) for value in values):
        raise ValueError(f"field {field!r} must be a list of strings, got {values!r:.120}")
    return values


def _present(values: list[str]) -> list[str]:
    """The values that carry something (BigBIO writes an unknown answer as [<BB_NULL_STR>])."""
    return [value for value in values if value.strip() and value != NULL]


def _followed(source: Source, option: str, task: str) -> bool:
    """Whether the file is read the second way: `options.<option>: true` or a catalogue entry of `task`."""
    return bool(source.options.get(option, False)) or source.task == task


# -- bigbio_kb ---------------------------------------------------------------------------------------


def convert_bigbio_kb(source: Source) -> Iterator[Record | BadRecord]:
    """Yield one NER/RE/EE record per document; coreference chains are counted, not stored."""
    chains = 0

    def fields(document: Fields, record_id: str) -> Fields:
        nonlocal chains
        chains += len(_list(document, "coreferences"))
        return _kb_fields(document, record_id)

    yield from _records(source, "kb document", fields)
    if chains:
        log.info("%s: %d coreference chains not stored (a record has no field for them)", source.uri, chains)


def _kb_fields(document: Fields, record_id: str) -> Fields:
    pieces = [piece for passage in _list(document, "passages") for piece in _pieces(passage, "passage")]
    text = require_str(" ".join(pieces), "passages.text")
    entities = [_kb_entity(_object(entity, "entity"), text) for entity in _list(document, "entities")]
    events = [_kb_event(_object(event, "event"), text) for event in _list(document, "events")]
    relations = [_kb_relation(_object(relation, "relation")) for relation in _list(document, "relations")]
    task = "ee" if events else "re" if relations else "ner"
    return {
        **_ids(document, record_id),
        "task": task,
        "text": text,
        "entities": entities,
        "relations": relations,
        "events": events,
    }


def _pieces(container: Any, what: str) -> list[str]:
    """A `text` field: a list of pieces (a plain string is one piece)."""
    text = _object(container, what).get("text")
    if isinstance(text, str):
        return [text]
    if not isinstance(text, list) or not all(isinstance(piece, str) for piece in text):
        raise ValueError(f"{what} text must be a list of strings, got {text!r:.120}")
    return text


def _spans(container: Fields, text: str, what: str) -> tuple[str, list[tuple[int, int]] | None]:
    """(pieces joined by one space, offsets) of an entity or trigger, checked against the document text.

    The comparison is of the joined pieces with the spans' texts joined by one space, so a loader that
    gives a discontiguous mention's text whole (one piece, several offsets; BigBIO's tests only warn)
    is read the same as one that gives a piece per span.
    """
    mention = " ".join(_pieces(container, what))
    offsets = container.get("offsets") or []
    if not offsets:
        return mention, None
    if not isinstance(offsets, list):
        raise ValueError(f"{what} offsets must be a list of [start, end] pairs, got {offsets!r:.120}")
    spans = [_span(span, text, what) for span in offsets]
    spelled = " ".join(text[start:end] for start, end in spans)
    if spelled != mention:
        where = ", ".join(f"[{start}, {end})" for start, end in spans)
        raise ValueError(
            f"{what} text {mention!r} does not match the document text at {where}: {spelled!r} "
            "(offsets count in the passages joined by one space)"
        )
    return mention, spans


def _span(span: Any, text: str, what: str) -> tuple[int, int]:
    if not (isinstance(span, list | tuple) and len(span) == 2 and all(isinstance(end, int) for end in span)):
        raise ValueError(f"{what} offsets must be [start, end] integer pairs, got {span!r}")
    start, end = span
    if not 0 <= start < end <= len(text):
        raise ValueError(
            f"{what} offsets [{start}, {end}) lie outside the document text (length {len(text)})"
        )
    return start, end


def _kb_entity(entity: Fields, text: str) -> Fields:
    entity_id = _required_id(entity.get("id"), "entities.id")
    mention, offsets = _spans(entity, text, f"entity {entity_id!r}")
    normalized = [
        _concept(_object(link, "normalized link"), entity_id) for link in _list(entity, "normalized")
    ]
    return {
        "id": entity_id,
        "type": require_str(entity.get("type"), f"entity {entity_id} type"),
        "text": mention,
        "offsets": offsets,
        "normalized": normalized,
    }


def _concept(link: Fields, entity_id: str) -> Fields:
    return {
        "db": require_str(link.get("db_name"), f"entity {entity_id} normalized.db_name"),
        "id": require_str(link.get("db_id"), f"entity {entity_id} normalized.db_id"),
    }


def _kb_event(event: Fields, text: str) -> Fields:
    event_id = _required_id(event.get("id"), "events.id")
    trigger, offsets = _spans(_object(event.get("trigger"), "trigger"), text, f"event {event_id!r} trigger")
    arguments = [_object(argument, "event argument") for argument in _list(event, "arguments")]
    return {
        "id": event_id,
        "type": require_str(event.get("type"), f"event {event_id} type"),
        "trigger": trigger,
        "trigger_offsets": offsets,
        "arguments": [
            {
                "role": require_str(argument.get("role"), f"event {event_id} arguments.role"),
                "ref_id": _required_id(argument.get("ref_id"), f"event {event_id} arguments.ref_id"),
            }
            for argument in arguments
        ],
    }


def _kb_relation(relation: Fields) -> Fields:
    return {
        "type": require_str(relation.get("type"), "relations.type"),
        "head_id": _required_id(relation.get("arg1_id"), "relations.arg1_id"),
        "tail_id": _required_id(relation.get("arg2_id"), "relations.arg2_id"),
    }


# -- bigbio_qa ---------------------------------------------------------------------------------------


def convert_bigbio_qa(source: Source) -> Iterator[Record | BadRecord]:
    """Yield one yes/no, multiple-choice or open QA record per question, by its BigBIO type."""
    return _records(source, "qa item", lambda item, record_id: _qa_fields(source, item, record_id))


def _qa_fields(source: Source, item: Fields, record_id: str) -> Fields:
    kind = require_str(item.get("type"), "type")
    task = QA_TASKS.get(kind, "qa_open")
    if source.task is not None and source.task != task:
        raise ValueError(f"type {kind!r} gives a {task} record, but the catalogue entry reads {source.task}")
    answers = label_or_none(source, _present(_strings(item, "answer")), "answer")
    fields: Fields = {
        **_ids(item, record_id),
        "task": task,
        "question": require_str(item.get("question"), "question"),
    }
    context = _text_or_none(item.get("context"))
    if context is not None:
        fields["context"] = context
    if task == "qa_yesno":
        return {**fields, "answer": _yes_no(answers)}
    if task == "qa_mc":
        choices = _choices(item)
        return {**fields, "choices": choices, "answer": _choice_key(choices, answers)}
    return {**fields, "answer": "; ".join(answer.strip() for answer in answers) if answers else None}


def _single(answers: list[str], kind: str) -> str:
    if len(answers) != 1:
        raise ValueError(
            f"field 'answer': a {kind} item takes one answer, got {len(answers)}: {answers!r:.120}"
        )
    return answers[0].strip()


def _yes_no(answers: list[str] | None) -> str | None:
    if answers is None:
        return None
    answer = _single(answers, "yesno").lower()
    if answer not in YES_NO_MAYBE:
        raise ValueError(f"field 'answer': {answers[0]!r} is not one of {list(YES_NO_MAYBE)}")
    return answer


def _choices(item: Fields) -> dict[str, str]:
    texts = [require_str(text, "choices").strip() for text in _strings(item, "choices")]
    if not texts or len(texts) > len(CHOICE_KEYS):
        raise ValueError(f"field 'choices': a multiple_choice item needs 1 to 26 choices, got {len(texts)}")
    return dict(zip(CHOICE_KEYS, texts, strict=False))


def _choice_key(choices: dict[str, str], answers: list[str] | None) -> str | None:
    if answers is None:
        return None
    answer = _single(answers, "multiple_choice")
    keys = [key for key, text in choices.items() if text == answer]
    if len(keys) != 1:
        found = "is not among" if not keys else f"matches {len(keys)} of"
        raise ValueError(f"field 'answer': {answer!r} {found} the choices {list(choices.values())!r:.200}")
    return keys[0]


# -- bigbio_text -------------------------------------------------------------------------------------


def convert_bigbio_text(source: Source) -> Iterator[Record | BadRecord]:
    """Yield one single-label (tc) or multi-label (tc_multilabel) record per text."""
    multilabel = _followed(source, "multilabel", "tc_multilabel")
    return _records(
        source, "text item", lambda item, record_id: _text_fields(source, item, record_id, multilabel)
    )


def _text_fields(source: Source, item: Fields, record_id: str, multilabel: bool) -> Fields:
    labels = label_or_none(source, _present(_strings(item, "labels")), "labels") or []
    if not multilabel and len(labels) > 1:
        raise ValueError(
            f"field 'labels': {labels!r:.120} are {len(labels)} labels in a single-label (tc) file; read "
            "a multi-label file with options.multilabel: true or a catalogue entry of task tc_multilabel"
        )
    return {
        **_ids(item, record_id),
        "task": "tc_multilabel" if multilabel else "tc",
        "text": require_str(item.get("text"), "text"),
        "labels": labels,
    }


# -- bigbio_pairs and bigbio_te ----------------------------------------------------------------------


def convert_bigbio_pairs(source: Source) -> Iterator[Record | BadRecord]:
    """Yield one text_pair record (a class label) or sts record (a score) per pair."""
    score = _followed(source, "score", "sts")
    return _records(
        source,
        "pairs item",
        lambda item, record_id: _pair_fields(source, item, record_id, ("text_1", "text_2"), score),
    )


def convert_bigbio_te(source: Source) -> Iterator[Record | BadRecord]:
    """Yield one text_pair record per premise/hypothesis pair, labelled with the entailment class."""
    return _records(
        source,
        "te item",
        lambda item, record_id: _pair_fields(source, item, record_id, ("premise", "hypothesis"), False),
    )


def _pair_fields(source: Source, item: Fields, record_id: str, names: tuple[str, str], score: bool) -> Fields:
    fields = {
        **_ids(item, record_id),
        "text": require_str(item.get(names[0]), names[0]),
        "context": require_str(item.get(names[1]), names[1]),
    }
    raw = item.get("label")
    number = isinstance(raw, int | float) and not isinstance(raw, bool)
    label = label_or_none(source, str(raw) if number else _text_or_none(raw), "label")
    if score:
        return {**fields, "task": "sts", "answer": None if label is None else _score(label)}
    return {**fields, "task": "text_pair", "labels": [] if label is None else [label]}


def _score(label: str) -> str:
    try:
        value = float(label)
    except ValueError:
        raise ValueError(
            f"field 'label': {label!r} is not a number (an sts file holds similarity scores)"
        ) from None
    if not math.isfinite(value):
        raise ValueError(f"field 'label': {label!r} is not a finite score")
    return str(value)


# -- bigbio_t2t --------------------------------------------------------------------------------------


def convert_bigbio_t2t(source: Source) -> Iterator[Record | BadRecord]:
    """Yield one generation record (text_1 -> text_2), or a translation record with the option."""
    translation = _followed(source, "translation", "translation")
    return _records(
        source, "t2t item", lambda item, record_id: _t2t_fields(source, item, record_id, translation)
    )


def _t2t_fields(source: Source, item: Fields, record_id: str, translation: bool) -> Fields:
    given, wanted = "text_1", "text_2"
    if translation:
        given, wanted = _translation_sides(source, item)
    return {
        **_ids(item, record_id),
        "task": "translation" if translation else "generation",
        "text": require_str(item.get(given), given),
        "answer": label_or_none(source, _text_or_none(item.get(wanted)), wanted),
    }


def _translation_sides(source: Source, item: Fields) -> tuple[str, str]:
    """(source side, target side): the source is the side named by the record's language."""
    names = [str(item.get(f"text_{side}_name") or "").strip().lower() for side in (1, 2)]
    if names[0] == source.language:
        return "text_1", "text_2"
    if names[1] == source.language:
        return "text_2", "text_1"
    raise ValueError(
        f"fields 'text_1_name'/'text_2_name' are {names[0]!r}/{names[1]!r}, neither the record language "
        f"{source.language!r} of {basename(source.uri)} (pass --language or the catalogue's language)"
    )
