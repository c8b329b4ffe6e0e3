"""Shared by the benchmarks: the instruction samples of the training files listed in the stage
catalogue (configs/catalogues/shared-train.yaml over ../shared/data), prepared once per call."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from taiyi_ray.config.data import DataConfig
from taiyi_ray.data.catalogue import load_catalogue
from taiyi_ray.data.prepare import prepare_samples
from taiyi_ray.storage import Storage

REPO_ROOT = Path(__file__).resolve().parent.parent
CATALOGUE = REPO_ROOT / "configs" / "catalogues" / "shared-train.yaml"
QWEN2_TOKENIZER = Path(os.environ.get("TAIYI_SHARED", REPO_ROOT.parent / "shared")) / "tokenizers" / "qwen2"


def training_sample_files(output_dir: str | None = None) -> list[str]:
    """Prepare (convert + decontaminate + instruct) the shared training catalogue; returns JSONL files."""
    os.chdir(REPO_ROOT)  # catalogue paths are relative to the repository root
    output_dir = output_dir or tempfile.mkdtemp(prefix="taiyi-bench-samples-")
    config = DataConfig(
        catalogue=str(CATALOGUE), decontaminate_against=str(REPO_ROOT / "configs" / "eval-13.yaml")
    )
    result = prepare_samples(load_catalogue(str(CATALOGUE)), config, Storage(), output_dir)
    return [path for files in result.sample_files.values() for path in files]


def read_samples(files: list[str]) -> list[dict]:
    samples = []
    for path in files:
        with open(path, encoding="utf-8") as handle:
            samples += [json.loads(line) for line in handle if line.strip()]
    return samples
