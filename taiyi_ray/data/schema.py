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
        if not entity.offsets:
            raise ValueError(f"entity {entity.id!r} has an empty offsets list (use null when unknown)")
        pieces = []
        for start, end in entity.offsets:
            if not 0 <= start < end <= len(record.text):
                raise ValueError(
                    f"entity {entity.id!r} offsets [{start}, {end}) lie outside the text (length {len(record.text)})"
                )
            pieces.append(record.text[start:end])
        spelled = " ".join(pieces)
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
