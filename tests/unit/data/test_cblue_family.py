"""The CBLUE family and Taiyi's instruction data, on small files written here in each source's exact layout.

No real CHIP-STS, KUAKE-QQR, KUAKE-QTR, CHIP-CTC, CMID, CHIP-CDN, CHIP-CDEE, IMCS-V2 or Taiyi instruction
file is available here (../shared/data holds only CMeEE, CMeIE and KUAKE-QIC, tested on their real files in
test_formats_real.py): these formats are tested only on files written from their published specification
(the CBLUE README and data processors, CBLUE's format checkers, the IMCS21 README, CMID's README, and
Taiyi-LLM's `Taiyi_Instruction_Data_Example.jsonl`), with items copied from those examples.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from taiyi_ray.data.convert import convert_file
from taiyi_ray.data.formats import FORMAT_LANGUAGES, FORMAT_TASKS, FORMATS, BadRecord, Source
from taiyi_ray.data.schema import Record
from taiyi_ray.storage import Storage


def convert(fmt: str, path: str, unlabelled: bool = False, **options: Any) -> list[Record | BadRecord]:
    source = Source(path, "t", "train", "zh", Storage(), options=options, unlabelled=unlabelled)
    return list(FORMATS[fmt](source))


def split(items: list[Record | BadRecord]) -> tuple[list[Record], list[BadRecord]]:
    return [i for i in items if isinstance(i, Record)], [i for i in items if isinstance(i, BadRecord)]


def dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2)


def test_registry_names_tasks_and_languages() -> None:
    cblue = sorted(name for name in FORMATS if name.startswith("cblue_"))
    assert len(cblue) == 14 and all(FORMAT_LANGUAGES[name] == "zh" for name in cblue)
    for alias, old in (("cblue_cmeee", "cmeee"), ("cblue_cmeie", "cmeie"), ("cblue_kuake_qic", "kuake_qic")):
        assert FORMATS[alias] is FORMATS[old] and FORMAT_TASKS[alias] == FORMAT_TASKS[old]
    assert FORMAT_TASKS["cblue_chip_cdn"] == ("generation",) and FORMAT_TASKS["cblue_chip_cdee"] == ("ee",)
    assert (
        FORMAT_TASKS["taiyi_instruction"] == ("dialogue",) and FORMAT_LANGUAGES["taiyi_instruction"] == "zh"
    )


def test_sentence_pairs_and_their_label_sets(write) -> None:
    sts = [
        {"id": "1", "text1": "糖尿病能吃减肥药吗？", "text2": "糖尿病为什么不能吃减肥药", "label": "1", "category": "diabetes"},
        {"id": "2", "text1": "乙肝携带可以办健康证吗", "text2": "乙肝五项怎么看", "label": "2", "category": "hepatitis"},
    ]  # fmt: skip
    records, problems = split(convert("cblue_chip_sts", write("CHIP-STS_dev.json", dump(sts))))
    assert [(r.id, r.task, r.text, r.context, r.labels, r.document_id) for r in records] == [
        ("1", "text_pair", "糖尿病能吃减肥药吗？", "糖尿病为什么不能吃减肥药", ["1"], "CHIP-STS_dev.json:1")
    ]
    assert [p.record_id for p in problems] == [
        "2"
    ] and "unknown label '2', expected one of ['0', '1']" in problems[0].reason
    qqr = [
        {"id": "s1", "query1": "小孩子打呼噜什么原因", "query2": "孩子打呼噜是什么原因", "label": "2"},
        {"id": "s2", "query1": "小孩子打呼噜什么原因", "query2": "宝宝打呼噜", "label": "NA"},
        {"id": "s3", "query1": "头痛", "query2": "头疼", "label": 1},
    ]
    records, problems = split(convert("cblue_kuake_qqr", write("qqr.json", dump(qqr))))
    assert [(r.text, r.context, r.labels) for r in records] == [
        ("小孩子打呼噜什么原因", "孩子打呼噜是什么原因", ["2"]),
        ("头痛", "头疼", ["1"]),  # an integer label is read as its string
    ]
    assert [p.record_id for p in problems] == ["s2"] and "unknown label 'NA'" in problems[0].reason
    qtr = [{"id": "s1", "query": "咳嗽到腹肌疼", "title": "感冒咳嗽引起的腹肌疼痛", "label": "3"}]
    (record,) = convert("cblue_kuake_qtr", write("qtr.json", dump(qtr)))
    assert isinstance(record, Record) and (record.context, record.labels) == ("感冒咳嗽引起的腹肌疼痛", ["3"])


def test_ctc_and_cmid_classification(write) -> None:
    ctc = [
        {"id": "s1", "label": "Addictive Behavior", "text": " （2）重度吸烟（大于10支/天）及酗酒患者"},
        {"id": "s2", "label": "Smoking", "text": "吸烟者"},
    ]
    records, problems = split(convert("cblue_chip_ctc", write("ctc.json", dump(ctc))))
    assert [(r.id, r.task, r.text, r.labels) for r in records] == [
        ("s1", "tc", " （2）重度吸烟（大于10支/天）及酗酒患者", ["Addictive Behavior"])
    ]
    assert problems[0].record_id == "s2" and "unknown label 'Smoking'" in problems[0].reason
    cmid = [
        {"originalText": "间质性肺炎的症状?", "entities": [], "seg_result": ["间质性肺炎", "的", "症状", "?"],
         "label_4class": ["病症"], "label_36class": ["临床表现"]},
        {"originalText": "阿莫西林多少钱", "label_4class": ["药物"], "label_36class": ["价钱", "用法"]},
        {"originalText": "怎么办", "label_4class": ["其他"]},
    ]  # fmt: skip
    path = write("CMID.json", dump(cmid))
    records, problems = split(convert("cblue_cmid", path))
    assert [(r.id, r.text, r.labels) for r in records] == [("CMID.json:1", "间质性肺炎的症状?", ["临床表现"])]
    assert [p.record_id for p in problems] == ["CMID.json:2", "CMID.json:3"]
    assert "label_36class holds 2 labels" in problems[0].reason
    assert "field 'label_36class' is missing" in problems[1].reason
    records, problems = split(convert("cblue_cmid", path, level="4class"))
    assert [r.labels for r in records] == [["病症"], ["药物"], ["其他"]] and not problems


def test_cdn_is_generation_of_the_standard_terms(write) -> None:
    cdn = [
        {"text": "左膝退变伴游离体", "normalized_result": "膝骨关节病##膝关节游离体"},
        {"text": "右乳腺癌IV期"},
    ]
    records, problems = split(convert("cblue_chip_cdn", write("CHIP-CDN_train.json", dump(cdn))))
    assert [(r.id, r.task, r.text, r.answer) for r in records] == [
        ("CHIP-CDN_train.json:1", "generation", "左膝退变伴游离体", "膝骨关节病##膝关节游离体")
    ]
    assert problems[0].record_id == "CHIP-CDN_train.json:2" and "'normalized_result'" in problems[0].reason


CDEE_ITEM = {
    "id": 1425,
    "text": "偶有左侧面颈部轻微疼痛，无发热。",
    "event": [
        {"core_name": "疼痛", "tendency": "", "character": ["轻微"], "anatomy_list": ["左侧面", "左侧颈部"]},
        {"core_name": "发热", "tendency": "否定", "character": [], "anatomy_list": []},
        {"core_name": "咳痰", "tendency": "不确定", "character": ["轻微"], "anatomy_list": []},
    ],
}


def test_cdee_events_point_at_argument_entities(write) -> None:
    (record,) = convert("cblue_chip_cdee", write("CHIP-CDEE_dev.json", dump([CDEE_ITEM])))
    assert isinstance(record, Record) and (record.id, record.task) == ("1425", "ee")
    assert [(e.id, e.type, e.text, e.offsets) for e in record.entities] == [
        ("T1", "character", "轻微", [(7, 9)]),
        ("T2", "anatomy", "左侧面", [(2, 5)]),
        ("T3", "anatomy", "左侧颈部", None),  # a normalised word that the text does not spell
        ("T4", "tendency", "否定", None),
        ("T5", "tendency", "不确定", None),
    ]
    events = [(e.id, e.type, e.trigger, e.trigger_offsets) for e in record.events]
    assert events == [("E1", "临床发现", "疼痛", [(9, 11)]), ("E2", "临床发现", "发热", [(13, 15)]),
                      ("E3", "临床发现", "咳痰", None)]  # fmt: skip
    roles = [[(a.role, a.ref_id) for a in e.arguments] for e in record.events]
    assert roles == [[("character", "T1"), ("anatomy", "T2"), ("anatomy", "T3")], [("tendency", "T4")],
                     [("tendency", "T5"), ("character", "T1")]]  # fmt: skip


def test_cdee_bad_tendency_and_missing_events(write) -> None:
    bad_tendency = {
        **CDEE_ITEM,
        "id": 2,
        "event": [{"core_name": "疼痛", "tendency": "肯定", "character": []}],
    }
    unlabelled = {"id": 3, "text": "无发热。"}
    path = write("cdee.json", dump([bad_tendency, unlabelled]))
    records, problems = split(convert("cblue_chip_cdee", path))
    assert not records and [p.record_id for p in problems] == ["2", "3"]
    assert "event[1].tendency '肯定' is not one of ['', '不确定', '否定']" in problems[0].reason
    assert "field 'event' is missing" in problems[1].reason
    records, _ = split(convert("cblue_chip_cdee", path, unlabelled=True))
    assert [(r.id, r.events) for r in records] == [("3", [])]


def imcs_dialogue(labelled: bool = True) -> dict[str, Any]:
    utterances = [
        ("1", "医生", "宝宝咳嗽吗？", "Request-Symptom", "O O B-Symptom I-Symptom O O", ["咳嗽"], ["1"]),
        ("2", "患者", "咳嗽，吃了蒙脱石散", "Inform-Symptom", "B-Symptom I-Symptom O O O B-Drug I-Drug I-Drug I-Drug",
         ["咳嗽"], ["1"]),
    ]  # fmt: skip
    dialogue: dict[str, Any] = {"self_report": "孩子咳嗽两天", "dialogue": []}
    for sentence_id, speaker, sentence, act, bio, norm, kind in utterances:
        utterance = {"sentence_id": sentence_id, "speaker": speaker, "sentence": sentence}
        if labelled:
            utterance |= {"dialogue_act": act, "BIO_label": bio, "symptom_norm": norm, "symptom_type": kind}
        dialogue["dialogue"].append(utterance)
    if labelled:
        dialogue |= {
            "diagnosis": "小儿支气管炎",
            "explicit_info": {"Symptom": ["咳嗽"]},
            "implicit_info": {"Symptom": {"咳嗽": "1", "发热": "0"}},
            "report": [
                {"主诉": "咳嗽两天", "现病史": "咳嗽", "辅助检查": "暂缺", "既往史": "不详", "诊断": "小儿支气管炎", "建议": "雾化"},
                {"主诉": "咳嗽", "现病史": "咳嗽", "辅助检查": "无", "既往史": "无", "诊断": "支气管炎", "建议": "观察"},
            ],
        }  # fmt: skip
    return dialogue


DIALOGUE_TEXT = "患者自述：孩子咳嗽两天\n医生：宝宝咳嗽吗？\n患者：咳嗽，吃了蒙脱石散"


def test_imcs_v2_utterance_formats(write) -> None:
    broken = imcs_dialogue()
    broken["dialogue"][1] = {**broken["dialogue"][1], "BIO_label": "O O", "dialogue_act": "Chat"}
    content = dump({"10712402": imcs_dialogue(), "10035395": broken})
    path = write("IMCS-V2_dev.json", content)
    member_line = content.splitlines().index('  "10035395": {') + 1  # a bad utterance: its dialogue's line
    records, problems = split(convert("cblue_imcs_v2_ner", path))
    assert [(r.id, r.document_id, r.text) for r in records] == [
        ("10712402:1", "10712402", "宝宝咳嗽吗？"), ("10712402:2", "10712402", "咳嗽，吃了蒙脱石散"),
        ("10035395:1", "10035395", "宝宝咳嗽吗？"),
    ]  # fmt: skip
    assert [(e.type, e.text, e.offsets) for e in records[1].entities] == [
        ("Symptom", "咳嗽", [(0, 2)]),
        ("Drug", "蒙脱石散", [(5, 9)]),
    ]
    assert [p.record_id for p in problems] == ["10035395:2"] and problems[0].line == member_line
    assert "BIO_label has 2 tags for 9 characters" in problems[0].reason
    records, problems = split(convert("cblue_imcs_v2_dac", path))
    assert [(r.id, r.task, r.text, r.labels) for r in records] == [
        ("10712402:1", "tc", "医生：宝宝咳嗽吗？", ["Request-Symptom"]),
        ("10712402:2", "tc", "患者：咳嗽，吃了蒙脱石散", ["Inform-Symptom"]),
        ("10035395:1", "tc", "医生：宝宝咳嗽吗？", ["Request-Symptom"]),
    ]
    assert [p.record_id for p in problems] == ["10035395:2"] and "unknown dialogue_act 'Chat'" in problems[
        0
    ].reason


def test_imcs_v2_dialogue_formats(write) -> None:
    path = write("IMCS-V2_train.json", dump({"10712402": imcs_dialogue()}))
    (sr,) = convert("cblue_imcs_v2_sr", path)
    assert isinstance(sr, Record) and (sr.id, sr.task, sr.text) == (
        "10712402",
        "tc_multilabel",
        DIALOGUE_TEXT,
    )
    assert sr.labels == ["咳嗽（有）", "发热（无）"]
    (mrg,) = convert("cblue_imcs_v2_mrg", path)
    assert isinstance(mrg, Record) and (mrg.task, mrg.text) == ("generation", DIALOGUE_TEXT)
    assert (
        mrg.answer
        == "主诉：咳嗽两天\n现病史：咳嗽\n辅助检查：暂缺\n既往史：不详\n诊断：小儿支气管炎\n建议：雾化"
    )


def test_imcs_v2_test_input_needs_unlabelled(write) -> None:
    path = write("IMCS-V2_test.json", dump({"10115809": imcs_dialogue(labelled=False)}))
    expected = {"cblue_imcs_v2_ner": "BIO_label", "cblue_imcs_v2_dac": "dialogue_act",
                "cblue_imcs_v2_sr": "implicit_info.Symptom", "cblue_imcs_v2_mrg": "report"}  # fmt: skip
    for fmt, field in expected.items():
        records, problems = split(convert(fmt, path))
        assert not records and problems and all(f"field {field!r} is missing" in p.reason for p in problems)
        records, problems = split(convert(fmt, path, unlabelled=True))
        assert records and not problems
        assert all(not (r.entities or r.labels or r.answer) for r in records), fmt
    (array,) = convert("cblue_imcs_v2_sr", write("array.json", dump([imcs_dialogue()])))
    assert isinstance(array, BadRecord) and "expected a top-level JSON object" in array.reason


def test_old_cblue_formats_refuse_missing_labels(write) -> None:
    _, (qic,) = split(convert("kuake_qic", write("q.json", dump([{"id": "s9", "query": "头痛怎么办"}]))))
    assert qic.record_id == "s9" and "field 'label' is missing" in qic.reason
    _, (ner,) = split(convert("cblue_cmeee", write("e.json", dump([{"text": "发热"}]))))
    assert ner.record_id == "e.json:1" and "field 'entities' is missing" in ner.reason
    (empty,) = convert("cmeee", write("f.json", dump([{"text": "发热", "entities": []}])))
    assert isinstance(empty, Record) and empty.entities == []  # a sentence without mentions is labelled
    _, (re,) = split(convert("cmeie", write("r.jsonl", json.dumps({"text": "发热"}, ensure_ascii=False))))
    assert re.record_id == "r.jsonl:1" and "field 'spo_list' is missing" in re.reason


def test_quarantine_and_unlabelled_through_convert_file(write, tmp_path: Path) -> None:
    qtr = [
        {"id": "s1", "query": "咳嗽到腹肌疼", "title": "感冒咳嗽引起的腹肌疼痛", "label": "2"},
        {"id": "s2", "query": "烂牙神经的药对怀孕胚胎", "title": "怀孕两个月治疗牙齿烂牙神经"},
    ]
    source, output = write("KUAKE-QTR_test.json", dump(qtr)), str(tmp_path / "out.jsonl")
    report = convert_file("cblue_kuake_qtr", source, output, "quarantine", Storage())
    assert (report.records, report.rejects) == (1, 1) and report.rejects_path
    (reject,) = [
        json.loads(line) for line in Path(report.rejects_path).read_text(encoding="utf-8").splitlines()
    ]
    assert (reject["record_id"], reject["line"]) == ("s2", 8) and "field 'label' is missing" in reject[
        "reason"
    ]
    (written,) = [json.loads(line) for line in Path(output).read_text(encoding="utf-8").splitlines()]
    assert (written["language"], written["split"], written["labels"]) == ("zh", "test", ["2"])
    report = convert_file("cblue_kuake_qtr", source, output, "quarantine", Storage(), unlabelled=True)
    assert (report.records, report.rejects, report.rejects_path) == (2, 0, None)


TAIYI_LINES = [
    {"conversation_id": 52507, "dataset": "paramed", "category": "MT-zh2en", "language": "zh-en",
     "conversation": [{"human": "翻译成英文：“单纯化疗组”", "assistant": "The chemotherapy-alone group"}]},
    {"conversation_id": 9896, "category": "TC", "dataset": "geokhoj_v1", "language": "en",
     "conversation": [{"human": "Document triage: normal kidney", "assistant": "Result: control"},
                      {"human": "Why?", "assistant": "It is a normal tissue sample."}]},
    {"conversation_id": 1883, "category": "NER", "dataset": "diakg", "language": "zh",
     "conversation": [{"human": "实体识别：糖尿病足", "assistant": "疾病：糖尿病足"}, {"human": "还有吗？"}]},
]  # fmt: skip


def test_taiyi_instruction_conversations(write) -> None:
    path = write(
        "taiyi.jsonl", "\n".join(json.dumps(line, ensure_ascii=False) for line in TAIYI_LINES) + "\n"
    )
    records, problems = split(convert("taiyi_instruction", path))
    assert [(r.id, r.task, r.language, len(r.turns)) for r in records] == [
        ("paramed:52507", "dialogue", "zh", 2),  # en-zh translation: the source's language
        ("geokhoj_v1:9896", "dialogue", "en", 4),
    ]
    assert [(t.role, t.content) for t in records[1].turns[2:]] == [
        ("user", "Why?"),
        ("assistant", "It is a normal tissue sample."),
    ]
    assert [(p.record_id, p.line) for p in problems] == [("taiyi.jsonl:3", 3)]
    assert (
        "conversation turn 2: expected a 'human' and an 'assistant' text, got ['human']" in problems[0].reason
    )
