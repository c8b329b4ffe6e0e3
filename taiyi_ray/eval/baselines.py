"""Trivial baselines of a set, from its own gold: what a model that learned nothing would score.

A score means little without them: 35% on KUAKE-QIC is chance (its majority intent is about a third of
the dev set), 35% on BC5CDR-Chem is not. Each baseline is scored by the set's own scorer and metric on
predictions built from the gold, so it is exactly comparable with the model's score:

- `majority`: single-label classification and QA, the most frequent gold label / answer for every item;
  multi-label classification, each label predicted for every item when most items carry it (majority
  per label, usually "predict nothing"); NER and RE, predicting nothing (always 0).
- `random`: uniform chance over the answer space where it is closed and single-answer (1 / labels for
  single-label classification, 1 / options for QA, e.g. 33.3 for PubMedQA's yes/no/maybe); None for
  multi-label classification, NER and RE, where chance has no single value.
Scores are in percent, like `results.json`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from taiyi_ray.data.schema import Record
from taiyi_ray.eval.scoring import ScoreTask, score_records
from taiyi_ray.eval.sets import EvalItem


@dataclass(frozen=True)
class Baselines:
    """`results.json[SET].baselines`: percent, `random` None where chance has no single value."""

    majority: float
    random: float | None

    def to_json(self) -> dict[str, float | None]:
        return {"majority": self.majority, "random": self.random}


def trivial_baselines(task: ScoreTask, metric: str, items: Sequence[EvalItem]) -> Baselines | None:
    """The set's baselines; None for an empty set."""
    if not items:
        return None
    gold = [item.record for item in items]
    guesses = {record.id: _majority_guess(task, gold, record) for record in gold}
    value = score_records(task, gold, guesses).score.metric(metric)
    majority = round(100.0 * (value or 0.0), 2)
    return Baselines(majority, _random_chance(task, items))


def _majority_guess(task: ScoreTask, gold: Sequence[Record], record: Record) -> Record:
    empty = record.model_copy(update={"entities": [], "relations": [], "labels": [], "answer": None})
    if task == "tc":
        label = Counter(item.labels[0] for item in gold if item.labels).most_common(1)[0][0]
        return empty.model_copy(update={"labels": [label]})
    if task == "tc_multilabel":
        counts = Counter(label for item in gold for label in set(item.labels))
        common = sorted(label for label, count in counts.items() if 2 * count > len(gold))
        return empty.model_copy(update={"labels": common})
    if task == "qa":
        answer = Counter(item.answer for item in gold if item.answer is not None).most_common(1)[0][0]
        return empty.model_copy(update={"answer": answer})
    return empty  # ner, re: predicting nothing


def _random_chance(task: ScoreTask, items: Sequence[EvalItem]) -> float | None:
    """Mean over items of 1 / (size of the item's answer space); None where it is not one choice."""
    if task == "tc":
        sizes = [len(item.spec.label_names) if item.spec.label_names else 0 for item in items]
    elif task == "qa":
        sizes = [_options(item) for item in items]
    else:
        return None
    if not all(sizes):
        return None  # an open label space: chance is not defined
    return round(100.0 * sum(1 / size for size in sizes) / len(sizes), 2)


def _options(item: EvalItem) -> int:
    if item.record.choices:
        return len(item.record.choices)
    if item.spec.task == "qa_yesno":
        return 3  # PubMedQA: yes / no / maybe
    return 0
