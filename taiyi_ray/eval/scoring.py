"""The paper's metrics over unified records: gold records against predicted records, matched by id.

- ner: micro P/R/F1 over de-duplicated (document, type, text) sets (the paper's rule: a generated
  answer names texts, not spans); `strict_spans` scores (document, type, offsets) instead, which is
  what seqeval computes on BIO data.
- re: micro P/R/F1 over (document, relation, head, tail), case-insensitive, head -> tail as the task
  defines. A relation between entity ids is its texts. A relation between concepts (BC5CDR CID links
  MeSH ids) is one gold unit per concept pair; a predicted pair is right when its head and tail texts
  match any mention of the two concepts in that document, and each gold concept pair counts once
  (a prediction naming the same pair by other mentions adds neither a hit nor a false positive).
- ee: micro P/R/F1 over events (document, type, trigger, {(role, argument)}) and, as the extra
  metrics `argument_precision/recall/f1`, over arguments (document, type, trigger, role, argument);
  texts case-folded as in RE, an argument that is a nested event compared by that event's type and
  trigger (a predicted event is right only with exactly the gold arguments).
- tc_multilabel: micro P/R/F1 over (item, label), `none` a label like any other (HoC); accuracy is
  the exact-match share of items.
- tc: micro P/R/F1 over (item, label) where an item without exactly one predicted label counts as one
  wrong label, so P = R = F1 = accuracy (single-label micro-F1 is accuracy, as the paper used it).
- qa: accuracy (yes/no/maybe, or the option key); P/R/F1 do not apply (None).
- qa_open, generation, translation, dialogue: ROUGE-L, BLEU-4, chrF and distinct-2 of the answer text
  (dialogue: the last assistant turn, gold and predicted) against the gold, in the language of the gold
  text (translation: the other language than the record's); sts: Pearson and Spearman of the score in
  `answer` (a decimal string). The metrics, tokenisation and scales are in `taiyi_ray.eval.text_metrics`.

Unparsed or missing predictions are empty predictions: they are wrong, never skipped. F1 is
2tp / (2tp + fp + fn) and a 0/0 ratio is 0.0, as scikit-learn and seqeval return it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from taiyi_ray.config.data import Metric, Task
from taiyi_ray.data.answers import canonical_text
from taiyi_ray.data.schema import Record
from taiyi_ray.eval.text_metrics import (
    SCORE_METRICS,
    TEXT_METRICS,
    GoldTextError,
    TextScore,
    score_text_records,
)

ScoreTask = Literal[
    "ner", "re", "ee", "tc", "tc_multilabel", "qa", "qa_open", "generation", "translation", "sts", "dialogue"
]
TEXT_TASKS: tuple[ScoreTask, ...] = ("qa_open", "generation", "translation", "sts", "dialogue")
SCORE_TASKS: tuple[ScoreTask, ...] = ("ner", "re", "ee", "tc", "tc_multilabel", "qa", *TEXT_TASKS)
SCORE_TASK_OF: dict[Task, ScoreTask] = {
    "ner": "ner",
    "re": "re",
    "ee": "ee",
    "tc": "tc",
    "text_pair": "tc",
    "tc_multilabel": "tc_multilabel",
    "qa_yesno": "qa",
    "qa_mc": "qa",
    "qa_open": "qa_open",
    "generation": "generation",
    "translation": "translation",
    "sts": "sts",
    "dialogue": "dialogue",
}
_TEXT_DEFAULT_METRIC: dict[ScoreTask, Metric] = {
    "qa_open": "rouge_l", "generation": "rouge_l", "translation": "bleu", "dialogue": "bleu", "sts": "pearson",
}  # fmt: skip
NO_SINGLE_LABEL = "(no single label)"
"""What a tc prediction with zero or several labels is scored as: one label that is never right."""


class ScoringError(ValueError):
    """Gold or predicted records cannot be scored as asked (the message names the record and field)."""


@dataclass(frozen=True)
class Score:
    """Counts of one scored set, and the metrics derived from them (fractions 0..1, None where n/a).

    Text and similarity tasks carry their corpus metrics in `text` instead of counts.
    """

    task: ScoreTask
    n: int
    true_positives: int = 0
    false_positives: int = 0
    false_negatives: int = 0
    correct: int | None = None
    text: TextScore | None = None
    extra_metrics: tuple[tuple[str, float | None], ...] = ()
    """Further named metrics of the task (ee: `argument_f1` ...), shown by `as_dict` after `n`."""

    @property
    def precision(self) -> float | None:
        if self.task == "qa" or self.text is not None:
            return None
        return _ratio(self.true_positives, self.true_positives + self.false_positives)

    @property
    def recall(self) -> float | None:
        if self.task == "qa" or self.text is not None:
            return None
        return _ratio(self.true_positives, self.true_positives + self.false_negatives)

    @property
    def f1(self) -> float | None:
        if self.task == "qa" or self.text is not None:
            return None
        gold = self.true_positives + self.false_negatives
        predicted = self.true_positives + self.false_positives
        return _ratio(2 * self.true_positives, gold + predicted)

    @property
    def accuracy(self) -> float | None:
        return None if self.correct is None else _ratio(self.correct, self.n)

    def metric(self, name: str) -> float | None:
        """The catalogue's `metric` as a fraction: micro_f1 or accuracy, an extra metric of the task
        (ee: argument_f1 ...), or a text metric of the text tasks."""
        named_text_metric = name in TEXT_METRICS + SCORE_METRICS
        if self.text is not None or named_text_metric:
            value = self.text.metric(name) if self.text is not None and named_text_metric else None
            if value is None:
                raise ScoringError(f"metric {name!r} does not apply to task {self.task!r}")
            return value
        extras = dict(self.extra_metrics)
        if name == "micro_f1":
            return self.f1 if self.task != "qa" else self.accuracy
        if name == "accuracy":
            return self.accuracy if self.correct is not None else self.f1
        if name in extras:
            return extras[name]
        raise ScoringError(
            f"unknown metric {name!r}: expected one of micro_f1, accuracy, {[*extras, *TEXT_METRICS, *SCORE_METRICS]}"
        )

    def as_dict(self) -> dict[str, float | int | None]:
        """The `taiyi-ray eval score --json` object (DESIGN.md)."""
        return {
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "accuracy": self.accuracy,
            "n": self.n,
            **dict(self.extra_metrics),
        } | (self.text.as_dict() if self.text is not None else {})


@dataclass(frozen=True)
class ScoredSet:
    """A score and the units behind its errors (for the per-set error summary)."""

    score: Score
    false_positive_units: Counter[str] = field(default_factory=Counter)
    false_negative_units: Counter[str] = field(default_factory=Counter)


def default_metric(task: ScoreTask) -> Metric:
    """The metric a catalogue entry of `task` is reported by when it names none."""
    return _TEXT_DEFAULT_METRIC.get(task, "accuracy" if task == "qa" else "micro_f1")


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else 0.0


def score_records(
    task: ScoreTask,
    gold: Sequence[Record],
    predicted: Mapping[str, Record],
    strict_spans: bool = False,
) -> ScoredSet:
    """Score `predicted` (record id -> record) against `gold`; a gold id without a prediction is wrong.

    Predicted records are read under their gold record's document id, so a prediction file need not
    repeat document ids correctly to be scored as the paper did.
    """
    if task not in SCORE_TASKS:
        raise ScoringError(f"unknown task {task!r}: expected one of {list(SCORE_TASKS)}")
    if strict_spans and task != "ner":
        raise ScoringError(f"--strict-spans applies to ner only, got task {task!r}")
    _check_unique(gold)
    if task in TEXT_TASKS:
        return _score_texts(task, gold, predicted)
    if task == "ner":
        return _score_entities(gold, predicted, strict_spans)
    if task == "re":
        return _score_relations(gold, predicted)
    if task == "ee":
        return _score_events(gold, predicted)
    if task == "tc_multilabel":
        return _score_multilabel(gold, predicted)
    if task == "tc":
        return _score_single_label(gold, predicted)
    return _score_answers(gold, predicted)


def _check_unique(gold: Sequence[Record]) -> None:
    seen: set[str] = set()
    for record in gold:
        if record.id in seen:
            raise ScoringError(f"gold record id {record.id!r} appears twice; ids must be unique to match")
        seen.add(record.id)


def _set_score(
    task: ScoreTask, n: int, gold: set[tuple[str, ...]], predicted: set[tuple[str, ...]], correct: int | None
) -> ScoredSet:
    hits = gold & predicted
    return ScoredSet(
        Score(task, n, len(hits), len(predicted - hits), len(gold - hits), correct),
        Counter(_describe(unit) for unit in predicted - hits),
        Counter(_describe(unit) for unit in gold - hits),
    )


def _describe(unit: tuple[str, ...]) -> str:
    """An error unit without its document/item key, e.g. `Chemical: famotidine`."""
    first, *rest = unit[1:]
    return f"{first}: {' | '.join(rest)}" if rest else first


# -- NER ---------------------------------------------------------------------------------------------


def _score_entities(gold: Sequence[Record], predicted: Mapping[str, Record], strict: bool) -> ScoredSet:
    gold_units: set[tuple[str, ...]] = set()
    predicted_units: set[tuple[str, ...]] = set()
    for record in gold:
        gold_units |= _entity_units(record, record.document_id, strict)
        guess = predicted.get(record.id)
        if guess is not None:
            predicted_units |= _entity_units(guess, record.document_id, strict)
    return _set_score("ner", len(gold), gold_units, predicted_units, None)


def _entity_units(record: Record, document: str, strict: bool) -> set[tuple[str, ...]]:
    units: set[tuple[str, ...]] = set()
    for entity in record.entities:
        if not strict:
            text = canonical_text(entity.text)
            if text:
                units.add((document, entity.type, text))
            continue
        if entity.offsets is None:
            raise ScoringError(
                f"record {record.id!r}: entity {entity.id!r} ({entity.text!r}) has no offsets; "
                "--strict-spans needs offsets on every gold and predicted entity (drop the flag to score texts)"
            )
        spans = ",".join(f"{start}-{end}" for start, end in entity.offsets)
        units.add((document, entity.type, spans, entity.text))
    return units


# -- RE ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _GoldRelation:
    """A gold unit: its arguments as the sets of (case-folded) texts and concept keys that name them."""

    document: str
    type: str
    heads: frozenset[str]
    tails: frozenset[str]
    shown: tuple[str, str]


def _score_relations(gold: Sequence[Record], predicted: Mapping[str, Record]) -> ScoredSet:
    gold_units: dict[tuple[str, str], set[_GoldRelation]] = {}
    predicted_units: set[tuple[str, str, str, str]] = set()
    for record in gold:
        for unit in _gold_relations(record):
            gold_units.setdefault((unit.document, unit.type), set()).add(unit)
        guess = predicted.get(record.id)
        if guess is not None:
            predicted_units |= _predicted_relations(guess, record.document_id)
    matched: set[_GoldRelation] = set()
    false_positives: Counter[str] = Counter()
    for document, relation_type, head, tail in predicted_units:
        hits = [
            unit
            for unit in gold_units.get((document, relation_type), ())
            if head in unit.heads and tail in unit.tails
        ]
        if hits:
            matched.update(hits)
        else:
            false_positives[f"{relation_type}: {head} | {tail}"] += 1
    everything = {unit for units in gold_units.values() for unit in units}
    missed = everything - matched
    score = Score("re", len(gold), len(matched), sum(false_positives.values()), len(missed))
    false_negatives = Counter(f"{unit.type}: {unit.shown[0]} | {unit.shown[1]}" for unit in missed)
    return ScoredSet(score, false_positives, false_negatives)


def _fold(text: str) -> str:
    return canonical_text(text).casefold()


def _argument_names(record: Record) -> dict[str, set[str]]:
    """Entity id -> {its text}; concept key -> {the concept key, and the text of every mention of it}."""
    names: dict[str, set[str]] = {}
    for entity in record.entities:
        names.setdefault(entity.id, set()).add(_fold(entity.text))
        for concept in entity.normalized:
            key = concept.key()
            names.setdefault(key, {key.casefold()}).add(_fold(entity.text))
    return names


def _gold_relations(record: Record) -> set[_GoldRelation]:
    names = _argument_names(record)
    units = set()
    for relation in record.relations:
        heads, tails = names.get(relation.head_id), names.get(relation.tail_id)
        if not heads or not tails:
            raise ScoringError(
                f"gold record {record.id!r}: relation {relation.type!r} {relation.head_id} -> "
                f"{relation.tail_id} names no entity or concept of the record"
            )
        shown = (_shown(heads, relation.head_id), _shown(tails, relation.tail_id))
        units.add(_GoldRelation(record.document_id, relation.type, frozenset(heads), frozenset(tails), shown))
    return units


def _shown(names: set[str], key: str) -> str:
    texts = sorted(name for name in names if name != key.casefold())
    return texts[0] if texts else key


def _predicted_relations(record: Record, document: str) -> set[tuple[str, str, str, str]]:
    names = _argument_names(record)
    units = set()
    for relation in record.relations:
        for head in _one_name(names, relation.head_id):
            for tail in _one_name(names, relation.tail_id):
                units.add((document, relation.type, head, tail))
    return units


def _one_name(names: dict[str, set[str]], key: str) -> Iterable[str]:
    """A predicted argument's name: an entity's text, or a concept key itself."""
    found = names.get(key, set())
    return [key.casefold()] if key.casefold() in found else sorted(found)


# -- EE ----------------------------------------------------------------------------------------------

_EventUnit = tuple[str, str, str, frozenset[tuple[str, str, str]]]
"""(document, type, folded trigger, {(role, nested event type or "", folded argument text)})."""


def _score_events(gold: Sequence[Record], predicted: Mapping[str, Record]) -> ScoredSet:
    gold_events: set[_EventUnit] = set()
    predicted_events: set[_EventUnit] = set()
    for record in gold:
        gold_events |= _event_units(record, record.document_id)
        guess = predicted.get(record.id)
        if guess is not None:
            predicted_events |= _event_units(guess, record.document_id)
    gold_arguments, predicted_arguments = _argument_units(gold_events), _argument_units(predicted_events)
    found = len(gold_arguments & predicted_arguments)
    arguments = Score("ee", len(gold), found, len(predicted_arguments) - found, len(gold_arguments) - found)
    extra = (
        ("argument_precision", arguments.precision),
        ("argument_recall", arguments.recall),
        ("argument_f1", arguments.f1),
    )
    hits = gold_events & predicted_events
    missed, wrong = gold_events - hits, predicted_events - hits
    score = Score("ee", len(gold), len(hits), len(wrong), len(missed), extra_metrics=extra)
    return ScoredSet(score, Counter(map(_describe_event, wrong)), Counter(map(_describe_event, missed)))


def _event_units(record: Record, document: str) -> set[_EventUnit]:
    names = {entity.id: ("", _fold(entity.text)) for entity in record.entities}
    names |= {event.id: (event.type, _fold(event.trigger)) for event in record.events}
    return {
        (
            document,
            event.type,
            _fold(event.trigger),
            frozenset((argument.role, *names[argument.ref_id]) for argument in event.arguments),
        )
        for event in record.events
    }


def _argument_units(events: set[_EventUnit]) -> set[tuple[str, ...]]:
    return {(*event[:3], *argument) for event in events for argument in event[3]}


def _describe_event(unit: _EventUnit) -> str:
    """`Type: trigger | Role: text; Role: Type(trigger)`, as the answer format writes an event."""
    arguments = sorted(
        f"{role}: {kind}({text})" if kind else f"{role}: {text}" for role, kind, text in unit[3]
    )
    return f"{unit[1]}: {unit[2]}" + (f" | {'; '.join(arguments)}" if arguments else "")


# -- classification and QA ---------------------------------------------------------------------------


def _score_multilabel(gold: Sequence[Record], predicted: Mapping[str, Record]) -> ScoredSet:
    gold_units: set[tuple[str, ...]] = set()
    predicted_units: set[tuple[str, ...]] = set()
    exact = 0
    for record in gold:
        truth = {canonical_text(label) for label in record.labels}
        if not truth:
            raise ScoringError(
                f"gold record {record.id!r} has no labels (an unlabelled file cannot be scored)"
            )
        guess = predicted.get(record.id)
        guessed = {canonical_text(label) for label in guess.labels} if guess is not None else set()
        gold_units |= {(record.id, label) for label in truth}
        predicted_units |= {(record.id, label) for label in guessed if label}
        exact += truth == guessed
    return _set_score("tc_multilabel", len(gold), gold_units, predicted_units, exact)


def _score_single_label(gold: Sequence[Record], predicted: Mapping[str, Record]) -> ScoredSet:
    gold_units: set[tuple[str, ...]] = set()
    predicted_units: set[tuple[str, ...]] = set()
    correct = 0
    for record in gold:
        if len(record.labels) != 1:
            raise ScoringError(
                f"gold record {record.id!r} has {len(record.labels)} labels {record.labels}; "
                "tc expects exactly one (use tc_multilabel for multi-label data)"
            )
        truth = canonical_text(record.labels[0])
        guess = predicted.get(record.id)
        labels = [canonical_text(label) for label in guess.labels] if guess is not None else []
        chosen = labels[0] if len(labels) == 1 else NO_SINGLE_LABEL
        gold_units.add((record.id, truth))
        predicted_units.add((record.id, chosen))
        correct += chosen == truth
    return _set_score("tc", len(gold), gold_units, predicted_units, correct)


def _score_answers(gold: Sequence[Record], predicted: Mapping[str, Record]) -> ScoredSet:
    correct = 0
    wrong: Counter[str] = Counter()
    missed: Counter[str] = Counter()
    for record in gold:
        if record.answer is None:
            raise ScoringError(
                f"gold record {record.id!r} has no answer (an unlabelled file cannot be scored)"
            )
        guess = predicted.get(record.id)
        answer = guess.answer if guess is not None else None
        if answer is not None and answer.strip().casefold() == record.answer.strip().casefold():
            correct += 1
            continue
        wrong[f"answered {answer if answer is not None else '(nothing)'}"] += 1
        missed[f"gold {record.answer}"] += 1
    return ScoredSet(Score("qa", len(gold), correct=correct), wrong, missed)


def _score_texts(task: ScoreTask, gold: Sequence[Record], predicted: Mapping[str, Record]) -> ScoredSet:
    try:
        return ScoredSet(Score(task, len(gold), text=score_text_records(task, gold, predicted)))
    except GoldTextError as error:
        raise ScoringError(str(error)) from error
