"""The long-input policy: split long NER/RE/EE documents into windows, cut long contexts.

A training prompt holds at most `max_chars` characters of passage. For extraction tasks a longer
document becomes several windows, each a record of its own (`{id}#w{k}`), cut at a sentence end
(or a space) and never inside a mention or event trigger; a window keeps the mentions inside it
(offsets shifted), the relations whose two ends are both in it (for concept-level relations: some
mention of each concept), and the events whose trigger and every argument (entity or nested event) are
in it. Relations that lose an end and events that lose their trigger or an argument are counted. For QA and classification the context or text is cut at the
limit with an ellipsis instead: the answer does not depend on where the passage is cut as much as an
extraction answer does, and there is only one question per record.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from taiyi_ray.data.schema import Event, Record

ELLIPSIS = " …"
_SENTENCE_END = re.compile(r"(?:[.!?;](?=\s)|[。！？；\n])")


@dataclass(frozen=True)
class Windows:
    """The records a document became and how many of its relations and events no window could keep."""

    records: list[Record]
    dropped_relations: int = 0
    dropped_events: int = 0

    @property
    def windowed(self) -> bool:
        return len(self.records) > 1


def window_record(record: Record, max_chars: int) -> Windows:
    """Split `record` into windows of at most `max_chars` characters of text (see the module docstring)."""
    if len(record.text) <= max_chars:
        return Windows([record])
    mentions = [span for entity in record.entities for span in entity.offsets or ()]
    mentions += [span for event in record.events for span in event.trigger_offsets or ()]
    spans = _window_spans(record.text, mentions, max_chars)
    windows = [_window(record, start, end, number) for number, (start, end) in enumerate(spans, start=1)]
    unique_kept = len(
        {
            (relation.type, relation.head_id, relation.tail_id)
            for window in windows
            for relation in window.relations
        }
    )
    total = len({(relation.type, relation.head_id, relation.tail_id) for relation in record.relations})
    kept_events = len({event.id for window in windows for event in window.events})
    return Windows(
        windows,
        dropped_relations=max(total - unique_kept, 0),
        dropped_events=len({event.id for event in record.events}) - kept_events,
    )


def _window_spans(text: str, mentions: list[tuple[int, int]], max_chars: int) -> list[tuple[int, int]]:
    spans = []
    start = _skip_space(text, 0)
    while start < len(text):
        end = min(start + max_chars, len(text))
        if end < len(text):
            end = _cut_point(text, start, end)
            end = _outside_mentions(mentions, start, end)
        spans.append((start, end))
        start = _skip_space(text, end)
    return spans


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position].isspace():
        position += 1
    return position


def _cut_point(text: str, start: int, end: int) -> int:
    """The last sentence end in the second half of [start, end); else the last space; else `end`."""
    half = start + (end - start) // 2
    ends = [match.end() for match in _SENTENCE_END.finditer(text, half, end)]
    if ends:
        return ends[-1]
    space = text.rfind(" ", half, end)
    return space if space > start else end


def _outside_mentions(spans: list[tuple[int, int]], start: int, end: int) -> int:
    """Move `end` back before the mentions it would cut; forward past them when that empties the window.

    Each direction moves monotonically, so overlapping (nested) mentions cannot make it oscillate.
    """
    back = end
    while crossing := [first for first, last in spans if first < back < last]:
        back = min(crossing)
    if back > start:
        return back
    forward = end
    while crossing := [last for first, last in spans if first < forward < last]:
        forward = max(crossing)
    return forward


def _window(record: Record, start: int, end: int, number: int) -> Record:
    text = record.text[start:end]
    entities = []
    for entity in record.entities:
        if entity.offsets is None:
            if entity.text in text:
                entities.append(entity)
            continue
        if all(start <= first and last <= end for first, last in entity.offsets):
            shifted = [(first - start, last - start) for first, last in entity.offsets]
            entities.append(entity.model_copy(update={"offsets": shifted}))
    present = {entity.id for entity in entities} | {
        concept.key() for entity in entities for concept in entity.normalized
    }
    relations = [
        relation
        for relation in record.relations
        if relation.head_id in present and relation.tail_id in present
    ]
    events = _window_events(record.events, start, end, text, {entity.id for entity in entities})
    update = {"id": f"{record.id}#w{number}", "text": text, "entities": entities, "relations": relations}
    return record.model_copy(update={**update, "events": events})


def _window_events(events: list[Event], start: int, end: int, text: str, entity_ids: set[str]) -> list[Event]:
    """The events whose trigger lies in [start, end) (offsets shifted) and whose every argument is an
    entity of the window or an event kept here; dropping an event can drop the events nesting it."""
    kept: dict[str, Event] = {}
    for event in events:
        if event.trigger_offsets is None:
            if event.trigger in text:
                kept[event.id] = event
        elif all(start <= first and last <= end for first, last in event.trigger_offsets):
            shifted = [(first - start, last - start) for first, last in event.trigger_offsets]
            kept[event.id] = event.model_copy(update={"trigger_offsets": shifted})
    while lost := [
        key
        for key, event in kept.items()
        if any(
            argument.ref_id not in entity_ids and argument.ref_id not in kept for argument in event.arguments
        )
    ]:
        for key in lost:
            del kept[key]
    return list(kept.values())


def cut(text: str, max_chars: int) -> tuple[str, bool]:
    """`text` cut to at most `max_chars` characters (at a space when one is near), and whether it was cut."""
    if len(text) <= max_chars:
        return text, False
    limit = max(max_chars - len(ELLIPSIS), 1)
    space = text.rfind(" ", limit * 3 // 4, limit)
    return text[: space if space > 0 else limit].rstrip() + ELLIPSIS, True
