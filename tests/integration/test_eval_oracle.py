"""The oracle over every available real set of configs/eval-13.yaml: 100.0 each, missing sets reported,
and seeded noise scoring inside the bounds derived from P (no model, no Ray: seconds, not minutes).

Bounds, from the noise's definition (taiyi_ray/eval/oracle.py): with n items, k = floor(P n + 0.5) are
corrupted, k // 2 of them unparsed. Per-item metrics (QA, single-label) are exactly 100 (n - k) / n. For
a set metric every corrupted item loses all of its g_i gold units and exactly ceil(k / 2) false
positives appear, so F1 = 2(G - L) / (2G - L + ceil(k/2)) with L the chosen items' units: at most its
value for the k items with the fewest units and at least its value for the k with the most. The units
are counted here from the gold files, independently of the scorer.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from taiyi_ray.config.jobs import EvalJobConfig
from taiyi_ray.config.loader import read_yaml
from taiyi_ray.data.schema import Record
from taiyi_ray.eval.job import run_eval_job

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
FULL_SIZES = {
    "BC5CDR-Chem": 500, "BC5CDR-Dise": 500, "NCBI-Disease": 940, "CMeEE-V2": 5000, "BC5CDR-CID": 500,
    "CMeIE-V2": 3585, "HoC": 3547, "KUAKE-QIC": 1955, "PubMedQA": 500, "MedQA-USMLE": 1273, "MedQA-MCMLE": 3426,
}  # fmt: skip
ABSENT = {"CHEMDNER", "BC7-LitCovid"}
NOISE = 0.3


@pytest.fixture(scope="module")
def eval13(shared_dir: Path) -> Iterator[dict]:
    """configs/eval-13.yaml resolved against ../shared/data, and the paper's scores beside it."""
    previous = os.environ.get("TAIYI_SHARED_DATA")
    os.environ["TAIYI_SHARED_DATA"] = str(shared_dir / "data")
    yield {
        "catalogue": str(REPO / "configs" / "eval-13.yaml"),
        "reference_scores": str(shared_dir / "reference" / "paper-scores.json"),
    }
    if previous is None:
        os.environ.pop("TAIYI_SHARED_DATA", None)
    else:
        os.environ["TAIYI_SHARED_DATA"] = previous


def run(eval13: dict, root: Path, noise: float) -> dict:
    config = EvalJobConfig.model_validate({"storage": {"root": str(root)}, "eval": eval13})
    run_eval_job(config, str(root / "run"), oracle=True, oracle_noise=noise)
    return json.loads((root / "run" / "results.json").read_text())


def test_oracle_is_100_on_every_available_set(eval13: dict, shared_dir: Path, tmp_path: Path) -> None:
    results = run(eval13, tmp_path, 0.0)
    paper = json.loads((shared_dir / "reference" / "paper-scores.json").read_text())
    assert list(results) == [item["name"] for item in paper["sets"]]  # keyed by the paper's names, in order
    for name, value in results.items():
        if name in ABSENT:
            assert (value["missing"], value["score"], value["n"]) == (True, None, 0), name
        else:
            assert (value["missing"], value["score"], value["unparsed"]) == (False, 100.0, 0), name
            assert value["n"] == FULL_SIZES[name], name
    report = (tmp_path / "run" / "report.md").read_text()
    assert "| BC5CDR-CID | re | micro_f1 | 100.0 | 0.0 | – | 37.5 | 14.2 | 45.0 | 500 | 0 |" in report
    assert "Missing (file absent, not scored): CHEMDNER, BC7-LitCovid." in report


def gold_units(record: Record) -> int:
    """A record's gold units as the paper counts them (computed here, not by the scorer)."""
    if record.task == "ner":
        return len({(entity.type, " ".join(entity.text.split())) for entity in record.entities})
    if record.task == "re":
        texts = {entity.id: " ".join(entity.text.split()).casefold() for entity in record.entities}
        return len(
            {
                (r.type, texts.get(r.head_id, r.head_id), texts.get(r.tail_id, r.tail_id))
                for r in record.relations
            }
        )
    return len(set(record.labels))


def f1_for(total: int, lost: int, spurious: int) -> float:
    return 2 * (total - lost) / (2 * total - lost + spurious)


def test_noisy_oracle_scores_within_the_bounds_derived_from_p(eval13: dict, tmp_path: Path) -> None:
    results = run(eval13, tmp_path, NOISE)
    tasks = {entry["name"]: entry["task"] for entry in read_yaml(eval13["catalogue"])[0]["datasets"]}
    for name, value in results.items():
        if name in ABSENT:
            continue
        n = value["n"]
        k = int(NOISE * n + 0.5)
        assert value["unparsed"] == k // 2, name
        score = value["score"] / 100.0
        if tasks[name] in ("tc", "qa_yesno", "qa_mc"):
            assert score == pytest.approx((n - k) / n, abs=1e-12), name
            continue
        lines = (tmp_path / "run" / "gold" / f"{name}.jsonl").read_text().splitlines()
        gold = [Record.model_validate_json(line) for line in lines]
        if tasks[name] in ("ner", "re"):  # units add up per item only when each item is its own document
            assert len({record.document_id for record in gold}) == len(gold), name
        units = sorted(gold_units(record) for record in gold)
        total, spurious = sum(units), math.ceil(k / 2)
        upper = f1_for(total, sum(units[:k]), spurious)
        lower = f1_for(total, sum(units[len(units) - k :]), spurious)
        assert lower - 1e-12 <= score <= upper + 1e-12, (name, lower, score, upper)
        assert upper < 1.0, name  # a scorer that always says 100 fails here
