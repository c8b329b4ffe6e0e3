"""What a score is compared with: the trivial baselines of a set, and the published scores.

Published scores to put ours beside (../shared/reference/paper-scores.json), read by path at run time.

The file is never copied into the project: `eval.reference_scores` points at it, and without it the
report shows our columns only. Its shape: `columns` (Taiyi, ChatGPT-3.5, SOTA (discriminative),
Taiyi-2), `sets` [{name, task, metric, eval_unit, scores: one per column}] and `average` (per column,
over the paper's 13 sets).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from taiyi_ray.data.schema import Record
from taiyi_ray.eval.scoring import ScoreTask, score_records
from taiyi_ray.eval.sets import EvalItem
from taiyi_ray.storage import Storage


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
    nothing: dict[str, object] = {
        "entities": [], "relations": [], "events": [], "labels": [], "answer": None, "turns": [],
    }  # fmt: skip
    empty = record.model_copy(update=nothing)
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
    return empty  # ner, re, ee: predicting nothing


def _random_chance(task: ScoreTask, items: Sequence[EvalItem]) -> float | None:
    """Mean over items of 1 / (size of the item's answer space); None where it is not one choice."""
    if task == "tc":
        sizes = [len(item.space.label_names) if item.space.label_names else 0 for item in items]
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
    if item.space.task == "qa_yesno":
        return 3  # PubMedQA: yes / no / maybe
    return 0


REPORT_COLUMNS = ("Taiyi", "ChatGPT-3.5", "SOTA (discriminative)")
"""The published columns the report shows beside ours (Taiyi-2 is a later model, left out)."""


@dataclass(frozen=True)
class ReferenceScores:
    """Published percent scores: set name -> column -> score, and the paper's own averages."""

    columns: tuple[str, ...]
    by_set: dict[str, dict[str, float]]
    eval_units: dict[str, str]
    published_average: dict[str, float]

    @property
    def set_names(self) -> list[str]:
        return list(self.by_set)


def load_reference(storage: Storage, location: str) -> ReferenceScores:
    """Read a paper-scores.json file; errors name the file and the field that is off."""
    value = storage.read_json(location)
    try:
        columns = tuple(str(column) for column in value["columns"])
        by_set: dict[str, dict[str, float]] = {}
        units: dict[str, str] = {}
        for index, item in enumerate(value["sets"]):
            scores = item["scores"]
            if len(scores) != len(columns):
                raise ValueError(
                    f"sets[{index}].scores has {len(scores)} values, expected {len(columns)} (columns)"
                )
            by_set[str(item["name"])] = {
                column: float(score) for column, score in zip(columns, scores, strict=True)
            }
            units[str(item["name"])] = str(item.get("eval_unit", ""))
        average = {
            column: float(score) for column, score in zip(columns, value.get("average", []), strict=False)
        }
    except (KeyError, TypeError) as error:
        raise ValueError(
            f"{location}: expected columns, sets[].name/scores and average; missing {error}"
        ) from None
    except ValueError as error:
        raise ValueError(f"{location}: {error}") from None
    missing = [column for column in REPORT_COLUMNS if column not in columns]
    if missing:
        raise ValueError(f"{location}: columns {list(columns)} lack {missing}, which the report shows")
    return ReferenceScores(columns, by_set, units, average)
