"""MedMCQA, Huatuo-26M QA, HuatuoGPT-sft and MedDialog converters on small files in each exact layout.

No real file of these sets is here (none is in ../shared/data): each test writes a few lines in the
layout the converter's docstring cites, and asserts the exact records and the bad-record reasons.
"""

from __future__ import annotations

import json
from pathlib import Path

from taiyi_ray.data.formats import FORMATS, BadRecord, Source
from taiyi_ray.data.schema import Record
from taiyi_ray.storage import Storage


def convert(fmt: str, path: Path, language: str = "en", **options: object) -> list[Record | BadRecord]:
    source = Source(
        uri=str(path), dataset="t", split="train", language=language, storage=Storage(), options=options
    )  # type: ignore[arg-type]
    return list(FORMATS[fmt](source))


def reasons(items: list[Record | BadRecord], count: int) -> list[str]:
    """The reasons of `items`, which must be `count` bad records."""
    assert [type(item) for item in items] == [BadRecord] * count, items
    return [item.reason for item in items if isinstance(item, BadRecord)]


def write_lines(path: Path, items: list[object]) -> Path:
    path.write_text("".join(json.dumps(item, ensure_ascii=False) + "\n" for item in items), encoding="utf-8")
    return path


MEDMCQA = {
    "id": "e9ad821a-c438-4965-9f77-760819dfa155",
    "question": "Chronic urethral obstruction due to benign prismatic hyperplasia can lead to the following change",
    "opa": "Hyperplasia",
    "opb": "Hyperophy",
    "opc": "Atrophy",
    "opd": "Dyplasia",
    "cop": 3,
    "choice_type": "single",
    "exp": "Chronic urethral obstruction ... atrophy.",
    "subject_name": "Anatomy",
    "topic_name": "Urinary tract",
}


def test_medmcqa_cop_counts_from_one_and_names_the_option(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "train.json", [MEDMCQA, MEDMCQA | {"id": "x2", "cop": 1}])
    first, second = convert("medmcqa_jsonl", path)
    assert isinstance(first, Record) and isinstance(second, Record)
    assert first.id == MEDMCQA["id"] and first.task == "qa_mc"
    assert first.choices == {"A": "Hyperplasia", "B": "Hyperophy", "C": "Atrophy", "D": "Dyplasia"}
    assert (first.answer, second.answer) == ("C", "A")


def test_medmcqa_hub_export_counts_from_zero(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "train.jsonl", [MEDMCQA | {"cop": 3}])
    (record,) = convert("medmcqa_jsonl", path, cop_from_zero=True)
    assert isinstance(record, Record) and record.answer == "D"


def test_medmcqa_bad_lines_name_their_field(tmp_path: Path) -> None:
    items = [MEDMCQA | {"cop": None}, MEDMCQA | {"cop": 5}, {k: v for k, v in MEDMCQA.items() if k != "opd"}]
    found = reasons(convert("medmcqa_jsonl", write_lines(tmp_path / "dev.json", items)), 3)
    assert "'cop'" in found[0] and "no label" in found[0]
    assert "cop 5 is not an option number 1-4" in found[1]
    assert "'opd'" in found[2]


def test_huatuo_qa_one_record_per_group_asked_with_its_first_paraphrase(tmp_path: Path) -> None:
    items = [
        {"questions": [["曲匹地尔片的用法用量", "曲匹地尔片怎么吃"]], "answers": ["口服，一次50～100mg。"]},
        {"questions": [["感冒吃什么药？"], ["发烧怎么办？"]], "answers": ["多喝水。", "及时就医。"]},
    ]
    records = convert("huatuo_qa_jsonl", write_lines(tmp_path / "train_datasets.jsonl", items), "zh")
    assert [(r.id, r.question, r.answer) for r in records if isinstance(r, Record)] == [
        ("train_datasets.jsonl:1", "曲匹地尔片的用法用量", "口服，一次50～100mg。"),
        ("train_datasets.jsonl:2.1", "感冒吃什么药？", "多喝水。"),
        ("train_datasets.jsonl:2.2", "发烧怎么办？", "及时就医。"),
    ]
    assert {r.task for r in records if isinstance(r, Record)} == {"qa_open"}


def test_huatuo_qa_refuses_a_missing_answer_and_a_url_answer(tmp_path: Path) -> None:
    items = [
        {"questions": [["头痛怎么办？"]]},
        {"questions": [["头痛怎么办？"]], "answers": ["https://www.example.com/qa/1.html"]},
        {"questions": [["a"], ["b"]], "answers": ["only one"]},
    ]
    found = reasons(convert("huatuo_qa_jsonl", write_lines(tmp_path / "q.jsonl", items), "zh"), 3)
    assert "no label" in found[0] and "'answers'" in found[0]
    assert "answers[0] is a URL" in found[1]
    assert "one answer per question group (2)" in found[2]


def test_huatuo_sft_alternates_and_strips_prefixes(tmp_path: Path) -> None:
    items = [
        {
            "data": [
                "问：我最近总是头痛，怎么办？\n",
                "答：建议您先测量血压。",
                "问:血压正常",
                "答:那可能是睡眠不足。",
            ]
        }
    ]
    (record,) = convert(
        "huatuo_sft_jsonl", write_lines(tmp_path / "HuatuoGPT_sft_data_v1.jsonl", items), "zh"
    )
    assert isinstance(record, Record) and record.id == "HuatuoGPT_sft_data_v1.jsonl:1"
    assert [(turn.role, turn.content) for turn in record.turns] == [
        ("user", "我最近总是头痛，怎么办？"),
        ("assistant", "建议您先测量血压。"),
        ("user", "血压正常"),
        ("assistant", "那可能是睡眠不足。"),
    ]


def test_huatuo_sft_refuses_a_conversation_that_does_not_alternate(tmp_path: Path) -> None:
    items = [
        {"data": ["问：头痛", "问：还是头痛", "答：休息"]},
        {"data": ["问：头痛"]},
        {"data": ["问：a", 3]},
    ]
    found = reasons(convert("huatuo_sft_jsonl", write_lines(tmp_path / "sft.jsonl", items), "zh"), 3)
    assert "data[1] must start with '答：'" in found[0] and "do not alternate" in found[0]
    assert "must end with an answer" in found[1]
    assert "'data[1]'" in found[2]


MEDDIALOG_EN = """id=1
https://www.icliniq.com/qa/example
Description
Q. What does abutment of the nerve root mean?

Dialogue
Patient:
Hi doctor,
I am just wondering what is abutting and abutment of the nerve root means?
Doctor:
Hi. I have gone through your query.
Abutment means touching.
Patient:
Thank you.

id=2
https://www.healthcaremagic.com/questions/example
Description
Q. No reply yet.

Dialogue
Patient:
Is this serious?

"""

MEDDIALOG_ZH = """id=0
https://www.haodf.com/doctorteam/flow_team_6477251152.htm

Doctor faculty
妇产科

Description
病情描述：
我怀孕37周，肚子一阵阵发紧

Dialogue
病人:
我怀孕37周，肚子一阵阵发紧，是要生了吗
医生：
这是宫缩，注意观察
医生:
如果规律就去医院

"""


def test_meddialog_english_dialogues_and_a_dialogue_without_doctor(tmp_path: Path) -> None:
    path = tmp_path / "healthcaremagic_dialogue_1.txt"
    path.write_text(MEDDIALOG_EN, encoding="utf-8")
    record, missing = convert("meddialog_txt", path)
    assert isinstance(record, Record) and record.id == "healthcaremagic_dialogue_1.txt:1"
    assert [(turn.role, turn.content) for turn in record.turns] == [
        ("user", "Hi doctor,\nI am just wondering what is abutting and abutment of the nerve root means?"),
        ("assistant", "Hi. I have gone through your query.\nAbutment means touching."),
        ("user", "Thank you."),
    ]
    assert isinstance(missing, BadRecord) and missing.record_id == "2" and missing.line == 16
    assert "no doctor turn" in missing.reason


def test_meddialog_chinese_merges_consecutive_doctor_turns(tmp_path: Path) -> None:
    path = tmp_path / "2011.txt"
    path.write_text(MEDDIALOG_ZH, encoding="utf-8")
    (record,) = convert("meddialog_txt", path, "zh")
    assert isinstance(record, Record) and record.language == "zh"
    assert [(turn.role, turn.content) for turn in record.turns] == [
        ("user", "我怀孕37周，肚子一阵阵发紧，是要生了吗"),
        ("assistant", "这是宫缩，注意观察\n如果规律就去医院"),
    ]
