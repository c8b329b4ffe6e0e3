"""The oracle through the real parse-and-score path on small files of every task (the demo corpus plus
HoC and KUAKE-QIC files written here), and the seeded noise's contract: how many items, which kind."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
import yaml

from taiyi_ray.cli import main
from taiyi_ray.config.evaluation import EvalConfig
from taiyi_ray.config.jobs import EvalJobConfig
from taiyi_ray.config.platform import StorageConfig
from taiyi_ray.data.answers import parse_with, prediction_to_record
from taiyi_ray.data.catalogue import load_catalogue
from taiyi_ray.eval.job import run_eval_job
from taiyi_ray.eval.oracle import corrupted_count, corrupted_positions, oracle_outputs, wrong_answer
from taiyi_ray.eval.scoring import score_records
from taiyi_ray.eval.sets import EvalSet, load_eval_set
from taiyi_ray.storage import Storage

REPO = Path(__file__).resolve().parents[3]
DEMO = REPO / "configs" / "catalogues" / "demo-eval.yaml"


def write_small_sets(folder: Path) -> list[dict]:
    """HoC and KUAKE-QIC files in their source formats, so every scorer task is covered offline."""
    hoc = ["labels\tsentence\tindex"]
    for number in range(12):
        flags = ",".join(f"{k}_{int((number + k) % 4 == 0)}" for k in range(10))
        hoc.append(f"{flags}\tSentence {number} about tumour growth .\t{1000 + number // 3}_s{number % 3}")
    (folder / "hoc.tsv").write_text("\n".join(hoc) + "\n", encoding="utf-8")
    intents = ["病情诊断", "治疗方案", "其他", "医疗费用"]
    queries = [{"id": f"s{n}", "query": f"问题{n}怎么办？", "label": intents[n % 4]} for n in range(10)]
    (folder / "kuake.json").write_text(json.dumps(queries, ensure_ascii=False), encoding="utf-8")
    return [
        {"name": "HoC", "format": "hoc_tsv", "uri": str(folder / "hoc.tsv"), "language": "en",
         "task": "tc_multilabel", "metric": "micro_f1"},
        {"name": "KUAKE-QIC", "format": "kuake_qic", "uri": str(folder / "kuake.json"), "language": "zh",
         "task": "tc", "metric": "micro_f1"},
        {"name": "CHEMDNER", "format": "bio_tsv", "uri": str(folder / "absent.tsv"), "language": "en",
         "task": "ner", "entity_types": ["Chemical"], "metric": "micro_f1"},
    ]  # fmt: skip


@pytest.fixture(scope="module")
def catalogue_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("catalogue")
    demo = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    for entry in demo["datasets"]:
        entry["uri"] = str(REPO / entry["uri"])
    demo["datasets"] += write_small_sets(folder)
    path = folder / "small.yaml"
    path.write_text(yaml.safe_dump(demo, allow_unicode=True), encoding="utf-8")
    return path


def job_config(catalogue: Path, root: Path) -> EvalJobConfig:
    return EvalJobConfig(storage=StorageConfig(root=str(root)), eval=EvalConfig(catalogue=str(catalogue)))


def test_oracle_scores_100_on_every_set_and_reports_missing_ones(
    catalogue_file: Path, tmp_path: Path
) -> None:
    summary = run_eval_job(
        job_config(catalogue_file, tmp_path), str(tmp_path / "run"), oracle=True
    ).model_dump()
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["CHEMDNER"] == {**results["CHEMDNER"], "missing": True, "score": None}
    present = {name: value for name, value in results.items() if name != "CHEMDNER"}
    assert {"BC5CDR-Chem", "BC5CDR-CID", "CMeEE-V2", "HoC", "KUAKE-QIC", "PubMedQA"} <= set(present)
    assert all(
        value["score"] == 100.0 and value["unparsed"] == 0 and value["n"] > 0 for value in present.values()
    )
    assert summary["missing"] == ["CHEMDNER"] and summary["average"] == 100.0
    for name, value in present.items():  # the files the job wrote score the same through the CLI
        task = {"qa_yesno": "qa", "qa_mc": "qa"}.get(value["task"], value["task"])
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            main(["eval", "score", "--task", task, "--json",
                  "--gold", str(tmp_path / "run" / "gold" / f"{name}.jsonl"),
                  "--pred", str(tmp_path / "run" / "predictions" / f"{name}.jsonl")])  # fmt: skip
        scored = json.loads(out.getvalue())
        assert scored["n"] == value["n"] and 1.0 in (scored["f1"], scored["accuracy"])


def load_sets(catalogue_file: Path) -> list[EvalSet]:
    catalogue = load_catalogue(str(catalogue_file))
    sets = [load_eval_set(entry, Storage(), None, 0) for entry in catalogue.datasets]
    return [eval_set for eval_set in sets if not eval_set.missing]


def test_every_wrong_answer_parses_and_scores_zero(catalogue_file: Path) -> None:
    """A 'wrong' corruption is read by the parser (not unparsed) and earns nothing, on every task."""
    import random

    for eval_set in load_sets(catalogue_file):
        predicted = {}
        for item in eval_set.items:
            parsed = parse_with(wrong_answer(item, random.Random(0)), item.space)
            assert parsed.ok, (eval_set.name, item.record.id, parsed.problems)
            predicted[item.record.id] = prediction_to_record(parsed.prediction, item.record)
        score = score_records(eval_set.score_task, [item.record for item in eval_set.items], predicted).score
        assert score.metric(eval_set.metric) == 0.0, eval_set.name
        if eval_set.score_task in ("ner", "re", "tc_multilabel"):
            assert score.false_positives == len(eval_set.items)  # exactly one spurious unit per item


@pytest.mark.parametrize(
    ("fraction", "n", "k"), [(0.0, 7, 0), (0.25, 10, 3), (0.5, 5, 3), (0.3, 5, 2), (1.0, 4, 4)]
)
def test_corrupted_count_rounds_half_up(fraction: float, n: int, k: int) -> None:
    assert corrupted_count(fraction, n) == k
    positions = corrupted_positions(n, fraction, seed=1, set_name="X")
    assert len(set(positions)) == k and positions == corrupted_positions(n, fraction, seed=1, set_name="X")


def test_noise_alternates_wrong_and_empty_outputs(catalogue_file: Path) -> None:
    for eval_set in load_sets(catalogue_file):
        outputs = oracle_outputs(eval_set, 0.5, seed=7)
        order = corrupted_positions(len(eval_set.items), 0.5, 7, eval_set.name)
        for rank, position in enumerate(order):
            output = outputs[eval_set.items[position].record.id]
            assert output.corrupted and (output.text == "") == (rank % 2 == 1)
        untouched = [item for index, item in enumerate(eval_set.items) if index not in set(order)]
        assert all(outputs[item.record.id].text == item.gold_answer for item in untouched)


def test_noisy_oracle_per_item_scores_are_exact(catalogue_file: Path, tmp_path: Path) -> None:
    run_eval_job(job_config(catalogue_file, tmp_path), str(tmp_path / "run"), oracle=True, oracle_noise=0.4)
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    for name in ("KUAKE-QIC", "PubMedQA", "MedQA-USMLE", "MedQA-MCMLE"):
        value = results[name]
        k = int(0.4 * value["n"] + 0.5)
        assert value["score"] == pytest.approx(100.0 * (value["n"] - k) / value["n"], abs=1e-9), name
        assert value["unparsed"] == k // 2, name
    for name in ("HoC", "BC5CDR-Chem", "CMeEE-V2"):
        assert results[name]["score"] < 100.0, (
            name
        )  # the set bounds are checked on the real sets (integration)


def test_noise_without_oracle_is_refused(catalogue_file: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"--oracle-noise 0\.2 needs --oracle"):
        run_eval_job(
            job_config(catalogue_file, tmp_path), str(tmp_path / "run"), oracle=False, oracle_noise=0.2
        )


def test_an_absent_reference_file_only_drops_the_paper_columns(catalogue_file: Path, tmp_path: Path) -> None:
    """A config may point at ../shared/reference/paper-scores.json and still run where ../shared is absent."""
    config = EvalJobConfig(
        storage=StorageConfig(root=str(tmp_path)),
        eval=EvalConfig(
            catalogue=str(catalogue_file), sets=["KUAKE-QIC"], reference_scores=str(tmp_path / "no.json")
        ),
    )
    summary = run_eval_job(config, str(tmp_path / "run"), oracle=True).model_dump()
    assert summary["average_compared"] is None and summary["scores"] == {"KUAKE-QIC": 100.0}
    assert (
        "| Set | Task | Metric | Ours | Majority | Random | n | unparsed |"
        in (tmp_path / "run" / "report.md").read_text()
    )
