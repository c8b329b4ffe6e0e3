"""Dataset catalogues (`configs/catalogues/*.yaml`, `configs/eval-13.yaml`): load and check them against
what the data layer can do.

Beyond the pydantic schema (`taiyi_ray.config.data.Catalogue`), a catalogue is checked against what the
data layer can do: the format must be registered, the task one the format feeds, a BIO NER entry must
name its entity types, and a vocabulary the entry names must fit the format's. Errors name the file,
the line of the dataset entry and the field, and say what was expected.

`coverage` asks the same question of an inventory (`configs/catalogues/taiyi-140.yaml`, Taiyi's 140
datasets): which of its datasets taiyi-ray can take end to end. It is computed from the registries, never
declared: a dataset is covered when its entry names a registered converter that feeds its task, and
that task has prompts (templates; dialogue brings its own turns), an answer parser and a scorer.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from taiyi_ray.config.data import Catalogue, DatasetEntry, Inventory, InventoryEntry, Task
from taiyi_ray.config.loader import ConfigError, read_yaml, validate_file
from taiyi_ray.data.answers import DEFAULT_ENTITY_TYPES, PARSED_TASKS
from taiyi_ray.data.formats import FORMAT_TASKS, FORMATS
from taiyi_ray.data.instruct import TEMPLATE_TASKS

DEFAULT_INVENTORY = "configs/catalogues/taiyi-140.yaml"


def load_catalogue(path: str, overrides: tuple[str, ...] = ()) -> Catalogue:
    """Read and validate a catalogue YAML file (with `${VAR:-default}` expansion and `--set` overrides)."""
    catalogue = validate_file(Catalogue, path, overrides)
    _, lines = read_yaml(path)
    problems = []
    for index, entry in enumerate(catalogue.datasets):
        for field, message in entry_problems(entry):
            line = lines.get(("datasets", str(index), field)) or lines.get(("datasets", str(index)))
            where = f"{path}:{line}" if line else str(path)
            problems.append(f"{where}: datasets.{index}.{field} ({entry.name}): {message}")
    if problems:
        raise ConfigError("\n".join(problems))
    return catalogue


def entry_problems(entry: DatasetEntry) -> list[tuple[str, str]]:
    """(field, message) for each way `entry` does not fit the data layer; empty when it fits."""
    if entry.format not in FORMATS:
        return [("format", f"unknown format {entry.format!r}: expected one of {sorted(FORMATS)}")]
    problems = []
    tasks = FORMAT_TASKS[entry.format]
    if entry.task not in tasks:
        problems.append(("task", f"format {entry.format} feeds tasks {list(tasks)}, got {entry.task!r}"))
    if entry.task == "ner" and not entry.entity_types and entry.format not in DEFAULT_ENTITY_TYPES:
        problems.append(
            ("entity_types", f"a {entry.format} NER entry must list its entity types, e.g. [Chemical]")
        )
    defaults = DEFAULT_ENTITY_TYPES.get(entry.format)
    if entry.entity_types and defaults is not None:
        unknown = [name for name in entry.entity_types if name not in defaults]
        if unknown:
            problems.append(
                ("entity_types", f"types {unknown} are not {entry.format} types {list(defaults)}")
            )
    if entry.entity_types is not None and entry.task not in ("ner", "re"):
        problems.append(
            ("entity_types", f"only NER/RE entries take entity_types, this one is {entry.task!r}")
        )
    if entry.event_types is not None and entry.task != "ee":
        problems.append(("event_types", f"only EE entries take event_types, this one is {entry.task!r}"))
    return problems


class FamilyCoverage(BaseModel):
    """Datasets of one task family, and how many of them are covered."""

    model_config = ConfigDict(frozen=True)

    datasets: int
    covered: int


class Uncovered(BaseModel):
    """A dataset that is not covered, and the first missing piece."""

    model_config = ConfigDict(frozen=True)

    language: str
    number: int
    name: str
    reason: str


class CoverageReport(BaseModel):
    """What `taiyi-ray data coverage --json` prints (its last line): totals and counts per family."""

    model_config = ConfigDict(frozen=True)

    datasets: int
    covered: int
    by_family: dict[str, FamilyCoverage]
    uncovered: list[Uncovered]

    def summary(self) -> dict[str, object]:
        """The contract's JSON line: datasets, covered and by_family (the uncovered list is printed above)."""
        return self.model_dump(include={"datasets", "covered", "by_family"})


def inventory_path(path: str | None) -> str:
    """The inventory to read: `path`, else the default under the working directory, else the repository's."""
    if path:
        return path
    if Path(DEFAULT_INVENTORY).is_file():
        return DEFAULT_INVENTORY
    return str(Path(__file__).resolve().parents[2] / DEFAULT_INVENTORY)


def coverage(inventory: Inventory, scored_tasks: Collection[str]) -> CoverageReport:
    """Which datasets of `inventory` taiyi-ray reads, prompts, parses and scores (see the module docstring).

    `scored_tasks`: the tasks the evaluation layer scores (`taiyi_ray.eval.scoring.SCORE_TASK_OF`),
    handed in by the caller because the data layer does not import the evaluation layer."""
    totals: Counter[str] = Counter()
    covered: Counter[str] = Counter()
    uncovered = []
    for entry in inventory.datasets:
        totals[entry.family] += 1
        reason = missing_piece(entry, scored_tasks)
        if reason is None:
            covered[entry.family] += 1
        else:
            uncovered.append(
                Uncovered(language=entry.language, number=entry.number, name=entry.name, reason=reason)
            )
    by_family = {
        family: FamilyCoverage(datasets=totals[family], covered=covered[family]) for family in sorted(totals)
    }
    return CoverageReport(
        datasets=len(inventory.datasets),
        covered=sum(covered.values()),
        by_family=by_family,
        uncovered=uncovered,
    )


def missing_piece(entry: InventoryEntry, scored_tasks: Collection[str]) -> str | None:
    """Why `entry` is not covered (the first missing piece), or None when it is."""
    if entry.format is None:
        return "no converter reads its distribution" + (f" ({entry.note})" if entry.note else "")
    if entry.format not in FORMATS:
        return f"format {entry.format!r} is not a registered converter"
    if entry.task not in FORMAT_TASKS[entry.format]:
        return f"format {entry.format} feeds tasks {list(FORMAT_TASKS[entry.format])}, not {entry.task!r}"
    if not has_prompts(entry.task):
        return f"task {entry.task!r} has no templates"
    if entry.task not in PARSED_TASKS:
        return f"task {entry.task!r} has no answer parser"
    if entry.task not in scored_tasks:
        return f"task {entry.task!r} has no scorer"
    return None


def has_prompts(task: Task) -> bool:
    """Templates build the task's prompts; a dialogue record's own user turns are its prompts."""
    return task in TEMPLATE_TASKS or task == "dialogue"


def load_inventory(path: str | None = None) -> Inventory:
    """Read and validate an inventory YAML (default `configs/catalogues/taiyi-140.yaml`)."""
    return validate_file(Inventory, inventory_path(path))
