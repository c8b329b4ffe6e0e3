"""Learning checks on real data: a model trained FROM SCRATCH on the 2 CPU cores learns real tasks.

A suite in which every model is random noise proves the plumbing only: a mismatch anywhere between
templates, loss masks, chat format, packing, training, export, decoding, parsing and scoring would leave it
green with every score at chance. Here configs/learning.yaml (a 4-layer, hidden-128 Qwen2, a BPE trained on
the corpus, full fine-tuning on 2 Ray Train workers) trains on KUAKE-QIC (Chinese query intent) and
BC5CDR-Chem (English chemical NER) train files of ../shared/data, validates during training, is exported
and evaluated by the evaluation job on held-out dev items. Each must clear a floor set from measured runs
(closing note of issue 14): classification its majority baseline plus a margin, NER an absolute F1.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from taiyi_ray.config import load_job_config
from taiyi_ray.config.jobs import DataJobConfig, EvalJobConfig, ExportJobConfig, Stage1JobConfig
from tests.integration.helpers import REPO_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CONFIG = REPO_ROOT / "configs" / "learning.yaml"
HELD_OUT_ITEMS = 300
# Floors from 4 measured runs (majority 34.33). On one 2-core machine, stage1.seed = model.init_seed = 0, 1, 2:
# KUAKE-QIC 72.0 / 70.3 / 69.3 micro-F1, BC5CDR-Chem 28.3 / 22.1 / 32.0. On another (same code, seed 0, the
# same data fingerprint): 53.7 / 34.0, identical on two runs there and at two commits. A run is deterministic
# on one machine, but CPU kernels round differently across machines and 988 steps from scratch amplify it.
# What falls short of the floors: the validations at steps 250 and 500 (KUAKE-QIC 34.3 and 25.0); calibration
# recipes on the first 200 dev items, 543 steps on 1,500 + 1,500 samples (27.5 / 2.5) and 765 steps on
# 6,931 + 3,000 samples (KUAKE-QIC 72.0, but 3.9).
# Then 5 epochs instead of 4 (1,235 steps): on an AMD EPYC (2 cores) 4 epochs left KUAKE-QIC at its majority
# class, 34.33 (BC5CDR-Chem 19.2); all 6,931 KUAKE-QIC queries over 4 epochs learned it (70.7) but not the
# NER (0.0); 5 epochs gave 64.3 / 31.2 (validation at steps 750 and 1,000: 59.0 / 7.6, 63.7 / 27.5).
KUAKE_MARGIN = 12.0  # percentage points above the majority baseline (lowest run: +19.3)
CHEM_F1_FLOOR = 15.0  # micro-F1, percent; predicting nothing scores 0 (lowest run: 22.1)


def write_held_out(shared: Path, folder: Path) -> Path:
    """The first HELD_OUT_ITEMS items of each dev file, and a catalogue naming them.

    Validation draws `items_per_set` items with the stage's seed; with at least as many as the set has it
    takes them all, in order — the same items as the evaluation job with no limit, so the two must agree."""
    folder.mkdir(parents=True, exist_ok=True)
    kuake = json.loads((shared / "data" / "KUAKE-QIC" / "KUAKE-QIC_dev.json").read_text(encoding="utf-8"))
    (folder / "kuake.json").write_text(
        json.dumps(kuake[:HELD_OUT_ITEMS], ensure_ascii=False), encoding="utf-8"
    )
    sentences = (shared / "data" / "BC5CDR-Chem" / "devel.tsv").read_text(encoding="utf-8").split("\n\n")
    (folder / "chem.tsv").write_text("\n\n".join(sentences[:HELD_OUT_ITEMS]) + "\n", encoding="utf-8")
    catalogue = folder / "held-out.yaml"
    catalogue.write_text(
        "name: learning-held-out\n"
        "datasets:\n"
        f"  - {{name: KUAKE-QIC, format: kuake_qic, uri: '{folder / 'kuake.json'}', language: zh, task: tc, "
        "split: dev, metric: micro_f1}\n"
        f"  - {{name: BC5CDR-Chem, format: bio_tsv, uri: '{folder / 'chem.tsv'}', language: en, task: ner, "
        "split: dev, entity_types: [Chemical], metric: micro_f1}\n",
        encoding="utf-8",
    )
    return catalogue


def learn(root: Path, shared: Path, *overrides: str) -> dict[str, Any]:
    """prepare_data -> stage 1 (with validation) -> export -> evaluate, as the separate jobs run them.

    Also what the closing note's seeded runs called, e.g. `learn(root, shared, "stage1.seed=1",
    "model.init_seed=1")`."""
    from taiyi_ray.data.job import run_data_job
    from taiyi_ray.eval.job import run_eval_job
    from taiyi_ray.pipeline import run_stage
    from taiyi_ray.train.export_task import run_export_job

    held_out = write_held_out(shared, root / "held-out")
    settings = [
        f"storage.root={root}",
        f"eval.catalogue={held_out}",
        f"stage1.validation.catalogue={held_out}",
        f"stage1.validation.items_per_set={HELD_OUT_ITEMS}",
        "eval.limit=null",
        *overrides,
    ]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TAIYI_SHARED_DATA", str(shared / "data"))
        run_data_job(load_job_config(DataJobConfig, CONFIG, settings), f"{root}/data")
    stage1 = run_stage(
        load_job_config(Stage1JobConfig, CONFIG, settings), "stage1", f"{root}/stage1"
    ).model_dump()
    export_config = load_job_config(ExportJobConfig, CONFIG, [*settings, f"export.from_run={root}/stage1"])
    exported = run_export_job(export_config, f"{root}/export")
    eval_config = load_job_config(EvalJobConfig, CONFIG, [*settings, f"eval.model={exported.model_dir}"])
    evaluation = run_eval_job(eval_config, f"{root}/eval").model_dump()
    results = json.loads(Path(root, "eval", "results.json").read_text())
    return {"stage1": stage1, "eval": evaluation, "results": results}


@pytest.fixture(scope="module")
def learned(ray_cluster: None, shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return learn(tmp_path_factory.mktemp("learning"), shared_dir)


def test_chinese_classification_learns_well_above_its_majority_class(learned: dict[str, Any]) -> None:
    result = learned["results"]["KUAKE-QIC"]
    assert result["n"] == HELD_OUT_ITEMS and result["baselines"]["random"] == pytest.approx(
        100 / 11, abs=0.01
    )
    assert result["score"] >= result["baselines"]["majority"] + KUAKE_MARGIN, result


def test_english_ner_learns_above_an_absolute_f1_floor(learned: dict[str, Any]) -> None:
    result = learned["results"]["BC5CDR-Chem"]
    assert result["baselines"] == {"majority": 0.0, "random": None}
    assert result["score"] >= CHEM_F1_FLOOR, result


def test_last_validation_agrees_with_the_evaluation_job(learned: dict[str, Any]) -> None:
    """Same items, prompts, decoding, parser and scorer: the scores agree. Equal to 4 decimals in all 3
    measured runs; 0.5 points leave room for one near-tie item that another batch composition may flip."""
    validation = learned["stage1"]["validation"]
    for name, result in learned["results"].items():
        last = validation[name]["last"]
        assert last["step"] == learned["stage1"]["steps"]
        assert last["score"] == pytest.approx(result["score"], abs=0.5), name
    assert learned["stage1"]["validation_share"] < 0.25
