"""Malformed input: each converter reports the bad item (file, line or id, reason) and carries on."""

from __future__ import annotations

import json

from taiyi_ray.config.data import Language
from taiyi_ray.data.formats import FORMATS, BadRecord, Source
from taiyi_ray.data.schema import Record
from taiyi_ray.storage import Storage


def convert(fmt: str, path: str, language: Language = "en") -> list[Record | BadRecord]:
    source = Source(uri=path, dataset="t", split="test", language=language, storage=Storage())
    return list(FORMATS[fmt](source))


def bad_items(items: list[Record | BadRecord]) -> list[BadRecord]:
    return [item for item in items if isinstance(item, BadRecord)]


def good_items(items: list[Record | BadRecord]) -> list[Record]:
    return [item for item in items if isinstance(item, Record)]


def test_bio_wrong_column_count_and_unknown_tag(write) -> None:
    path = write(
        "bio.tsv",
        "Aspirin\tB-Chemical\nworks\tO\n\nthree\tcolumns\tO\n\nfine\tO\n\nodd\tX-Chemical\n\nlast\tB-Disease\n",
    )
    items = convert("bio_tsv", path)
    problems = bad_items(items)
    assert [(item.line, item.record_id) for item in problems] == [(4, "bio.tsv:2"), (8, "bio.tsv:4")]
    assert "expected 2 tab-separated columns (token, tag), got 3" in problems[0].reason
    assert "unknown tag 'X-Chemical'" in problems[1].reason
    assert [record.text for record in good_items(items)] == ["Aspirin works", "fine", "last"]
    assert problems[0].describe().startswith(f"{path}:4 (record bio.tsv:2): expected 2")


def test_bio_inside_without_begin_follows_conlleval(write, caplog) -> None:
    path = write(
        "bio.tsv", "the\tO\nheart\tI-Disease\nattack\tI-Disease\nand\tO\nfoo\tB-Chemical\nbar\tI-Disease\n\n"
    )
    (record,) = convert("bio_tsv", path)
    assert isinstance(record, Record)
    assert [(entity.type, entity.text, entity.offsets) for entity in record.entities] == [
        ("Disease", "heart attack", [(4, 16)]),
        ("Chemical", "foo", [(21, 24)]),
        ("Disease", "bar", [(25, 28)]),  # I- after another type also starts a chunk
    ]
    assert "2 I- tags did not continue a chunk" in caplog.text


def test_bio_invalid_utf8_line(write) -> None:
    path = write("bio.tsv", b"ok\tO\n\n\xff\xfebad\tO\n\nlast\tO\n")
    items = convert("bio_tsv", path)
    (problem,) = bad_items(items)
    assert problem.line == 3 and "not valid UTF-8" in problem.reason
    assert len(good_items(items)) == 2


PUBTATOR_OK = "1|t|Aspirin harms.\n1|a|It causes ulcers.\n1\t0\t7\tAspirin\tChemical\tD001241\n1\t25\t31\tulcers\tDisease\tD014456\n1\tCID\tD001241\tD014456\n"


def test_pubtator_offsets_outside_text_and_mismatched_mention(write) -> None:
    broken_offsets = "2|t|Short.\n2|a|Text.\n2\t0\t99\tShort\tChemical\tD1\n"
    mismatch = "3|t|Heparin bleeding.\n3|a|More.\n3\t0\t7\tAspirin\tChemical\tD1\n"
    path = write("cdr.txt", PUBTATOR_OK + "\n" + broken_offsets + "\n" + mismatch + "\n")
    items = convert("pubtator_cdr", path)
    problems = bad_items(items)
    assert [(item.record_id, item.line) for item in problems] == [("2", 9), ("3", 13)]
    assert "offsets [0, 99) lie outside the text (length 12)" in problems[0].reason
    assert "mention text 'Aspirin' does not match the text at [0, 7): 'Heparin'" in problems[1].reason
    assert [record.id for record in good_items(items)] == ["1"]


def test_pubtator_wrong_columns_missing_title_and_dangling_relation(write) -> None:
    wrong_columns = "4|t|A.\n4|a|B.\n4\t0\t1\tA\n"
    no_title = "5|a|Only an abstract.\n"
    dangling = "6|t|Aspirin.\n6|a|x\n6\t0\t7\tAspirin\tChemical\tD001241\n6\tCID\tD001241\tD999999\n"
    short_relation = "7|t|A.\n7|a|B.\n7\tCID\tD1\n"
    path = write("cdr.txt", "\n".join([wrong_columns, no_title, dangling, short_relation]) + "\n")
    problems = bad_items(convert("pubtator_cdr", path))
    assert [(problem.record_id, problem.line) for problem in problems] == [
        ("4", 3),
        ("5", 5),
        ("6", 7),
        ("7", 14),
    ]
    assert (
        "a mention line needs 6 or 7 (PMID, start, end, mention, type, ids[, individual mentions]) tab-separated columns, got 4"
        in problems[0].reason
    )
    assert "document 5 has no title (PMID|t|...) line" in problems[1].reason
    assert (
        "relation 'CID' refers to 'MESH:D999999', which is no entity id or concept id" in problems[2].reason
    )
    assert "a relation line needs 4 (PMID, type, id, id) tab-separated columns, got 3" in problems[3].reason


def test_cmeee_mismatch_outside_unknown_type_and_invalid_json(write) -> None:
    items = [
        {"text": "患者发热。", "entities": [{"start_idx": 2, "end_idx": 3, "type": "sym", "entity": "发热"}]},
        {"text": "患者发热。", "entities": [{"start_idx": 1, "end_idx": 2, "type": "sym", "entity": "发热"}]},
        {"text": "头痛", "entities": [{"start_idx": 0, "end_idx": 5, "type": "sym", "entity": "头痛"}]},
        {"text": "头痛", "entities": [{"start_idx": 0, "end_idx": 1, "type": "xyz", "entity": "头痛"}]},
    ]
    path = write(
        "cmeee.json", json.dumps(items, ensure_ascii=False, indent=2)[:-2] + ',\n  {"text": oops}\n]'
    )
    results = convert("cmeee", path, "zh")
    problems = bad_items(results)
    assert [problem.record_id for problem in problems] == [
        "cmeee.json:2",
        "cmeee.json:3",
        "cmeee.json:4",
        None,
    ]
    assert "does not match the text at [start_idx 1, end_idx 2] (end inclusive): '者发'" in problems[0].reason
    assert "lies outside the text (length 2)" in problems[1].reason
    assert "unknown type 'xyz'" in problems[2].reason and "'dis'" in problems[2].reason
    assert problems[3].reason.startswith("not valid JSON at line 46") and problems[3].line == 46
    (good,) = good_items(results)
    assert good.entities[0].offsets == [(2, 4)]


def test_cmeie_text_not_found_complex_object_and_invalid_json(write) -> None:
    ok = {
        "text": "失眠症可用药物治疗",
        "spo_list": [
            {
                "predicate": "药物治疗",
                "subject": "失眠症",
                "subject_type": "疾病",
                "object": {"@value": "药物"},
                "object_type": {"@value": "药物"},
            }
        ],
    }
    missing = {
        "text": "头痛",
        "spo_list": [
            {
                "predicate": "病因",
                "subject": "头痛",
                "subject_type": "疾病",
                "object": "感冒",
                "object_type": "社会学",
            }
        ],
    }
    complex_object = {
        "text": "头痛",
        "spo_list": [
            {
                "predicate": "病因",
                "subject": "头痛",
                "subject_type": "疾病",
                "object": {"@value": "头", "inWork": "x"},
                "object_type": "社会学",
            }
        ],
    }
    lines = [json.dumps(item, ensure_ascii=False) for item in (ok, missing, complex_object)] + ["{not json"]
    results = convert("cmeie", write("cmeie.jsonl", "\n".join(lines) + "\n"), "zh")
    problems = bad_items(results)
    assert [(problem.line, problem.record_id) for problem in problems] == [
        (2, "cmeie.jsonl:2"),
        (3, "cmeie.jsonl:3"),
        (4, "cmeie.jsonl:4"),
    ]
    assert "社会学 '感冒' does not occur in the text" in problems[0].reason
    assert "keys ['inWork'] besides '@value'" in problems[1].reason
    assert problems[2].reason.startswith("not valid JSON")
    (good,) = good_items(results)
    assert good.relations[0].type == "药物治疗"


def test_hoc_unknown_label_index_and_wrong_columns(write) -> None:
    header = "labels\tsentence\tindex\n"
    rows = [
        "0_0,1_1,2_0,3_0,4_0,5_0,6_0,7_0,8_0,9_0\tImmune escape .\t111_s0",
        "0_0,1_0,12_1\tBad index .\t111_s1",
        "0_0,1_0\tmissing index column",
        "0_2,1_0\tBad flag .\t111_s3",
        "0_0,1_0,2_0,3_0,4_0,5_0,6_0,7_0,8_0,9_0\tNothing .\t111_s4",
    ]
    results = convert("hoc_tsv", write("hoc.tsv", header + "\n".join(rows) + "\n"))
    problems = bad_items(results)
    assert [problem.line for problem in problems] == [3, 4, 5]
    assert "unknown label index '12' in '12_1': expected 0..9" in problems[0].reason
    assert "expected 3 tab-separated columns (labels, sentence, index), got 2" in problems[1].reason
    assert "expected INDEX_0 or INDEX_1" in problems[2].reason
    assert [record.labels for record in good_items(results)] == [["avoiding immune destruction"], ["none"]]


def test_kuake_unknown_label(write) -> None:
    items = [
        {"id": "s1", "query": "头痛怎么办", "label": "治疗方案"},
        {"id": "s2", "query": "x", "label": "不存在"},
    ]
    results = convert("kuake_qic", write("q.json", json.dumps(items, ensure_ascii=False)), "zh")
    (problem,) = bad_items(results)
    assert problem.record_id == "s2" and "unknown label '不存在'" in problem.reason


def test_pubmedqa_and_medqa_bad_answers(write) -> None:
    pubmedqa = {
        "1": {"QUESTION": "Q?", "CONTEXTS": ["c"], "final_decision": "perhaps"},
        "2": {"QUESTION": "Q?", "CONTEXTS": ["c"], "final_decision": "no"},
    }
    problems = bad_items(convert("pubmedqa", write("p.json", json.dumps(pubmedqa, indent=4))))
    assert [(problem.record_id, problem.line) for problem in problems] == [("1", 2)]
    assert "final_decision 'perhaps' is not one of ['yes', 'no', 'maybe']" in problems[0].reason
    medqa = [
        {"question": "Q1", "options": {"A": "x", "B": "y"}, "answer": "y", "answer_idx": "B"},
        {"question": "Q2", "options": {"A": "x", "B": "y"}, "answer": "x", "answer_idx": "B"},
        {"question": "Q3", "options": {"A": "x", "B": "y"}, "answer_idx": "F"},
    ]
    lines = "\n".join(json.dumps(item) for item in medqa) + "\n\n{broken\n"
    results = convert("medqa_jsonl", write("m.jsonl", lines))
    problems = bad_items(results)
    assert [problem.line for problem in problems] == [2, 3, 5]
    assert "answer text 'x' does not match option B: 'y'" in problems[0].reason
    assert "answer_idx 'F' is not one of the options ['A', 'B']" in problems[1].reason
    assert "not valid JSON" in problems[2].reason
    assert [record.answer for record in good_items(results)] == ["B"]


def test_litcovid_wrong_columns_and_unknown_topic(write) -> None:
    csv_text = (
        "pmid,journal,title,abstract,keywords,pub_type,authors,doi,label\n"
        '1,J,"Masks, and more",Abstract one,k,Article,A,doi1,Prevention;Transmission\n'
        "2,J,Too,few\n"
        "3,J,Title,Abstract,k,Article,A,doi3,Astrology\n"
    )
    results = convert("litcovid_csv", write("litcovid.csv", csv_text))
    problems = bad_items(results)
    assert [(problem.line, problem.record_id) for problem in problems] == [(3, "2"), (4, "3")]
    assert "expected 9 columns as in the header, got 4" in problems[0].reason
    assert "unknown topics ['Astrology']" in problems[1].reason
    (good,) = good_items(results)
    assert good.labels == ["Prevention", "Transmission"] and good.text == "Masks, and more\nAbstract one"


def test_dialogue_formats_reject_bad_roles_and_missing_answers(write) -> None:
    lines = [
        {"id": "a", "conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]},
        {"conversations": [{"from": "alien", "value": "?"}]},
        {"messages": [{"role": "user", "content": "only a question"}]},
    ]
    results = convert(
        "sharegpt_jsonl", write("d.jsonl", "\n".join(json.dumps(line) for line in lines) + "\n")
    )
    problems = bad_items(results)
    assert "unknown role 'alien'" in problems[0].reason and problems[0].line == 2
    assert "no assistant turn" in problems[1].reason
    alpaca = [
        {"instruction": "Define fever.", "output": "A raised body temperature."},
        {"instruction": "No output"},
    ]
    problems = bad_items(convert("alpaca_json", write("a.json", json.dumps(alpaca))))
    assert len(problems) == 1 and "field 'output' must be a non-empty string" in problems[0].reason


def test_unified_jsonl_validates_offsets(write) -> None:
    good = {
        "id": "1",
        "document_id": "1",
        "dataset": "d",
        "language": "en",
        "task": "ner",
        "text": "aspirin",
        "entities": [{"id": "T1", "type": "Chemical", "text": "aspirin", "offsets": [[0, 7]]}],
    }
    shifted = dict(
        good, id="2", entities=[{"id": "T1", "type": "Chemical", "text": "aspirin", "offsets": [[1, 8]]}]
    )
    results = convert("unified_jsonl", write("u.jsonl", json.dumps(good) + "\n" + json.dumps(shifted) + "\n"))
    (problem,) = bad_items(results)
    assert problem.record_id == "2" and problem.line == 2 and "lie outside the text" in problem.reason
