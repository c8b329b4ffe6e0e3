"""Between records and answers: a record's answer space and gold prediction, and a prediction as a record.

Evaluation writes each parsed prediction as a unified `Record` (so `taiyi-ray eval score --pred` reads
predictions and gold alike): `prediction_to_record` keeps the gold record's identity and passage and
puts the predicted entities (type + text; no offsets, a generated answer names texts, not spans),
relations between them, events (trigger text, arguments naming entities or other events), labels or
answer in place of the gold ones.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from taiyi_ray.config.data import DatasetEntry
from taiyi_ray.data.answers.format import (
    FREE_TEXT_TASKS,
    AnswerSpace,
    EventAnswer,
    EventArgumentAnswer,
    ParseResult,
    Prediction,
    parse_with,
)
from taiyi_ray.data.answers.text import canonical_text
from taiyi_ray.data.answers.vocabulary import (
    CID,
    DEFAULT_ENTITY_TYPES,
    DEFAULT_LABEL_NAMES,
    DEFAULT_RELATION_TYPES,
)
from taiyi_ray.data.schema import Entity, Event, EventArgument, Record, Relation, Turn

# The argument types of relation types whose schema is fixed (used to type predicted arguments).
RELATION_ARGUMENT_TYPES = {CID: ("Chemical", "Disease")}
UNTYPED = "entity"


def answer_space(record: Record, entry: DatasetEntry) -> AnswerSpace:
    """The answer space of `record` as catalogued by `entry` (the entry's vocabulary, else the format's)."""
    entity_types = entry.entity_types or DEFAULT_ENTITY_TYPES.get(entry.format)
    if entity_types is None and record.task == "ner":
        entity_types = list(dict.fromkeys(entity.type for entity in record.entities))
    relation_types = entry.relation_types or DEFAULT_RELATION_TYPES.get(entry.format)
    if relation_types is None and record.task == "re":
        relation_types = list(dict.fromkeys(relation.type for relation in record.relations))
    label_names = entry.label_names or DEFAULT_LABEL_NAMES.get(entry.format)
    event_types = entry.event_types
    if event_types is None and record.task == "ee":
        event_types = list(dict.fromkeys(event.type for event in record.events))
    return AnswerSpace(
        task=record.task,
        language=record.language,
        entity_types=tuple(entity_types) if entity_types is not None else None,
        relation_types=tuple(relation_types) if relation_types is not None else None,
        label_names=tuple(label_names) if label_names is not None else None,
        choices=record.choices,
        event_types=tuple(event_types) if event_types is not None else None,
    )


def gold_prediction(record: Record, space: AnswerSpace) -> Prediction:
    """What a perfect model answers for `record`, in the canonical order `serialise` writes."""
    task = record.task
    if task == "ner":
        return Prediction(task, entities=_gold_entities(record, space.entity_types))
    if task == "re":
        return Prediction(task, relations=_gold_relations(record, space.relation_types))
    if task == "ee":
        return Prediction(task, events=_gold_events(record, space.event_types))
    if task in ("tc", "tc_multilabel", "text_pair"):
        labels = tuple(
            dict.fromkeys(canonical_text(label) for label in record.labels if canonical_text(label))
        )
        return Prediction(task, labels=labels)
    if task == "dialogue":
        replies = [turn.content for turn in record.turns if turn.role == "assistant"]
        return Prediction(task, answer=replies[-1].strip() if replies else None)
    if task in FREE_TEXT_TASKS:
        return Prediction(task, answer=(record.answer or "").strip() or None)
    return Prediction(task, answer=record.answer)


def _type_order(types: Sequence[str] | None, found: Sequence[str]) -> dict[str, int]:
    """Rank of each type: the offered order; with no offered list, the order types first appear in."""
    if types is not None:
        return {name: rank for rank, name in enumerate(types)}
    return {name: rank for rank, name in enumerate(dict.fromkeys(found))}


def _gold_entities(record: Record, types: Sequence[str] | None) -> tuple[tuple[str, str], ...]:
    """(type, text) by type (offered order), then position; types not offered are left out."""
    order = _type_order(types, [entity.type for entity in record.entities])
    kept = [
        (order[entity.type], entity.offsets[0][0] if entity.offsets else -1, index, entity)
        for index, entity in enumerate(record.entities)
        if entity.type in order
    ]
    found: dict[tuple[str, str], None] = {}
    for *_, entity in sorted(kept, key=lambda item: item[:3]):
        text = canonical_text(entity.text)
        if text:
            found.setdefault((entity.type, text), None)
    return tuple(found)


def _gold_relations(record: Record, types: Sequence[str] | None) -> tuple[tuple[str, str, str], ...]:
    """(type, head text, tail text) by type (offered order), then source order; others left out."""
    texts = _argument_texts(record)
    order = _type_order(types, [relation.type for relation in record.relations])
    kept = [
        (order[relation.type], index, relation)
        for index, relation in enumerate(record.relations)
        if relation.type in order
    ]
    found: dict[tuple[str, str, str], None] = {}
    for *_, relation in sorted(kept, key=lambda item: item[:2]):
        head, tail = texts.get(relation.head_id, ""), texts.get(relation.tail_id, "")
        if head and tail:
            found.setdefault((relation.type, head, tail), None)
    return tuple(found)


def _gold_events(record: Record, types: Sequence[str] | None) -> tuple[EventAnswer, ...]:
    """Events by trigger position, then source order (types not offered left out); each argument an
    entity's text or, for a nested event, its type and trigger text; empty texts and roles left out."""
    named = {entity.id: ("", canonical_text(entity.text)) for entity in record.entities}
    named |= {event.id: (event.type, canonical_text(event.trigger)) for event in record.events}
    order = _type_order(types, [event.type for event in record.events])
    kept = [
        (event.trigger_offsets[0][0] if event.trigger_offsets else -1, index, event)
        for index, event in enumerate(record.events)
        if event.type in order
    ]
    found: dict[EventAnswer, None] = {}
    for *_, event in sorted(kept, key=lambda item: item[:2]):
        arguments = (
            EventArgumentAnswer(
                canonical_text(argument.role), named[argument.ref_id][1], named[argument.ref_id][0]
            )
            for argument in event.arguments
        )
        usable = (
            argument for argument in arguments if argument.role and (argument.text or argument.event_type)
        )
        found.setdefault(
            EventAnswer(event.type, canonical_text(event.trigger), tuple(dict.fromkeys(usable))), None
        )
    return tuple(found)


def _argument_texts(record: Record) -> dict[str, str]:
    """Entity id -> its text; concept key -> the text of its representative mention.

    A concept (BC5CDR CID) is shown by its first mention in the document, preferring a mention that
    names this concept alone over a composite one ("hemorrhagic cystitis" names two concepts). When a
    composite mention is a concept's only mention, one text pair stands for several concept pairs (10 of
    the 1,066 CID pairs of the BC5CDR test set): a scorer credits each concept pair a text pair matches.
    """
    texts = {entity.id: canonical_text(entity.text) for entity in record.entities}
    candidates: dict[str, tuple[int, int, str]] = {}
    for index, entity in enumerate(record.entities):
        start = entity.offsets[0][0] if entity.offsets else index
        for concept in entity.normalized:
            rank = (0 if len(entity.normalized) == 1 else 1, start, canonical_text(entity.text))
            key = concept.key()
            if key not in candidates or rank < candidates[key]:
                candidates[key] = rank
    texts.update({key: rank[2] for key, rank in candidates.items()})
    return texts


def prediction_to_record(prediction: Prediction, gold: Record) -> Record:
    """The prediction as a unified record carrying the gold record's identity and passage."""
    entities: dict[tuple[str, str], Entity] = {}

    def entity_id(entity_type: str, text: str) -> str:
        key = (entity_type, text)
        if key not in entities:
            entities[key] = Entity(id=f"P{len(entities) + 1}", type=entity_type, text=text)
        return entities[key].id

    for entity_type, text in prediction.entities:
        entity_id(entity_type, text)
    relations = []
    for relation_type, head, tail in prediction.relations:
        head_type, tail_type = RELATION_ARGUMENT_TYPES.get(relation_type, (UNTYPED, UNTYPED))
        relations.append(
            Relation(
                type=relation_type, head_id=entity_id(head_type, head), tail_id=entity_id(tail_type, tail)
            )
        )
    events = _predicted_events(prediction.events, entity_id)  # adds the entities its arguments name
    answer = prediction.answer
    if gold.choices and answer not in gold.choices:
        answer = None
    turns = []
    if gold.task == "dialogue":  # the dialogue up to its last user turn, then the predicted reply
        turns = list(gold.turns)
        while turns and turns[-1].role == "assistant":
            turns.pop()
        turns.append(Turn(role="assistant", content=answer or ""))
        answer = None
    return Record(
        id=gold.id,
        document_id=gold.document_id,
        dataset=gold.dataset,
        split=gold.split,
        language=gold.language,
        task=gold.task,
        text=gold.text,
        question=gold.question,
        choices=gold.choices,
        context=gold.context,
        entities=list(entities.values()),
        relations=relations,
        events=events,
        labels=list(prediction.labels),
        answer=answer,
        turns=turns,
    )


def _predicted_events(answers: Sequence[EventAnswer], entity_id: Callable[[str, str], str]) -> list[Event]:
    """Predicted events as record events: ids E1.. in answer order; an entity argument names an untyped
    entity of its text, a nested one the first event of its type and trigger (one without arguments is
    added when the answer never lists it: the answer said such an event exists)."""
    events = [
        Event(id=f"E{index}", type=answer.type, trigger=answer.trigger)
        for index, answer in enumerate(answers, 1)
    ]
    by_key: dict[tuple[str, str], str] = {}
    for event in events:
        by_key.setdefault((event.type, event.trigger), event.id)
    for event, answer in zip(events[: len(answers)], answers, strict=True):
        for argument in answer.arguments:
            key = (argument.event_type, argument.text)
            if argument.event_type and key not in by_key:
                by_key[key] = f"E{len(events) + 1}"
                events.append(Event(id=by_key[key], type=argument.event_type, trigger=argument.text))
            ref = by_key[key] if argument.event_type else entity_id(UNTYPED, argument.text)
            event.arguments.append(EventArgument(role=argument.role, ref_id=ref))
    return events


def parse_output(text: str, record: Record, entry: DatasetEntry) -> ParseResult:
    """A model's output for `record` (catalogued by `entry`) parsed against the record's answer space."""
    return parse_with(text, answer_space(record, entry))


def gold_for(record: Record, entry: DatasetEntry) -> Prediction:
    """The gold prediction of `record` under its entry's answer space (what an oracle answers)."""
    return gold_prediction(record, answer_space(record, entry))
