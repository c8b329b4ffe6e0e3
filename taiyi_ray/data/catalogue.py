"""Dataset catalogues (`configs/catalogues/*.yaml`, `configs/eval-13.yaml`): load and check them.

Beyond the pydantic schema (`taiyi_ray.config.data.Catalogue`), a catalogue is checked against what the
data layer can do: the format must be registered, the task one the format feeds, a BIO NER entry must
name its entity types, and a vocabulary the entry names must fit the format's. Errors name the file,
the line of the dataset entry and the field, and say what was expected.
"""

from __future__ import annotations

from taiyi_ray.config.data import Catalogue, DatasetEntry
from taiyi_ray.config.loader import ConfigError, read_yaml, validate_file
from taiyi_ray.data.answers import DEFAULT_ENTITY_TYPES
from taiyi_ray.data.formats import FORMAT_TASKS, FORMATS


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
    return problems
