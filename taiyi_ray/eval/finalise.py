"""One set from raw outputs to a result: parse, write prediction and gold files, score.

Scoring reads the same records that go into `predictions/SET.jsonl` and `gold/SET.jsonl`, so
`taiyi-ray eval score --gold RUN/gold/SET.jsonl --pred RUN/predictions/SET.jsonl` reproduces the
job's number. A finished set's result is saved as `sets/SET.json` with a fingerprint of what produced
it (answer source, settings, items); a rerun in the same run directory skips a set whose fingerprint
still matches.

Gold and prediction files: unified JSONL records, prediction lines carrying a few extra fields.

A prediction line is a unified `Record` (the parsed prediction, with the gold record's id, document
and passage) plus what produced it: `prompt`, `raw_output`, `parsed` (False when no answer could be
read), `problems` (the parser's notes), `gold_answer` (the serialised gold), `finish_reason` and
`corrupted` (oracle noise). `read_predictions` drops those extras, so `taiyi-ray eval score --pred`
reads an evaluation run's `predictions/SET.jsonl` as it reads any unified JSONL file.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from pydantic import ValidationError

from taiyi_ray.data.answers import parse_with, prediction_to_record
from taiyi_ray.data.schema import Record
from taiyi_ray.eval.baselines import Baselines, trivial_baselines
from taiyi_ray.eval.generation_types import RawOutput
from taiyi_ray.eval.scoring import ScoredSet, ScoreTask, score_records
from taiyi_ray.eval.sets import EvalItem, EvalSet
from taiyi_ray.storage import Storage, join

log = logging.getLogger(__name__)

TOP_ERRORS = 5
UNPARSED_EXAMPLES = 3


@dataclass(frozen=True)
class Timing:
    """How the set's outputs were obtained: generated now, taken from the cache, and how fast."""

    generated: int = 0
    cached: int = 0
    generate_s: float = 0.0
    output_tokens: int = 0

    @property
    def items_per_s(self) -> float | None:
        return round(self.generated / self.generate_s, 3) if self.generated and self.generate_s > 0 else None


@dataclass(frozen=True)
class SetResult:
    """A set's line of results.json plus what the report's error summary shows."""

    name: str
    task: str
    metric: str
    score: float | None
    n: int
    unparsed: int
    missing: bool
    precision: float | None = None
    recall: float | None = None
    f1: float | None = None
    accuracy: float | None = None
    source_items: int = 0
    timing: Timing = field(default_factory=Timing)
    false_positives: list[tuple[str, int]] = field(default_factory=list)
    false_negatives: list[tuple[str, int]] = field(default_factory=list)
    unparsed_examples: list[str] = field(default_factory=list)
    fingerprint: str = ""
    baselines: Baselines | None = None

    def results_entry(self) -> dict[str, Any]:
        """`results.json[SET]`: the DESIGN.md keys first, then the extra detail."""
        return {
            "metric": self.metric,
            "score": self.score,
            "n": self.n,
            "unparsed": self.unparsed,
            "missing": self.missing,
            "task": self.task,
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "accuracy": self.accuracy,
            "source_items": self.source_items,
            "generated": self.timing.generated,
            "cached": self.timing.cached,
            "items_per_s": self.timing.items_per_s,
            "baselines": None if self.baselines is None else self.baselines.to_json(),
        }

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> SetResult:
        value = dict(value)
        value["timing"] = Timing(**value.get("timing", {}))
        if value.get("baselines") is not None:
            value["baselines"] = Baselines(**value["baselines"])
        for name in ("false_positives", "false_negatives"):
            value[name] = [(str(unit), int(count)) for unit, count in value.get(name, [])]
        return cls(**value)


def missing_result(eval_set: EvalSet) -> SetResult:
    return SetResult(eval_set.name, eval_set.entry.task, eval_set.metric, None, 0, 0, missing=True)


def set_file(run_dir: str, folder: str, set_name: str, suffix: str) -> str:
    return join(run_dir, folder, f"{set_name}{suffix}")


def finalise_set(
    eval_set: EvalSet,
    outputs: Mapping[str, RawOutput],
    storage: Storage,
    run_dir: str,
    timing: Timing,
    fingerprint: str,
) -> SetResult:
    """Parse every item's output, write predictions/gold files and sets/SET.json, return the result."""
    lines, scored = parse_and_score(eval_set.score_task, eval_set.items, outputs)
    gold = [item.record for item in eval_set.items]
    predictions = "".join(line.to_json() for line in lines)
    storage.write_text(set_file(run_dir, "predictions", eval_set.name, ".jsonl"), predictions)
    storage.write_text(set_file(run_dir, "gold", eval_set.name, ".jsonl"), "".join(map(record_json, gold)))
    result = _result(eval_set, scored, lines, timing, fingerprint)
    storage.write_json(set_file(run_dir, "sets", eval_set.name, ".json"), result.to_json())
    log.info(
        "%s: %s %.1f over %d items (%d unparsed)", eval_set.name, result.metric, result.score or 0.0, result.n,
        result.unparsed,
    )  # fmt: skip
    return result


def parse_and_score(
    task: ScoreTask, items: Sequence[EvalItem], outputs: Mapping[str, RawOutput]
) -> tuple[list[PredictionLine], ScoredSet]:
    """Parse each item's output (`outputs` by record id) and score the parsed records against the gold:
    the one path from raw text to a score, for the evaluation job and validation during training."""
    lines = [_prediction_line(item, outputs[item.record.id]) for item in items]
    gold = [item.record for item in items]
    return lines, score_records(task, gold, {line.record.id: line.record for line in lines})


def _prediction_line(item: EvalItem, output: RawOutput) -> PredictionLine:
    parsed = parse_with(output.text, item.space)
    return PredictionLine(
        record=prediction_to_record(parsed.prediction, item.record),
        prompt=item.prompt,
        raw_output=output.text,
        parsed=parsed.ok,
        gold_answer=item.gold_answer,
        problems=parsed.problems,
        finish_reason=output.finish_reason,
        corrupted=output.corrupted,
    )


def _result(
    eval_set: EvalSet, scored: ScoredSet, lines: list[PredictionLine], timing: Timing, fingerprint: str
) -> SetResult:
    score = scored.score
    value = score.metric(eval_set.metric)
    unparsed = [line for line in lines if not line.parsed]
    return SetResult(
        name=eval_set.name,
        task=eval_set.entry.task,
        metric=eval_set.metric,
        score=None if value is None else 100.0 * value,
        n=score.n,
        unparsed=len(unparsed),
        missing=False,
        precision=score.precision,
        recall=score.recall,
        f1=score.f1,
        accuracy=score.accuracy,
        source_items=eval_set.source_items,
        timing=timing,
        false_positives=scored.false_positive_units.most_common(TOP_ERRORS),
        false_negatives=scored.false_negative_units.most_common(TOP_ERRORS),
        unparsed_examples=[line.raw_output[:200] for line in unparsed[:UNPARSED_EXAMPLES]],
        fingerprint=fingerprint,
        baselines=trivial_baselines(eval_set.score_task, eval_set.metric, eval_set.items),
    )


def load_finished(storage: Storage, run_dir: str, set_name: str, fingerprint: str) -> SetResult | None:
    """A set's saved result when it was produced the same way (same fingerprint), else None."""
    location = set_file(run_dir, "sets", set_name, ".json")
    if not storage.exists(location):
        return None
    try:
        result = SetResult.from_json(storage.read_json(location))
    except (TypeError, ValueError) as error:
        log.warning("%s: unreadable (%s); the set is evaluated again", location, error)
        return None
    return result if result.fingerprint == fingerprint else None


EXTRA_FIELDS = ("prompt", "raw_output", "parsed", "problems", "gold_answer", "finish_reason", "corrupted")


class RecordFileError(ValueError):
    """A gold or prediction file line is not a valid record; the message names file, line and field."""


@dataclass(frozen=True)
class PredictionLine:
    """One line of `predictions/SET.jsonl`."""

    record: Record
    prompt: str
    raw_output: str
    parsed: bool
    gold_answer: str
    problems: tuple[str, ...] = ()
    finish_reason: str | None = None
    corrupted: bool = False

    def to_json(self) -> str:
        """The JSONL line: the record's fields (None left out) followed by the extra fields."""
        value = self.record.model_dump(mode="json", exclude_none=True)
        value.update(
            prompt=self.prompt,
            raw_output=self.raw_output,
            parsed=self.parsed,
            problems=list(self.problems),
            gold_answer=self.gold_answer,
            finish_reason=self.finish_reason,
            corrupted=self.corrupted,
        )
        return json.dumps(value, ensure_ascii=False) + "\n"


def _json_lines(uri: str, storage: Storage) -> Iterator[tuple[int, dict[str, Any]]]:
    with storage.open(uri, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            text = raw.decode("utf-8-sig" if number == 1 else "utf-8").strip()
            if not text:
                continue
            try:
                value = json.loads(text)
            except json.JSONDecodeError as error:
                raise RecordFileError(
                    f"{uri}:{number}: not valid JSON ({error.msg} at column {error.colno})"
                ) from None
            if not isinstance(value, dict):
                raise RecordFileError(
                    f"{uri}:{number}: expected a JSON object (a record), got {type(value).__name__}"
                )
            yield number, value


def _record(uri: str, number: int, value: dict[str, Any]) -> Record:
    try:
        return Record.model_validate(value)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "record"
        message = str(first["msg"]).removeprefix("Value error, ")
        raise RecordFileError(
            f"{uri}:{number}: field {where}: {message} (got {str(first.get('input'))[:80]!r}); "
            "expected a unified record (taiyi_ray.data.schema.Record)"
        ) from None


def read_gold(uri: str, storage: Storage) -> list[Record]:
    """Every record of a unified JSONL file (a prediction file's extra fields are ignored here too)."""
    records = []
    for number, value in _json_lines(uri, storage):
        for name in EXTRA_FIELDS:
            value.pop(name, None)
        records.append(_record(uri, number, value))
    return records


def read_predictions(uri: str, storage: Storage) -> dict[str, Record]:
    """Predicted records by id; an id given twice is an error naming both lines."""
    found: dict[str, Record] = {}
    lines: dict[str, int] = {}
    for number, value in _json_lines(uri, storage):
        for name in EXTRA_FIELDS:
            value.pop(name, None)
        record = _record(uri, number, value)
        if record.id in found:
            raise RecordFileError(
                f"{uri}:{number}: record id {record.id!r} was already given on line {lines[record.id]}; "
                "expected one prediction per id"
            )
        found[record.id] = record
        lines[record.id] = number
    return found


def record_json(record: Record) -> str:
    """A record as one JSONL line (None-valued fields left out), as `taiyi-ray data convert` writes it."""
    return json.dumps(record.model_dump(mode="json", exclude_none=True), ensure_ascii=False) + "\n"
