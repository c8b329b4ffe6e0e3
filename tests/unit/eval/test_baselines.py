"""Trivial baselines from a set's own gold, on the real evaluation files of ../shared/data.

The expected values are counted here straight from the source files (not through our converters), so a
wrong converter, scorer or baseline rule shows up as a mismatch."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from taiyi_ray.data.catalogue import load_catalogue
from taiyi_ray.eval.baselines import Baselines, trivial_baselines
from taiyi_ray.eval.sets import EvalSet, load_eval_set
from taiyi_ray.storage import Storage

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def eval_sets(shared_dir: Path) -> dict[str, EvalSet]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TAIYI_SHARED_DATA", str(shared_dir / "data"))
        catalogue = load_catalogue(str(REPO / "configs" / "eval-13.yaml"))
        wanted = {"KUAKE-QIC", "PubMedQA", "MedQA-USMLE", "HoC", "BC5CDR-Chem", "BC5CDR-CID"}
        return {
            entry.name: load_eval_set(entry, Storage(), None, template_seed=0)
            for entry in catalogue.datasets
            if entry.name in wanted
        }


def baselines_of(eval_set: EvalSet) -> Baselines:
    baselines = trivial_baselines(eval_set.score_task, eval_set.metric, eval_set.items)
    assert baselines is not None
    return baselines


def test_single_label_majority_and_chance_match_the_file(
    eval_sets: dict[str, EvalSet], shared_dir: Path
) -> None:
    raw = json.loads((shared_dir / "data" / "KUAKE-QIC" / "KUAKE-QIC_dev.json").read_text())
    counts = Counter(item["label"] for item in raw)
    baselines = baselines_of(eval_sets["KUAKE-QIC"])
    assert baselines.majority == pytest.approx(100 * counts.most_common(1)[0][1] / len(raw), abs=0.01)
    assert baselines.random == pytest.approx(100 / 11, abs=0.01)  # the 11 intents the prompt offers


def test_pubmedqa_majority_answer_and_three_way_chance(
    eval_sets: dict[str, EvalSet], shared_dir: Path
) -> None:
    truth = json.loads((shared_dir / "data" / "PubMedQA" / "test_ground_truth.json").read_text())
    counts = Counter(truth.values())
    baselines = baselines_of(eval_sets["PubMedQA"])
    assert baselines.majority == pytest.approx(100 * counts.most_common(1)[0][1] / len(truth), abs=0.01)
    assert baselines.random == pytest.approx(33.33, abs=0.01)


def test_multiple_choice_chance_is_one_over_the_options(
    eval_sets: dict[str, EvalSet], shared_dir: Path
) -> None:
    lines = (shared_dir / "data" / "MedQA-USMLE" / "test.jsonl").read_text().splitlines()
    items = [json.loads(line) for line in lines if line.strip()]
    expected = 100 * sum(1 / len(item["options"]) for item in items) / len(items)
    answers = Counter(item["answer_idx"] for item in items)
    baselines = baselines_of(eval_sets["MedQA-USMLE"])
    assert baselines.random == pytest.approx(expected, abs=0.01)
    assert baselines.majority == pytest.approx(100 * answers.most_common(1)[0][1] / len(items), abs=0.01)


def test_extraction_and_multilabel_baselines(eval_sets: dict[str, EvalSet]) -> None:
    for name in ("BC5CDR-Chem", "BC5CDR-CID"):
        baselines = baselines_of(eval_sets[name])
        assert (baselines.majority, baselines.random) == (0.0, None), name
    hoc = baselines_of(eval_sets["HoC"])
    assert hoc.random is None
    # No hallmark is on most HoC sentences: majority per label predicts only what most items carry.
    items = eval_sets["HoC"].items
    common = Counter(label for item in items for label in set(item.record.labels)).most_common(1)[0]
    assert (common[1] > len(items) / 2) == (hoc.majority > 0)


def test_empty_set_has_no_baselines() -> None:
    assert trivial_baselines("tc", "micro_f1", []) is None
