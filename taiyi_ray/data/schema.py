"""One record schema for every biomedical task (BigBIO-style), and the instruction sample built from it.

A `Record` holds a source item as the source holds it: NER mentions with character offsets into
`text`, relations between entity ids (or, for concept-level corpora such as BC5CDR CID, between
normalised concept ids `db:id`), labels, a question with choices and an answer, or dialogue turns.
Validation checks what later stages silently rely on: offsets inside the text and matching the entity
text, relations that point at something that exists, an answer among the choices.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from taiyi_ray.config.data import Language, Task

Role = Literal["system", "user", "assistant"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Normalized(_Model):
    """A link to a concept in a knowledge base, e.g. {db: "MESH", id: "D015738"}."""

    db: str
    id: str

    def key(self) -> str:
        return f"{self.db}:{self.id}"


class Entity(_Model):
    """A mention. `offsets` are [start, end) character spans into the record's `text`; several spans
    for a discontiguous mention (their texts joined by one space give `text`). None when the source
    gives no offsets and none could be resolved (CMeIE gives none: we resolve the first occurrence)."""

    id: str
    type: str
    text: str
    offsets: list[tuple[int, int]] | None = None
    normalized: list[Normalized] = Field(default_factory=list)


class Relation(_Model):
    """A directed relation from `head_id` to `tail_id`: entity ids, or concept keys `db:id`."""

    type: str
    head_id: str
    tail_id: str


class EventArgument(_Model):
    """One argument of an event: its role (Theme, Cause, Site, ...) and the entity or event it names."""

    role: str
    ref_id: str


class Event(_Model):
    """An event (BioNLP-ST / BigBIO `kb` events, CHIP-CDEE): a typed trigger with role-named arguments.

    `trigger_offsets` are [start, end) spans into the record's `text` spelling `trigger` (None when the
    source gives none). An argument's `ref_id` is an entity id or the id of another event of the record
    (BioNLP's nested events: a Regulation whose Theme is a Phosphorylation).
    """

    id: str
    type: str
    trigger: str
    trigger_offsets: list[tuple[int, int]] | None = None
    arguments: list[EventArgument] = Field(default_factory=list)


class Turn(_Model):
    role: Role
    content: str


class Record(_Model):
    """One item of any task, in one schema. Only the fields a task uses are filled."""

    id: str
    document_id: str
    dataset: str
    split: str = "train"
    language: Language
    task: Task
    text: str = ""
    entities: list[Entity] = Field(default_factory=list)
    relations: list[Relation] = Field(default_factory=list)
    events: list[Event] = Field(default_factory=list)
    labels: list[str] = Field(default_factory=list)
    question: str | None = None
    choices: dict[str, str] | None = None
    context: str | None = None
    answer: str | None = None
    turns: list[Turn] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> Record:
        check_entities(self)
        check_relations(self)
        check_events(self)
        if self.choices and self.answer is not None and self.answer not in self.choices:
            raise ValueError(f"answer {self.answer!r} is not one of the choices {sorted(self.choices)}")
        return self


def check_entities(record: Record) -> None:
    """Offsets lie inside the text and the spans spell the entity's text."""
    seen: set[str] = set()
    for entity in record.entities:
        if entity.id in seen:
            raise ValueError(f"entity id {entity.id!r} appears twice")
        seen.add(entity.id)
        if entity.offsets is None:
            continue
        spelled = _spelled(record.text, entity.offsets, f"entity {entity.id!r}")
        if spelled != entity.text:
            raise ValueError(
                f"entity {entity.id!r} text {entity.text!r} does not match the text at its offsets {spelled!r}"
            )


def check_relations(record: Record) -> None:
    targets = {entity.id for entity in record.entities}
    targets |= {concept.key() for entity in record.entities for concept in entity.normalized}
    for relation in record.relations:
        for end in (relation.head_id, relation.tail_id):
            if end not in targets:
                raise ValueError(
                    f"relation {relation.type!r} refers to {end!r}, which is no entity id or concept id"
                )


def check_events(record: Record) -> None:
    """Event ids are unique, triggers spell their offsets, and arguments name an entity or event."""
    entity_ids = {entity.id for entity in record.entities}
    event_ids: set[str] = set()
    for event in record.events:
        if event.id in event_ids or event.id in entity_ids:
            raise ValueError(
                f"event id {event.id!r} appears twice (event ids and entity ids share one space)"
            )
        event_ids.add(event.id)
    for event in record.events:
        if event.trigger_offsets is not None:
            spelled = _spelled(record.text, event.trigger_offsets, f"event {event.id!r} trigger")
            if spelled != event.trigger:
                raise ValueError(
                    f"event {event.id!r} trigger {event.trigger!r} does not match the text at its offsets {spelled!r}"
                )
        for argument in event.arguments:
            if argument.ref_id not in entity_ids | event_ids:
                raise ValueError(
                    f"event {event.id!r} argument {argument.role!r} refers to {argument.ref_id!r}, "
                    "which is no entity id or event id"
                )


def _spelled(text: str, offsets: list[tuple[int, int]], what: str) -> str:
    """The text at `offsets` (pieces joined by one space); raises when a span lies outside `text`."""
    if not offsets:
        raise ValueError(f"{what} has an empty offsets list (use null when unknown)")
    for start, end in offsets:
        if not 0 <= start < end <= len(text):
            raise ValueError(f"{what} offsets [{start}, {end}) lie outside the text (length {len(text)})")
    return " ".join(text[start:end] for start, end in offsets)


class Message(_Model):
    role: Role
    content: str


class InstructionSample(_Model):
    """A training conversation built from a record: the assistant messages are what the loss is on."""

    id: str
    source_id: str
    dataset: str
    task: Task
    language: Language
    messages: list[Message] = Field(min_length=2)

    @model_validator(mode="after")
    def _has_answer(self) -> InstructionSample:
        if not any(message.role == "assistant" for message in self.messages):
            raise ValueError(f"sample {self.id!r} has no assistant message to learn")
        if self.messages[-1].role != "assistant":
            raise ValueError(f"sample {self.id!r} must end with an assistant message")
        return self
