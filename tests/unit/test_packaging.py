"""What `pip install` ships: every package of the tree, and jobs/ as `taiyi_ray.jobs` (so the installed
`taiyi-ray <job>` runs the recipe `ray job submit -- python jobs/<job>.py` runs)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from taiyi_ray.cli import job_names

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_every_package_of_the_tree_is_listed_for_installation() -> None:
    setuptools = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    package = REPO_ROOT / "taiyi_ray"
    on_disk = {  # every directory: a data directory's files ship only when it is listed too
        ".".join(directory.relative_to(REPO_ROOT).parts)
        for directory in [package, *package.rglob("*")]
        if directory.is_dir() and directory.name != "__pycache__"
    }
    assert set(setuptools["packages"]) == on_disk | {"taiyi_ray.jobs"}
    assert setuptools["package-dir"] == {"taiyi_ray.jobs": "jobs"}


def test_the_cli_runs_the_recipes_of_jobs() -> None:
    recipes = {path.stem for path in (REPO_ROOT / "jobs").glob("*.py") if path.stem != "__init__"}
    assert set(job_names()) == recipes
    assert recipes >= {"prepare_data", "stage1", "stage2", "export", "evaluate", "serve", "pipeline"}
