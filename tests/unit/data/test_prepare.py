"""`data prepare` on the demo catalogue (in-process) and on small catalogues written here."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pytest

from taiyi_ray.cli import prepare_command
from taiyi_ray.config.data import Catalogue, DataConfig, DatasetEntry
from taiyi_ray.data.catalogue import load_catalogue
from taiyi_ray.data.chat_format import get_chat_format
from taiyi_ray.data.encode_samples import IGNORE_INDEX, tokenize_conversations
from taiyi_ray.data.prepare import REPORT_FILE, PrepareError, prepare_samples
from taiyi_ray.data.schema import InstructionSample
from taiyi_ray.data.tokenizer import configure_tokenizer
from taiyi_ray.storage import Storage

REPO = Path(__file__).resolve().parents[3]
DEMO_COUNTS = {
    "demo-bio-ner": 10,
    "demo-cdr-ner": 4,
    "demo-cdr-cid": 4,
    "demo-cmeee": 9,
    "demo-pubmedqa": 5,
    "demo-medqa-usmle": 5,
    "demo-medqa-mcmle": 4,
    "demo-dialogue-en": 6,
    "demo-dialogue-zh": 6,
}


@pytest.fixture
def in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)  # catalogue paths are relative to the repository root, where jobs run


def demo_config(**update: object) -> DataConfig:
    return DataConfig(
        catalogue="configs/catalogues/demo.yaml",
        decontaminate_against="configs/catalogues/demo-eval.yaml",
        **update,
    )  # type: ignore[arg-type]


def read_samples(path: str) -> list[InstructionSample]:
    return [
        InstructionSample.model_validate_json(line)
        for line in Path(path).read_text(encoding="utf-8").splitlines()
    ]


def test_demo_prepares_in_process_quickly(in_repo: None, tmp_path: Path) -> None:
    catalogue = load_catalogue("configs/catalogues/demo.yaml")
    started = time.perf_counter()
    result = prepare_samples(catalogue, demo_config(), Storage(), str(tmp_path / "out"))
    assert time.perf_counter() - started < 3.0 and not result.parallel
    assert {report.dataset: report.records for report in result.datasets} == DEMO_COUNTS
    assert {report.dataset: report.samples for report in result.datasets} == DEMO_COUNTS
    assert (result.totals.records, result.totals.rejects, result.totals.decontaminated) == (53, 0, 0)
    assert [Path(path).name for path in result.sample_files["stage1"]] == [
        "demo-bio-ner.jsonl", "demo-cdr-ner.jsonl", "demo-cdr-cid.jsonl", "demo-cmeee.jsonl",
    ]  # fmt: skip
    assert [Path(path).name for path in result.sample_files["stage2"]] == [
        "demo-pubmedqa.jsonl",
        "demo-medqa-usmle.jsonl",
        "demo-medqa-mcmle.jsonl",
        "demo-dialogue-en.jsonl",
        "demo-dialogue-zh.jsonl",
    ]
    cid = read_samples(result.sample_files["stage1"][2])
    assert (
        cid[0].messages[-1].content
        == "chemical-induced disease: [simvastatin, Rhabdomyolysis]; [clarithromycin, Rhabdomyolysis]"
    )
    mcmle = read_samples(result.sample_files["stage2"][2])
    assert mcmle[0].language == "zh" and mcmle[0].messages[-1].content == "答案：A. 慢性失血"
    report = json.loads((tmp_path / "out" / REPORT_FILE).read_text())
    assert report["totals"]["samples"] == 53 and report["sample_files"] == result.sample_files
    assert all(report.chars_max >= report.chars_p95 >= report.chars_p50 > 0 for report in result.datasets)


def test_demo_dialogues_learn_every_assistant_turn(in_repo: None, tmp_path: Path, qwen2) -> None:
    """The demo's stage-2 ShareGPT dialogues reach training with the loss on each assistant turn only."""
    catalogue = load_catalogue("configs/catalogues/demo.yaml")
    result = prepare_samples(catalogue, demo_config(), Storage(), str(tmp_path / "out"))
    english = read_samples(result.sample_files["stage2"][3])
    first = english[0]
    assert first.task == "dialogue" and [message.role for message in first.messages] == [
        "system", "user", "assistant", "user", "assistant",
    ]  # fmt: skip
    chat_format = get_chat_format("chatml")
    tokenizer = configure_tokenizer(qwen2, chat_format)
    ((_, labels),) = tokenize_conversations(tokenizer, chat_format, [first.messages])
    learned = tokenizer.decode([token for token in labels.tolist() if token != IGNORE_INDEX])
    answers = [message.content for message in first.messages if message.role == "assistant"]
    assert learned == "".join(f"{answer}<|im_end|>" for answer in answers)
    chinese = read_samples(result.sample_files["stage2"][4])
    assert all(sample.language == "zh" and sample.messages[-1].role == "assistant" for sample in chinese)


def test_prepare_is_deterministic_per_seed(in_repo: None, tmp_path: Path) -> None:
    catalogue = load_catalogue("configs/catalogues/demo.yaml")
    first = prepare_samples(catalogue, demo_config(), Storage(), str(tmp_path / "a"))
    again = prepare_samples(catalogue, demo_config(), Storage(), str(tmp_path / "b"))
    other = prepare_samples(catalogue, demo_config(template_seed=7), Storage(), str(tmp_path / "c"))
    for one, two, three in zip(
        first.sample_files["stage1"], again.sample_files["stage1"], other.sample_files["stage1"], strict=True
    ):
        assert Path(one).read_bytes() == Path(two).read_bytes()
        assert [sample.messages[-1] for sample in read_samples(one)] == [
            sample.messages[-1] for sample in read_samples(three)
        ]
    prompts = [
        sample.messages[0].content for path in first.sample_files["stage1"] for sample in read_samples(path)
    ]
    reseeded = [
        sample.messages[0].content for path in other.sample_files["stage1"] for sample in read_samples(path)
    ]
    assert prompts != reseeded  # another seed picks other templates; the answers stay the same


def test_demo_training_data_contains_no_demo_test_item(in_repo: None, tmp_path: Path) -> None:
    # Put the demo's test split into training on purpose: decontamination must remove every record.
    evaluation = load_catalogue("configs/catalogues/demo-eval.yaml")
    leaked = Catalogue(
        name="leak",
        datasets=[
            entry.model_copy(update={"name": f"leak-{entry.name}", "metric": None})
            for entry in evaluation.datasets
        ],
    )
    result = prepare_samples(leaked, demo_config(), Storage(), str(tmp_path / "out"))
    assert result.totals.records == result.totals.decontaminated == 34 and result.totals.samples == 0


def test_caps_take_a_seeded_sample(tmp_path: Path, write) -> None:
    lines = "\n".join(
        json.dumps({"question": f"Question number {n}?", "options": {"A": "x", "B": "y"}, "answer_idx": "A"})
        for n in range(20)
    )
    entry = DatasetEntry(
        name="m",
        format="medqa_jsonl",
        uri=write("m.jsonl", lines),
        language="en",
        task="qa_mc",
        stage=2,
        max_samples=5,
    )
    catalogue = Catalogue(name="c", datasets=[entry])
    config = DataConfig(catalogue="c.yaml")
    first = prepare_samples(catalogue, config, Storage(), str(tmp_path / "a"))
    again = prepare_samples(catalogue, config, Storage(), str(tmp_path / "b"))
    other = prepare_samples(
        catalogue, config.model_copy(update={"template_seed": 1}), Storage(), str(tmp_path / "c")
    )
    assert (first.datasets[0].records, first.datasets[0].capped, first.datasets[0].samples) == (20, 15, 5)
    ids = [sample.source_id for sample in read_samples(first.sample_files["stage2"][0])]
    assert ids == [sample.source_id for sample in read_samples(again.sample_files["stage2"][0])]
    assert ids != [sample.source_id for sample in read_samples(other.sample_files["stage2"][0])]
    assert len(set(ids)) == 5


def test_bad_records_fail_or_go_to_rejects(tmp_path: Path, write) -> None:
    path = write("bio.tsv", "Aspirin\tB-Chemical\n\nbroken\n\nfever\tO\n")
    entry = DatasetEntry(
        name="bio", format="bio_tsv", uri=path, language="en", task="ner", entity_types=["Chemical"]
    )
    catalogue = Catalogue(name="c", datasets=[entry])
    with pytest.raises(
        PrepareError, match=rf"dataset bio: {path}:3 \(record bio.tsv:2\): expected 2 tab-separated columns"
    ):
        prepare_samples(catalogue, DataConfig(catalogue="c.yaml"), Storage(), str(tmp_path / "out"))
    result = prepare_samples(
        catalogue, DataConfig(catalogue="c.yaml", on_error="quarantine"), Storage(), str(tmp_path / "out")
    )
    (report,) = result.datasets
    assert (report.records, report.rejects, report.samples) == (2, 1, 2)
    (reject,) = [json.loads(line) for line in Path(str(report.rejects_file)).read_text().splitlines()]
    assert (reject["line"], reject["raw"]) == (3, "broken")


def test_prepare_command_prints_the_table_and_a_json_line(
    in_repo: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = argparse.Namespace(
        config=None,
        catalogue="configs/catalogues/demo.yaml",
        overrides=["data.decontaminate_against=configs/catalogues/demo-eval.yaml", "data.template_seed=3"],
        output=str(tmp_path / "cli"),
    )
    assert prepare_command(args) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[0].split()[:4] == ["dataset", "stage", "records", "rejects"]
    assert any(line.startswith("demo-cmeee ") for line in out)
    summary = json.loads(out[-1])
    assert (summary["records"], summary["samples"], summary["decontaminated"]) == (53, 53, 0)
    args.overrides = ["data.on_error=sometimes"]
    assert prepare_command(args) == 1
    assert "data.on_error" in capsys.readouterr().err


def test_an_ee_entry_builds_samples_with_the_event_answer(tmp_path: Path, write) -> None:
    record = {
        "id": "PMID-1",
        "document_id": "PMID-1",
        "dataset": "ge",
        "language": "en",
        "task": "ee",
        "text": "TNF induces phosphorylation of TRAF2.",
        "entities": [
            {"id": "T1", "type": "Protein", "text": "TNF", "offsets": [[0, 3]]},
            {"id": "T2", "type": "Protein", "text": "TRAF2", "offsets": [[31, 36]]},
        ],
        "events": [
            {"id": "E1", "type": "Phosphorylation", "trigger": "phosphorylation", "trigger_offsets": [[12, 27]],
             "arguments": [{"role": "Theme", "ref_id": "T2"}]},
            {"id": "E2", "type": "Positive_regulation", "trigger": "induces", "trigger_offsets": [[4, 11]],
             "arguments": [{"role": "Theme", "ref_id": "E1"}, {"role": "Cause", "ref_id": "T1"}]},
        ],
    }  # fmt: skip
    entry = DatasetEntry(
        name="ge", format="unified_jsonl", uri=write("ge.jsonl", json.dumps(record)), language="en", task="ee"
    )
    result = prepare_samples(
        Catalogue(name="c", datasets=[entry]), DataConfig(catalogue="c.yaml"), Storage(), str(tmp_path / "o")
    )
    (report,) = result.datasets
    assert (report.records, report.samples, report.dropped_events) == (1, 1, 0)
    (sample,) = read_samples(result.sample_files["stage1"][0])
    assert sample.messages[-1].content == (
        "Positive_regulation: induces | Theme: Phosphorylation(phosphorylation); Cause: TNF\n"
        "Phosphorylation: phosphorylation | Theme: TRAF2"
    )
