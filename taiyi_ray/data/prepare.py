"""`taiyi-ray data prepare`: convert and instruction-format every dataset of a catalogue.

For each dataset: convert (bad records fail the run or go to `rejects/NAME.rejects.jsonl`), drop
(counted) or refuse evaluation items (`taiyi_ray.data.decontam`), cap at `max_samples` after a seeded
shuffle, build the instruction samples, and write them to `{output_dir}/stage{1,2}/NAME.jsonl`.
Stage-2 training re-uses the stage-1 files too; `PrepareResult.sample_files` lists the files per stage
set. Datasets are independent, so a large catalogue (at least `DataConfig.parallel_min_bytes` of source
files) is prepared with one Ray Data task per dataset; a small one (the demo) runs in this process.
"""

from __future__ import annotations

import logging
import random
import statistics
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields, replace
from typing import IO, Any

from taiyi_ray.config.data import Catalogue, DataConfig, DatasetEntry
from taiyi_ray.config.platform import StorageConfig
from taiyi_ray.data.catalogue import load_catalogue
from taiyi_ray.data.convert import iter_records, reject_line
from taiyi_ray.data.decontam import EvalIndex, build_eval_index
from taiyi_ray.data.formats import BadRecord
from taiyi_ray.data.instruct import build_samples_counted
from taiyi_ray.data.schema import Record
from taiyi_ray.storage import Storage, join

log = logging.getLogger(__name__)

STAGE_SETS = {1: "stage1", 2: "stage2"}
REPORT_FILE = "prepare_report.json"


class PrepareError(ValueError):
    """A dataset could not be prepared: a bad record in fail mode, or an evaluation item in refuse mode."""


@dataclass
class DatasetReport:
    """One row of the final table. Character lengths are of whole samples (prompt + answer)."""

    dataset: str
    stage: int
    task: str
    records: int = 0
    rejects: int = 0
    decontaminated: int = 0
    capped: int = 0
    samples: int = 0
    windowed: int = 0
    truncated: int = 0
    dropped_relations: int = 0
    dropped_events: int = 0
    unlabelled: int = 0
    chars_mean: float = 0.0
    chars_p50: float = 0.0
    chars_p95: float = 0.0
    chars_max: int = 0
    sample_file: str | None = None
    rejects_file: str | None = None
    decontamination_examples: list[str] = field(default_factory=list)


@dataclass
class PrepareResult:
    """What `prepare_samples` wrote: sample files per stage set, a report per dataset, and totals."""

    output_dir: str
    sample_files: dict[str, list[str]]
    datasets: list[DatasetReport]
    totals: DatasetReport
    parallel: bool = False

    def table(self) -> str:
        """The per-dataset table as aligned text (what `data prepare` prints)."""
        columns = (
            "dataset",
            "stage",
            "records",
            "rejects",
            "decontaminated",
            "capped",
            "samples",
            "windowed",
            "truncated",
        )
        reports = [*self.datasets, self.totals]
        rows = [
            [*(str(getattr(report, column)) for column in columns), *_length_cells(report)]
            for report in reports
        ]
        rows[-1][1] = "all"  # the totals row spans both stages
        header = [*columns, "chars mean", "chars p95", "chars max"]
        widths = [max(len(header[index]), *(len(row[index]) for row in rows)) for index in range(len(header))]
        lines = ["  ".join(name.ljust(width) for name, width in zip(header, widths, strict=True))]
        lines += [
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows
        ]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "output_dir": self.output_dir,
            "sample_files": self.sample_files,
            "datasets": [asdict(report) for report in self.datasets],
            "totals": asdict(self.totals),
            "parallel": self.parallel,
        }


def _length_cells(report: DatasetReport) -> list[str]:
    return [f"{report.chars_mean:.0f}", f"{report.chars_p95:.0f}", str(report.chars_max)]


def prepare_samples(
    catalogue: Catalogue, config: DataConfig, storage: Storage, output_dir: str, progress: bool = False
) -> PrepareResult:
    """Prepare every dataset of `catalogue` into InstructionSample JSONL files under `output_dir`."""
    index = _eval_index(config, storage)
    parallel = len(catalogue.datasets) > 1 and _source_bytes(catalogue, storage) >= config.parallel_min_bytes
    if parallel:
        reports = _prepare_with_ray(catalogue.datasets, config, storage.config, output_dir, index)
    else:
        reports = [
            prepare_dataset(entry, config, storage, output_dir, index)
            for entry in _progress(catalogue.datasets, progress)
        ]
    sample_files: dict[str, list[str]] = {name: [] for name in STAGE_SETS.values()}
    for report in reports:
        if report.sample_file:
            sample_files[STAGE_SETS[report.stage]].append(report.sample_file)
    result = PrepareResult(output_dir, sample_files, reports, _totals(reports), parallel)
    storage.write_json(join(output_dir, REPORT_FILE), result.to_json())
    return result


def _eval_index(config: DataConfig, storage: Storage) -> EvalIndex | None:
    if config.decontaminate_against is None:
        return None
    return build_eval_index(load_catalogue(config.decontaminate_against), storage)


def _source_bytes(catalogue: Catalogue, storage: Storage) -> int:
    total = 0
    for entry in catalogue.datasets:
        fs, path = storage.fsspec(entry.uri)
        total += int(fs.size(path) or 0) if fs.exists(path) else 0
    return total


def _progress(entries: list[DatasetEntry], progress: bool) -> Iterable[DatasetEntry]:
    if not progress:
        return entries
    from tqdm import tqdm

    return tqdm(entries, desc="prepare", unit="dataset")


def prepare_dataset(
    entry: DatasetEntry, config: DataConfig, storage: Storage, output_dir: str, index: EvalIndex | None
) -> DatasetReport:
    """Convert, decontaminate, cap and instruction-format one dataset; returns its table row."""
    report = DatasetReport(dataset=entry.name, stage=entry.stage, task=entry.task)
    rejects_uri = join(output_dir, "rejects", f"{entry.name}.rejects.jsonl")
    storage.remove(rejects_uri)
    rejects_file: IO[str] | None = None
    try:
        kept: list[Record] = []
        for item in iter_records(entry, storage):
            if isinstance(item, BadRecord):
                if config.on_error == "fail":
                    raise PrepareError(
                        f"dataset {entry.name}: {item.describe()} (set data.on_error=quarantine to set it aside)"
                    )
                rejects_file = rejects_file or storage.open(rejects_uri, "w", encoding="utf-8")
                rejects_file.write(reject_line(item))
                report.rejects += 1
                continue
            report.records += 1
            if _contaminated(item, entry, config, index, report):
                continue
            kept.append(item)
    finally:
        if rejects_file is not None:
            rejects_file.close()
            report.rejects_file = rejects_uri
    kept = _cap(kept, entry, config.template_seed, report)
    report.sample_file = join(output_dir, STAGE_SETS[entry.stage], f"{entry.name}.jsonl")
    _write_samples(kept, entry, config.template_seed, storage, report)
    if report.unlabelled:
        log.warning(
            "%s: %d records have no gold answer or label and made no sample", entry.name, report.unlabelled
        )
    log.info("prepared %s: %d records -> %d samples", entry.name, report.records, report.samples)
    return report


def _contaminated(
    record: Record, entry: DatasetEntry, config: DataConfig, index: EvalIndex | None, report: DatasetReport
) -> bool:
    reason = index.match(record) if index is not None else None
    if reason is None:
        return False
    if config.decontamination == "refuse":
        raise PrepareError(
            f"dataset {entry.name}: record {record.id} is an evaluation item ({reason}); remove it from {entry.uri} "
            "or set data.decontamination=remove"
        )
    report.decontaminated += 1
    if len(report.decontamination_examples) < 5:
        report.decontamination_examples.append(f"{record.id}: {reason}")
    return True


def _cap(records: list[Record], entry: DatasetEntry, seed: int, report: DatasetReport) -> list[Record]:
    """At most `max_samples` records, chosen by a shuffle seeded with (seed, dataset name)."""
    if entry.max_samples is None or len(records) <= entry.max_samples:
        return records
    chosen = list(records)
    random.Random(f"{seed}:{entry.name}").shuffle(chosen)
    report.capped = len(records) - entry.max_samples
    return chosen[: entry.max_samples]


def _write_samples(
    records: list[Record], entry: DatasetEntry, seed: int, storage: Storage, report: DatasetReport
) -> None:
    lengths: list[int] = []
    with storage.open(str(report.sample_file), "w", encoding="utf-8") as output:
        for record in records:
            samples, counts = build_samples_counted(record, entry, seed)
            report.windowed += int(counts.windowed)
            report.truncated += int(counts.truncated)
            report.dropped_relations += counts.dropped_relations
            report.dropped_events += counts.dropped_events
            report.unlabelled += int(counts.unlabelled)
            for sample in samples:
                output.write(sample.model_dump_json() + "\n")
                lengths.append(sum(len(message.content) for message in sample.messages))
    report.samples = len(lengths)
    if lengths:
        ordered = sorted(lengths)
        report.chars_mean = statistics.fmean(lengths)
        report.chars_p50 = float(ordered[len(ordered) // 2])
        report.chars_p95 = float(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))])
        report.chars_max = ordered[-1]


def _totals(reports: list[DatasetReport]) -> DatasetReport:
    total = DatasetReport(dataset="total", stage=0, task="")
    for name in (
        "records",
        "rejects",
        "decontaminated",
        "capped",
        "samples",
        "windowed",
        "truncated",
        "dropped_relations",
        "dropped_events",
        "unlabelled",
    ):
        setattr(total, name, sum(getattr(report, name) for report in reports))
    if total.samples:
        total.chars_mean = sum(report.chars_mean * report.samples for report in reports) / total.samples
        total.chars_p95 = max(report.chars_p95 for report in reports)
        total.chars_max = max(report.chars_max for report in reports)
    return total


def _prepare_with_ray(
    entries: list[DatasetEntry],
    config: DataConfig,
    storage_config: StorageConfig,
    output_dir: str,
    index: EvalIndex | None,
) -> list[DatasetReport]:
    """One Ray Data task per dataset (each streams its own file); rows come back as table rows."""
    import ray.data

    def prepare_row(row: dict[str, Any]) -> dict[str, Any]:
        entry = entries[int(row["position"])]
        report = prepare_dataset(entry, config, Storage(storage_config), output_dir, index)
        return {"position": row["position"], "report": asdict(report)}

    rows = [{"position": position} for position in range(len(entries))]
    dataset = ray.data.from_items(rows, override_num_blocks=len(rows)).map(prepare_row, num_cpus=1)
    results = sorted(dataset.take_all(), key=lambda row: int(row["position"]))
    return [_report_from(row["report"]) for row in results]


def _report_from(values: dict[str, Any]) -> DatasetReport:
    names = {item.name for item in fields(DatasetReport)}
    report = DatasetReport(**{key: value for key, value in values.items() if key in names})
    return replace(report, decontamination_examples=list(report.decontamination_examples or []))
