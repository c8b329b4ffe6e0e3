"""The run's report: results.json, report.md, scores.png and summary.json (DESIGN.md, Evaluation).

results.json is keyed by set name (the catalogue's names are the paper's): `{SET: {"metric", "score"
(percent), "n", "unparsed", "missing", ...detail}}`. report.md puts ours beside Taiyi, ChatGPT-3.5 and
SOTA, averages over the sets scored on both sides (and says how many), shows speed, and summarises
each set's most frequent errors. Sets the paper has that this run did not evaluate are listed as
"not evaluated" so a partial catalogue cannot pass for the full table.

scores.png: a grouped bar chart of ours beside the published columns, one group per set.

Drawn on a `Figure` with the Agg canvas directly (no pyplot): no global figure state, no display
needed, safe in Ray workers and tests. A missing or unscored set keeps its place with the word
"missing" where our bar would be.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from taiyi_ray.config.base import StrictModel
from taiyi_ray.eval.baselines import REPORT_COLUMNS, ReferenceScores
from taiyi_ray.eval.finalise import SetResult
from taiyi_ray.storage import Storage, join

SHORT_NAMES = {"SOTA (discriminative)": "SOTA"}


@dataclass(frozen=True)
class RunInfo:
    """What the report's header says about the run."""

    answers: str
    catalogue: str
    limit: int | None
    generation: str
    wall_s: float | None = None


class EvalSummary(StrictModel):
    """An evaluation run's `summary.json` (scores in percent, None where a set could not be scored)."""

    average: float | None  # ours, over every scored set
    sets_scored: int
    sets_compared: list[str] | None  # the scored sets the published scores also have (None: no reference)
    average_compared: dict[str, float | None] | None  # ours and each published column over those sets
    scores: dict[str, float | None]
    missing: list[str]
    unparsed: int
    items: int


def summarise(results: Sequence[SetResult], reference: ReferenceScores | None) -> EvalSummary:
    """Ours over every scored set; and ours and each published column over the sets both sides have."""
    scored = {result.name: result.score for result in results if result.score is not None}
    shared, compared = None, None
    if reference is not None:
        shared = [name for name in scored if name in reference.by_set]
        compared = {OURS: _mean([scored[name] for name in shared])}
        for column in REPORT_COLUMNS:
            compared[column] = _mean([reference.by_set[name][column] for name in shared])
    return EvalSummary(
        average=_mean(list(scored.values())),
        sets_scored=len(scored),
        sets_compared=shared,
        average_compared=compared,
        scores={result.name: result.score for result in results},
        missing=[result.name for result in results if result.missing],
        unparsed=sum(result.unparsed for result in results),
        items=sum(result.n for result in results),
    )


def _mean(values: Sequence[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return sum(present) / len(present) if present else None


def _cell(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def report_markdown(results: Sequence[SetResult], reference: ReferenceScores | None, info: RunInfo) -> str:
    lines = ["# Evaluation report", "", *_header(info), ""]
    columns = [SHORT_NAMES.get(column, column) for column in REPORT_COLUMNS] if reference else []
    lines.append(
        "| Set | Task | Metric | Ours | Majority | Random | "
        + "".join(f"{c} | " for c in columns)
        + "n | unparsed |"
    )
    lines.append("|---|---|---|---:|---:|---:|" + "---:|" * len(columns) + "---:|---:|")
    for result in results:
        ours = "missing" if result.missing else _cell(result.score)
        paper = reference.by_set.get(result.name, {}) if reference else {}
        published = (
            "".join(f"{_cell(paper.get(column))} | " for column in REPORT_COLUMNS) if reference else ""
        )
        n, unparsed = ("–", "–") if result.missing else (str(result.n), str(result.unparsed))
        baselines = result.baselines
        trivial = f"{_cell(baselines.majority)} | {_cell(baselines.random)}" if baselines else "– | –"
        lines.append(
            f"| {result.name} | {result.task} | {result.metric} | {ours} | {trivial} | {published}{n} | "
            f"{unparsed} |"
        )
    lines += _average_rows(results, reference, len(columns))
    lines += ["", *_notes(results, reference, info)]
    lines += ["", "## Speed", "", *_speed_table(results)]
    lines += ["", "## Errors (most frequent per set)", "", *_errors(results)]
    return "\n".join(lines) + "\n"


def _header(info: RunInfo) -> list[str]:
    rows = [
        f"- answers: {info.answers}",
        f"- catalogue: {info.catalogue}",
        f"- items per set: {'all' if info.limit is None else f'at most {info.limit}'}",
        f"- generation: {info.generation}",
    ]
    if info.wall_s is not None:
        rows.append(f"- wall time: {info.wall_s:.1f} s")
    return rows


def _average_rows(results: Sequence[SetResult], reference: ReferenceScores | None, width: int) -> list[str]:
    summary = summarise(results, reference)
    if reference is None or summary.average_compared is None or summary.sets_compared is None:
        return [f"| **Average** ({summary.sets_scored} sets) | | | {_cell(summary.average)} | | | | |"]
    compared = summary.average_compared
    cells = "".join(f"{_cell(compared[column])} | " for column in REPORT_COLUMNS)
    rows = [
        f"| **Average over the {len(summary.sets_compared)} sets on both sides** | | | "
        f"{_cell(compared[OURS])} | | | {cells}| |"
    ]
    published = "".join(f"{_cell(reference.published_average.get(column))} | " for column in REPORT_COLUMNS)
    rows.append(f"| Published average ({len(reference.by_set)} sets) | | | – | | | {published}| |")
    return rows


def _notes(results: Sequence[SetResult], reference: ReferenceScores | None, info: RunInfo) -> list[str]:
    notes = []
    if info.limit is not None:
        notes.append(
            f"Scores are over at most the first {info.limit} items of each set: not comparable with the "
            "paper's full-set numbers."
        )
    missing = [result.name for result in results if result.missing]
    if missing:
        notes.append(f"Missing (file absent, not scored): {', '.join(missing)}.")
    if reference is not None:
        evaluated = {result.name for result in results}
        absent = [name for name in reference.set_names if name not in evaluated]
        if absent:
            notes.append(f"Not evaluated in this run (not in its catalogue): {', '.join(absent)}.")
    notes.append(
        "Unparsed outputs count as wrong. NER/RE: micro-F1 over de-duplicated (document, type, text)."
    )
    notes.append(
        "Majority / Random: trivial baselines from each set's own gold, scored like ours (majority label "
        "or answer, majority per label for multi-label, nothing for NER/RE; uniform chance over the "
        "options where the answer is one choice)."
    )
    return notes


def _speed_table(results: Sequence[SetResult]) -> list[str]:
    if not any(result.timing.generated or result.timing.cached for result in results):
        return ["Nothing was generated (oracle answers, or every set kept from an earlier run)."]
    rows = ["| Set | generated | cached | items/s | output tokens |", "|---|---:|---:|---:|---:|"]
    for result in results:
        if result.missing:
            continue
        timing = result.timing
        speed = "–" if timing.items_per_s is None else f"{timing.items_per_s:.2f}"
        rows.append(
            f"| {result.name} | {timing.generated} | {timing.cached} | {speed} | {timing.output_tokens} |"
        )
    return rows


def _errors(results: Sequence[SetResult]) -> list[str]:
    rows: list[str] = []
    for result in results:
        if result.missing:
            continue
        rows.append(f"### {result.name}")
        rows.append("- false positives: " + _units(result.false_positives))
        rows.append("- false negatives: " + _units(result.false_negatives))
        if result.unparsed_examples:
            shown = "; ".join(repr(text[:80]) for text in result.unparsed_examples)
            rows.append(f"- unparsed ({result.unparsed}), e.g.: {shown}")
        rows.append("")
    return rows


def _units(units: Sequence[tuple[str, int]]) -> str:
    if not units:
        return "none"
    return ", ".join(f"`{unit[:60]}` ×{count}" for unit, count in units)


def write_report(
    storage: Storage,
    run_dir: str,
    results: Sequence[SetResult],
    reference: ReferenceScores | None,
    info: RunInfo,
) -> EvalSummary:
    """Write results.json, report.md, scores.png and summary.json; returns the summary."""
    storage.write_json(
        join(run_dir, "results.json"), {result.name: result.results_entry() for result in results}
    )
    storage.write_text(join(run_dir, "report.md"), report_markdown(results, reference, info))
    names = [result.name for result in results]
    bars: dict[str, dict[str, float | None]] = {
        OURS: {result.name: result.score for result in results},
        MAJORITY: {
            result.name: result.baselines.majority if result.baselines else None for result in results
        },
    }
    if reference is not None:
        for column in REPORT_COLUMNS:
            bars[SHORT_NAMES.get(column, column)] = {
                name: reference.by_set.get(name, {}).get(column) for name in names
            }
    title = f"{info.answers} on {info.catalogue}" + (
        "" if info.limit is None else f" (≤{info.limit} items/set)"
    )
    storage.write_bytes(join(run_dir, "scores.png"), scores_png(names, bars, title))
    summary = summarise(results, reference)
    storage.write_json(join(run_dir, "summary.json"), summary.model_dump(mode="json"))
    return summary


OURS = "ours"
MAJORITY = "majority baseline"
COLOURS = ("#1f77b4", "#c7c7c7", "#ff7f0e", "#2ca02c", "#7f7f7f", "#9467bd")


def scores_png(
    set_names: Sequence[str], columns: Mapping[str, Mapping[str, float | None]], title: str
) -> bytes:
    """PNG bytes: for each set a bar per column (`columns[column][set]`, percent; None = no bar)."""
    figure = Figure(figsize=(max(8.0, 1.1 * len(set_names) + 2), 5.0), dpi=110)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    width = 0.8 / max(1, len(columns))
    for offset, (column, values) in enumerate(columns.items()):
        positions = [index + (offset - (len(columns) - 1) / 2) * width for index in range(len(set_names))]
        heights = [values.get(name) for name in set_names]
        axes.bar(
            [p for p, h in zip(positions, heights, strict=True) if h is not None],
            [h for h in heights if h is not None],
            width=width,
            label=column,
            color=COLOURS[offset % len(COLOURS)],
        )
        if column == OURS:
            for position, height in zip(positions, heights, strict=True):
                if height is None:
                    axes.text(position, 2, "missing", rotation=90, ha="center", va="bottom", fontsize=7)
    axes.set_xticks(range(len(set_names)))
    axes.set_xticklabels(set_names, rotation=35, ha="right", fontsize=8)
    axes.set_ylim(0, 105)
    axes.set_ylabel("score (%)")
    axes.set_title(title, fontsize=10)
    axes.legend(fontsize=8, ncols=min(4, len(columns)))
    axes.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
