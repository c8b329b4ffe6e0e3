"""Published scores to put ours beside (../shared/reference/paper-scores.json), read by path at run time.

The file is never copied into the project: `eval.reference_scores` points at it, and without it the
report shows our columns only. Its shape: `columns` (Taiyi, ChatGPT-3.5, SOTA (discriminative),
Taiyi-2), `sets` [{name, task, metric, eval_unit, scores: one per column}] and `average` (per column,
over the paper's 13 sets).
"""

from __future__ import annotations

from dataclasses import dataclass

from taiyi_ray.storage import Storage

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
