"""MedMCQA, Huatuo-26M QA, HuatuoGPT-sft, MedDialog, Chinese medical dialogue and COVID pair converters on small files in each exact layout.

No real file of these sets is here (none is in ../shared/data): each test writes a few lines in the
layout the converter's docstring cites, and asserts the exact records and the bad-record reasons.
"""

from __future__ import annotations

import json
from pathlib import Path

from taiyi_ray.data.formats import FORMATS, BadRecord, Source
from taiyi_ray.data.schema import Record
from taiyi_ray.storage import Storage


def convert(
    fmt: str, path: Path, language: str = "en", unlabelled: bool = False, **options: object
) -> list[Record | BadRecord]:
    source = Source(
        uri=str(path),
        dataset="t",
        split="train",
        language=language,  # type: ignore[arg-type]
        storage=Storage(),
        options=options,
        unlabelled=unlabelled,
    )
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


# Chinese-medical-dialogue-data: the README's two example rows, an ask written 无, an ask that repeats the
# title, and a quoted answer over two lines; the file in GB18030 as the repository ships it.
MEDICAL_DIALOGUE = (
    "department,title,ask,answer\r\n"
    "心血管科,高血压患者能吃党参吗？,我有高血压这两天女婿来的时候给我拿了些党参泡水喝，您好高血压可以吃党参吗？,"
    "高血压病人可以口服党参的。\r\n"
    "消化科,哪家医院能治胃反流,烧心，打隔，咳嗽低烧，以有4年多, 建议你用奥美拉唑同时，加用吗丁啉\r\n"
    "内分泌科,糖尿病能吃西瓜吗,无,少量可以。\r\n"
    '儿科,宝宝发烧,宝宝发烧38度怎么办,"先物理降温，\r\n超过38.5度用退烧药。"\r\n'
)


def test_medical_dialogue_csv_reads_gb18030_rows_into_questions_and_answers(tmp_path: Path) -> None:
    path = tmp_path / "内科5000-33000.csv"
    path.write_bytes(MEDICAL_DIALOGUE.encode("gb18030"))
    records = convert("medical_dialogue_csv", path, "zh")
    assert all(isinstance(record, Record) for record in records), records
    assert [(r.id, r.question, r.answer) for r in records if isinstance(r, Record)] == [
        (
            "内科5000-33000.csv:1",
            "高血压患者能吃党参吗？\n我有高血压这两天女婿来的时候给我拿了些党参泡水喝，您好高血压可以吃党参吗？",
            "高血压病人可以口服党参的。",
        ),
        (
            "内科5000-33000.csv:2",
            "哪家医院能治胃反流\n烧心，打隔，咳嗽低烧，以有4年多",
            "建议你用奥美拉唑同时，加用吗丁啉",
        ),
        ("内科5000-33000.csv:3", "糖尿病能吃西瓜吗", "少量可以。"),
        ("内科5000-33000.csv:4", "宝宝发烧38度怎么办", "先物理降温，\r\n超过38.5度用退烧药。"),
    ]
    assert {(r.task, r.language) for r in records if isinstance(r, Record)} == {("qa_open", "zh")}


def test_medical_dialogue_csv_refuses_a_row_without_answer_unless_unlabelled(tmp_path: Path) -> None:
    text = "department,title,ask,answer\n外科,腰疼,腰疼三天,\n外科,,无,答\n外科,a,b\n"
    path = tmp_path / "外科5-14000.csv"
    path.write_bytes(text.encode("gb18030"))
    results = convert("medical_dialogue_csv", path, "zh")
    found = reasons(results, 3)
    assert "no label: field 'answer'" in found[0] and "both title and ask are empty" in found[1]
    assert "expected 4 columns as in the header, got 3" in found[2]
    assert [(item.line, item.record_id) for item in results if isinstance(item, BadRecord)] == [
        (2, "外科5-14000.csv:1"),
        (3, "外科5-14000.csv:2"),
        (4, "外科5-14000.csv:3"),
    ]
    (record, _, _) = convert("medical_dialogue_csv", path, "zh", unlabelled=True)
    assert isinstance(record, Record) and (record.question, record.answer) == (
        "腰疼三天",
        None,
    )  # the ask holds the title


def test_medical_dialogue_csv_encoding_option_and_undecodable_bytes(tmp_path: Path) -> None:
    utf8 = tmp_path / "utf8.csv"
    utf8.write_text("department,title,ask,answer\n儿科,咳嗽,孩子咳嗽,多喝水\n", encoding="utf-8")
    (record,) = convert("medical_dialogue_csv", utf8, "zh", encoding="utf-8")
    assert isinstance(record, Record) and record.question == "孩子咳嗽"
    broken = tmp_path / "broken.csv"
    broken.write_bytes(
        "department,title,ask,answer\n儿科,咳嗽,孩子咳嗽,多喝水\n".encode("gb18030") + b"\xff\xff,a,b,c\n"
    )
    good, bad = convert("medical_dialogue_csv", broken, "zh")
    assert isinstance(good, Record) and good.answer == "多喝水"
    assert isinstance(bad, BadRecord) and bad.line == 3 and "line 3: not valid gb18030" in bad.reason
    (wrong,) = convert("medical_dialogue_csv", utf8, "zh")  # UTF-8 read as the default GB18030
    assert isinstance(wrong, BadRecord) and wrong.line == 2
    assert wrong.reason.startswith("unreadable CSV row: line 2: not valid gb18030")


COVID_TRAIN = (
    "category,query1,query2,label\n"
    "咳血,请问呕血与咯血有什么区别？,请问呕血与咯血这两者之间有什么区别？,1\n"
    "咳血,请问呕血与咯血有什么区别？,请问呕血与咯血怎么治疗？,0\n"
    '胸膜炎,"胸膜炎怎么治疗,能治好吗",得了胸膜炎能治愈吗,1\n'
)


def test_covid_similarity_csv_train_and_test_layouts(tmp_path: Path) -> None:
    records = convert("covid_similarity_csv", write_text(tmp_path / "train.csv", COVID_TRAIN), "zh")
    assert [(r.id, r.text, r.context, r.labels) for r in records if isinstance(r, Record)] == [
        ("train.csv:1", "请问呕血与咯血有什么区别？", "请问呕血与咯血这两者之间有什么区别？", ["1"]),
        ("train.csv:2", "请问呕血与咯血有什么区别？", "请问呕血与咯血怎么治疗？", ["0"]),
        ("train.csv:3", "胸膜炎怎么治疗,能治好吗", "得了胸膜炎能治愈吗", ["1"]),
    ]
    test = "id,category,query1,query2,label\n1482,上呼吸道感染,宝宝上呼吸道感染怎么办？,怎么应对宝宝的上呼吸道感染？,1\n"
    (record,) = convert("covid_similarity_csv", write_text(tmp_path / "test.csv", test), "zh")
    assert isinstance(record, Record) and (record.id, record.document_id) == ("1482", "test.csv:1482")
    assert record.task == "text_pair" and record.labels == ["1"]


def test_covid_similarity_csv_bad_labels_and_unlabelled(tmp_path: Path) -> None:
    text = "id,category,query1,query2,label\n7,感冒,a,b,\n8,感冒,a,b,2\n9,感冒,,b,0\n"
    path = write_text(tmp_path / "dev.csv", text)
    results = convert("covid_similarity_csv", path, "zh")
    found = reasons(results, 3)
    assert "no label: field 'label'" in found[0]
    assert "unknown label '2', expected one of ['0', '1']" in found[1]
    assert "'query1'" in found[2]
    assert [item.record_id for item in results if isinstance(item, BadRecord)] == ["7", "8", "9"]
    unlabelled = convert("covid_similarity_csv", path, "zh", unlabelled=True)
    assert isinstance(unlabelled[0], Record) and unlabelled[0].labels == []
    missing = convert("covid_similarity_csv", write_text(tmp_path / "x.csv", "query1,label\na,1\n"), "zh")
    assert "header lacks columns ['query2']" in reasons(missing, 1)[0]


def write_text(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# TREC 2017 LiveQA medical: a Train-1 question with two sub-questions (two answers to the first), a Train-2
# question (qid, no subject), and the test layout (Original-Question, RefAnswer / ReferenceAnswer).
LIVEQA_TRAIN = """<?xml version="1.0" encoding="UTF-8"?>
<NLM-QUESTIONS>
<NLM-QUESTION questionid="Q6" fRef="17730">
\t<SUBJECT>hypothyroidism</SUBJECT>
\t<MESSAGE>I was recently diagnosed with the disease and how I got it.</MESSAGE>
\t<SUB-QUESTIONS>
\t\t<SUB-QUESTION subqid="Q6-S1">
\t\t\t<ANNOTATIONS><FOCUS>hypothyroidism</FOCUS><TYPE>information</TYPE></ANNOTATIONS>
\t\t\t<ANSWERS>
\t\t\t\t<ANSWER answerid="Q6-S1-A1" pairid="8">Hypothyroidism is a condition in which the thyroid gland does not make enough thyroid hormone.</ANSWER>
\t\t\t\t<ANSWER answerid="Q6-S1-A2" pairid="9">Summary: your thyroid is a butterfly-shaped gland.</ANSWER>
\t\t\t</ANSWERS>
\t\t</SUB-QUESTION>
\t\t<SUB-QUESTION subqid="Q6-S2">
\t\t\t<ANNOTATIONS><FOCUS>hypothyroidism</FOCUS><TYPE>cause</TYPE></ANNOTATIONS>
\t\t\t<ANSWERS><ANSWER answerid="Q6-S2-A1" pairid="12">The most common cause is thyroiditis.</ANSWER></ANSWERS>
\t\t</SUB-QUESTION>
\t</SUB-QUESTIONS>
</NLM-QUESTION>
<NLM-QUESTION qid="9.0">
\t<SUBJECT></SUBJECT>
\t<MESSAGE>WHAT IS THE LATTEST RESEARCH ON USING D-Limonene AS A TREATMENT FOR CANCER??</MESSAGE>
\t<SUB-QUESTIONS>
\t<SUB-QUESTION>
\t<ANSWERS>
\t<ANSWER>Treatment options depend on the stage of the cancer.</ANSWER></ANSWERS></SUB-QUESTION></SUB-QUESTIONS>
</NLM-QUESTION>
</NLM-QUESTIONS>
"""

LIVEQA_TEST = """<?xml version="1.0" encoding="UTF-8"?>
<LiveQA2017-Medical-Test-Set-Full>
\t<NLM-QUESTION qid="TQ3">
\t\t<Original-Question qfile="1-131219913.xml.txt">
\t\t\t<SUBJECT>amphetamine salts 20 mg</SUBJECT>
\t\t\t<MESSAGE> are they gluten free\t</MESSAGE>
\t\t</Original-Question>
\t\t<NIST-PARAPHRASE>Are amphetamine salts of 20 mg dosage gluten free?</NIST-PARAPHRASE>
\t\t<ReferenceAnswers>
\t\t\t<ReferenceAnswer aid="TQ3A1">
\t\t\t\t<ANSWER>
\t\t\t\t\tActive Ingredients
\t\t\t\t\tAmphetamine Aspartate
\t\t\t\t</ANSWER>
\t\t\t\t<AnswerURL> https://www.cvs.com/drug/amphetamine-salts</AnswerURL>
\t\t\t</ReferenceAnswer>
\t\t\t<ReferenceAnswer aid="TQ3A2"><ANSWER>A single entity amphetamine product.</ANSWER></ReferenceAnswer>
\t\t</ReferenceAnswers>
\t</NLM-QUESTION>
\t<NLM-QUESTION qid="TQ1">
\t\t<Original-Question qfile="71.txt">
\t\t\t<SUBJECT>Noonan syndrome</SUBJECT>
\t\t\t<MESSAGE>What are the references with noonan syndrome and polycystic renal disease</MESSAGE>
\t\t</Original-Question>
\t\t<ReferenceAnswers>
\t\t\t<RefAnswer aid="TQ1A2"><ANSWER>10% of patients with Noonan syndrome have renal abnormalities.</ANSWER></RefAnswer>
\t\t</ReferenceAnswers>
\t</NLM-QUESTION>
</LiveQA2017-Medical-Test-Set-Full>
"""


def test_liveqa_training_layout_one_record_per_question(tmp_path: Path) -> None:
    path = write_text(tmp_path / "TREC-2017-LiveQA-Medical-Train-1.xml", LIVEQA_TRAIN)
    first, second = convert("liveqa_xml", path)
    assert isinstance(first, Record) and isinstance(second, Record)
    assert (first.id, first.document_id, first.task) == (
        "Q6",
        "TREC-2017-LiveQA-Medical-Train-1.xml:Q6",
        "qa_open",
    )
    assert first.question == "hypothyroidism\nI was recently diagnosed with the disease and how I got it."
    assert first.answer == (
        "Hypothyroidism is a condition in which the thyroid gland does not make enough thyroid hormone."
        "\n\nThe most common cause is thyroiditis."
    )
    assert (second.id, second.question) == (
        "9.0",
        "WHAT IS THE LATTEST RESEARCH ON USING D-Limonene AS A TREATMENT FOR CANCER??",
    )
    assert second.answer == "Treatment options depend on the stage of the cancer."


def test_liveqa_test_layout_takes_the_first_reference_answer(tmp_path: Path) -> None:
    path = write_text(tmp_path / "TREC-2017-LiveQA-Medical-Test-Questions-w-summaries.xml", LIVEQA_TEST)
    records = convert("liveqa_xml", path)
    assert [(r.id, r.question, r.answer) for r in records if isinstance(r, Record)] == [
        ("TQ3", "amphetamine salts 20 mg\nare they gluten free", "Active Ingredients\nAmphetamine Aspartate"),
        (
            "TQ1",
            "Noonan syndrome\nWhat are the references with noonan syndrome and polycystic renal disease",
            "10% of patients with Noonan syndrome have renal abnormalities.",
        ),
    ]


def test_liveqa_refuses_a_question_without_answer_unless_unlabelled_and_broken_xml(tmp_path: Path) -> None:
    text = (
        '<NLM-QUESTIONS><NLM-QUESTION qid="1"><SUBJECT>flu</SUBJECT><MESSAGE>What helps?</MESSAGE>'
        "<SUB-QUESTIONS><SUB-QUESTION><ANSWERS></ANSWERS></SUB-QUESTION></SUB-QUESTIONS></NLM-QUESTION>"
        '<NLM-QUESTION><MESSAGE>x</MESSAGE></NLM-QUESTION><NLM-QUESTION qid="3"><SUBJECT/><MESSAGE/>'
        "</NLM-QUESTION></NLM-QUESTIONS>"
    )
    path = write_text(tmp_path / "q.xml", text)
    results = convert("liveqa_xml", path)
    found = reasons(results, 3)
    assert "no label: field 'ANSWER'" in found[0]
    assert "neither a questionid nor a qid" in found[1] and "both SUBJECT and MESSAGE are empty" in found[2]
    assert [item.record_id for item in results if isinstance(item, BadRecord)] == ["1", None, "3"]
    record = convert("liveqa_xml", path, unlabelled=True)[0]
    assert isinstance(record, Record) and (record.question, record.answer) == ("flu\nWhat helps?", None)
    broken = write_text(tmp_path / "broken.xml", LIVEQA_TRAIN.replace("</NLM-QUESTIONS>", ""))
    *good, cut = convert("liveqa_xml", broken)
    assert len(good) == 2 and isinstance(cut, BadRecord) and "not well-formed XML" in cut.reason
    assert cut.line == 29  # the end of the file, where the root element is still open
