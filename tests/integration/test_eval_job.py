"""The evaluation job on the tiny random Qwen2: Ray Data actors over configs/eval-13.yaml (a few items per
set, a few new tokens), its files, resuming, the cache; and offline evaluation == the same job against a
Ray Serve endpoint (a partly trained tiny model)."""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from taiyi_ray.cli import main
from taiyi_ray.config.jobs import EvalJobConfig
from taiyi_ray.eval.job import run_eval_job
from tests.conftest import build_tiny_export
from tests.integration.helpers import memorise

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
LIMIT = 2
SCORE_TASK = {"qa_yesno": "qa", "qa_mc": "qa"}


@pytest.fixture(scope="module")
def shared_data_env(shared_dir: Path) -> Iterator[Path]:
    previous = os.environ.get("TAIYI_SHARED_DATA")
    os.environ["TAIYI_SHARED_DATA"] = str(shared_dir / "data")
    yield shared_dir
    if previous is None:
        os.environ.pop("TAIYI_SHARED_DATA", None)
    else:
        os.environ["TAIYI_SHARED_DATA"] = previous


def config(root: Path, shared: Path, **eval_fields: object) -> EvalJobConfig:
    return EvalJobConfig.model_validate(
        {
            "storage": {"root": str(root)},
            "ray": {"num_cpus": 4},
            "eval": {
                "catalogue": str(REPO / "configs" / "eval-13.yaml"),
                "reference_scores": str(shared / "reference" / "paper-scores.json"),
                "limit": LIMIT,
                "batch_size": 4,
                "generation": {"max_new_tokens": 6},
                **eval_fields,
            },
        }
    )


def cli_score(run_dir: Path, name: str, task: str) -> dict:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main(["eval", "score", "--task", SCORE_TASK.get(task, task), "--json",
                       "--gold", str(run_dir / "gold" / f"{name}.jsonl"),
                       "--pred", str(run_dir / "predictions" / f"{name}.jsonl")])  # fmt: skip
    assert status == 0
    return json.loads(out.getvalue())


def check_run(run_dir: Path) -> dict:
    """The files DESIGN.md promises, consistent with each other; returns results.json."""
    results = json.loads((run_dir / "results.json").read_text())
    assert len(results) == 13 and {name for name, v in results.items() if v["missing"]} == {
        "CHEMDNER",
        "BC7-LitCovid",
    }
    for name, value in results.items():
        if value["missing"]:
            continue
        assert value["n"] == LIMIT and 0.0 <= value["score"] <= 100.0, name
        lines = [
            json.loads(line) for line in (run_dir / "predictions" / f"{name}.jsonl").read_text().splitlines()
        ]
        assert len(lines) == LIMIT and all(line["prompt"] and line["gold_answer"] for line in lines), name
        assert all(line["finish_reason"] in ("stop", "length") for line in lines), name
        assert sum(not line["parsed"] for line in lines) == value["unparsed"], name
        scored = cli_score(run_dir, name, value["task"])
        headline = scored["accuracy"] if value["metric"] == "accuracy" else scored["f1"]
        assert 100.0 * headline == pytest.approx(value["score"]), name
    assert (run_dir / "scores.png").read_bytes()[:4] == b"\x89PNG"
    assert (
        "| Set | Task | Metric | Ours | Majority | Random | Taiyi | ChatGPT-3.5 | SOTA | n | unparsed |"
        in (run_dir / "report.md").read_text()
    )
    return results


def test_job_generates_with_ray_data_actors_then_resumes_from_sets_and_cache(
    ray_cluster: None, tiny_model_dir: Path, shared_data_env: Path, tmp_path: Path
) -> None:
    job = config(tmp_path, shared_data_env, model=str(tiny_model_dir))
    run_dir = tmp_path / "run"
    summary = run_eval_job(job, str(run_dir)).model_dump()
    results = check_run(run_dir)
    for name, value in results.items():
        if not value["missing"]:
            assert (value["generated"], value["cached"]) == (LIMIT, 0), name  # the prompts of a set differ
            assert value["items_per_s"] > 0, name
    assert summary["items"] == 11 * LIMIT and set(summary["items_per_s"]) == set(results) - {
        "CHEMDNER",
        "BC7-LitCovid",
    }
    kept = (run_dir / "sets" / "HoC.json").stat().st_mtime_ns
    (run_dir / "sets" / "PubMedQA.json").unlink()  # as if the run had died before finishing PubMedQA
    again = run_eval_job(job, str(run_dir)).model_dump()
    rerun = json.loads((run_dir / "results.json").read_text())
    assert (rerun["PubMedQA"]["generated"], rerun["PubMedQA"]["cached"]) == (0, LIMIT)  # from the cache
    assert rerun["HoC"] == results["HoC"] and (run_dir / "sets" / "HoC.json").stat().st_mtime_ns == kept
    assert again["scores"] == summary["scores"]
    other = run_eval_job(
        job, str(tmp_path / "second-run")
    ).model_dump()  # a new run of the same model: all from the cache
    assert other["scores"] == summary["scores"]
    second = json.loads((tmp_path / "second-run" / "results.json").read_text())
    assert all(v["generated"] == 0 for v in second.values())


ENDPOINT_SETS = ["PubMedQA", "KUAKE-QIC", "BC5CDR-Chem", "HoC", "CHEMDNER"]


@pytest.fixture(scope="module")
def answering_model(
    tmp_path_factory: pytest.TempPathFactory, qwen2_tokenizer_dir: Path, shared_data_env: Path
) -> Path:
    """The tiny Qwen2 trained to give the gold answer (then its end token) to the first item of each set,
    but to run on past 16 tokens on BC5CDR-Chem's (a "length" finish wherever training ends up: on an AMD
    EPYC every other item ended with the end token); the other items get whatever it makes of them."""
    from taiyi_ray.data.catalogue import load_catalogue
    from taiyi_ray.eval.sets import load_eval_set, select_entries
    from taiyi_ray.model.factory import load_for_inference
    from taiyi_ray.model.generation import end_token_id
    from taiyi_ray.storage import Storage

    directory = build_tiny_export(tmp_path_factory.mktemp("answering"), qwen2_tokenizer_dir)
    loaded = load_for_inference(directory)
    settings = config(tmp_path_factory.mktemp("unused"), shared_data_env).eval
    storage = Storage(config(tmp_path_factory.mktemp("unused"), shared_data_env).storage)
    pairs = []
    for entry in select_entries(load_catalogue(settings.catalogue), ENDPOINT_SETS):
        eval_set = load_eval_set(entry, storage, 1, settings.template_seed)
        for item in eval_set.items:
            prompt = loaded.chat_format.prompt_text(list(item.messages))
            answer = loaded.tokenizer(item.gold_answer, add_special_tokens=False)["input_ids"]
            target = [*answer[:12], end_token_id(loaded)]
            if entry.name == "BC5CDR-Chem":
                target = (answer * 20)[:20]  # no end token, longer than max_new_tokens
            pairs.append((loaded.tokenizer(prompt, add_special_tokens=False)["input_ids"], target))
    memorise(directory, pairs)
    return directory


def test_offline_and_endpoint_evaluation_are_identical(
    ray_cluster: None, answering_model: Path, shared_data_env: Path, tmp_path: Path
) -> None:
    """The same items through the Ray Data actors (`--model DIR`) and through a Serve endpoint
    (`eval.endpoint`, four requests in flight, so batches form differently) give the same predictions,
    token for token, and the same scores: both decode with the one batch-invariant engine."""
    from ray import serve

    from taiyi_ray.config.serving import ServeConfig
    from taiyi_ray.serve.app import build_application
    from taiyi_ray.serve.job import free_port, wait_until_ready

    fields = {"sets": ENDPOINT_SETS, "limit": 3, "generation": {"max_new_tokens": 16}}
    offline = run_eval_job(
        config(tmp_path, shared_data_env, model=str(answering_model), batch_size=2, **fields),
        str(tmp_path / "offline"),
    ).model_dump()
    port = free_port("127.0.0.1")
    serve.shutdown()  # a Serve left running would keep its own port and ignore ours
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    settings = ServeConfig(
        model=str(answering_model), model_id="tiny", max_batch_size=4, max_ongoing_requests=8
    )
    serve.run(build_application(settings), name="eval-endpoint", route_prefix="/eval-endpoint")
    url = f"http://127.0.0.1:{port}/eval-endpoint"
    try:
        assert wait_until_ready(url, 120) == ["tiny"]
        served = run_eval_job(
            config(tmp_path, shared_data_env, endpoint=url, **fields), str(tmp_path / "served")
        ).model_dump()
    finally:
        serve.shutdown()  # as the serve tests do: the next test module starts Serve on a port of its own
    results = {
        run: json.loads((tmp_path / run / "results.json").read_text()) for run in ("offline", "served")
    }
    catalogue_order = ["BC5CDR-Chem", "CHEMDNER", "HoC", "KUAKE-QIC", "PubMedQA"]
    assert list(results["served"]) == list(results["offline"]) == catalogue_order
    assert served["missing"] == offline["missing"] == ["CHEMDNER"]
    assert served["scores"] == offline["scores"]
    finishes = []
    for name in ("BC5CDR-Chem", "KUAKE-QIC", "PubMedQA", "HoC"):
        assert results["served"][name]["generated"] == 3, name
        assert results["served"][name]["score"] == results["offline"][name]["score"], name
        lines = {
            run: (tmp_path / run / "predictions" / f"{name}.jsonl").read_text().splitlines()
            for run in results
        }
        assert lines["served"] == lines["offline"], name  # raw text, parse, finish reason: all of it
        parsed = [json.loads(line) for line in lines["served"]]
        finishes += [line["finish_reason"] for line in parsed]
        assert 100.0 * (
            cli_score(tmp_path / "served", name, results["served"][name]["task"])[
                "accuracy" if results["served"][name]["metric"] == "accuracy" else "f1"
            ]
        ) == pytest.approx(results["served"][name]["score"])
    # the model learned its first items: some answers end with the end token and score; others run on
    assert "stop" in finishes and "length" in finishes
    assert any(
        results["served"][name]["score"] > 0 for name in ("BC5CDR-Chem", "KUAKE-QIC", "PubMedQA", "HoC")
    )
