"""Every YAML file in configs/ validates against the model it is for (job config, catalogue, Serve)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from taiyi_ray.config import JOB_CONFIGS, load_job_config
from taiyi_ray.config.jobs import KNOWN_SECTIONS

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
FILES = sorted(CONFIGS.rglob("*.yaml"))


def test_there_are_configs() -> None:
    assert CONFIGS / "demo.yaml" in FILES


@pytest.mark.parametrize("path", FILES, ids=lambda path: str(path.relative_to(CONFIGS)))
def test_config_file_validates(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(CONFIGS.parent)
    data = yaml.safe_load(path.read_text()) or {}
    if data.get("datasets") and "number" in data["datasets"][0]:  # an inventory (taiyi-140), not a catalogue
        from taiyi_ray.data.catalogue import load_inventory

        assert load_inventory(str(path)).datasets
        return
    if "datasets" in data:
        from taiyi_ray.data.catalogue import load_catalogue

        catalogue = load_catalogue(str(path))
        assert catalogue.datasets
        return
    if "applications" in data:
        from ray.serve.schema import ServeDeploySchema

        ServeDeploySchema.model_validate(data)
        return
    assert set(data) <= KNOWN_SECTIONS, f"{path}: unknown sections {set(data) - KNOWN_SECTIONS}"
    checked = 0
    for _name, model in JOB_CONFIGS.items():
        required = {field for field, info in model.model_fields.items() if info.is_required()}
        if required <= set(data):
            load_job_config(model, path)
            checked += 1
    assert checked, f"{path}: holds no complete section set of any job"
