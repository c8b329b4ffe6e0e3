"""The rules no reference library implements: BC5CDR's concept-level CID, case-insensitive RE, what
counts as wrong, and the errors that name the record and what was expected."""

from __future__ import annotations

import contextlib
import io
import json
import random
from pathlib import Path

import pytest

from taiyi_ray.cli import main
from taiyi_ray.data.schema import Entity, Normalized, Record, Relation
from taiyi_ray.eval.scoring import ScoringError, score_records


def mesh(*ids: str) -> list[Normalized]:
    return [Normalized(db="MESH", id=identifier) for identifier in ids]


def cid_gold() -> Record:
    """famotidine (C1, twice, two spellings) induces delirium (D1) and confusion (D2); one composite
    mention 'delirium-confusion' names both diseases."""
    text = "Famotidine and famotidine cause delirium, confusion and delirium-confusion."
    spans = {"Famotidine": 0, "famotidine": 15, "delirium": 32, "confusion": 42, "delirium-confusion": 56}
    entities = [
        Entity(id="T1", type="Chemical", text="Famotidine", offsets=[(0, 10)], normalized=mesh("C1")),
        Entity(id="T2", type="Chemical", text="famotidine", offsets=[(15, 25)], normalized=mesh("C1")),
        Entity(id="T3", type="Disease", text="delirium", offsets=[(32, 40)], normalized=mesh("D1")),
        Entity(id="T4", type="Disease", text="confusion", offsets=[(42, 51)], normalized=mesh("D2")),
        Entity(
            id="T5",
            type="Disease",
            text="delirium-confusion",
            offsets=[(56, 74)],
            normalized=mesh("D1", "D2"),
        ),
    ]
    for entity in entities:
        assert text[spans[entity.text] : spans[entity.text] + len(entity.text)] == entity.text
    relations = [
        Relation(type="CID", head_id="MESH:C1", tail_id="MESH:D1"),
        Relation(type="CID", head_id="MESH:C1", tail_id="MESH:D2"),
    ]
    return Record(
        id="9", document_id="9", dataset="cdr", language="en", task="re", text=text,
        entities=entities, relations=relations,
    )  # fmt: skip


def predicted_pairs(pairs: list[tuple[str, str]], record_id: str = "9") -> Record:
    entities: dict[str, Entity] = {}
    relations = []
    for head, tail in pairs:
        for text in (head, tail):
            entities.setdefault(text, Entity(id=f"P{len(entities) + 1}", type="x", text=text))
        relations.append(Relation(type="CID", head_id=entities[head].id, tail_id=entities[tail].id))
    return Record(
        id=record_id, document_id="ignored", dataset="cdr", language="en", task="re",
        entities=list(entities.values()), relations=relations,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        # one pair, any mention of each concept, any case: a hit; the other gold pair is missed
        ([("famotidine", "delirium")], (1, 0, 1)),
        ([("FAMOTIDINE", "Delirium")], (1, 0, 1)),
        # the same concept pair named by other mentions counts once, and is no false positive
        ([("Famotidine", "delirium"), ("famotidine", "delirium-confusion")], (2, 0, 0)),
        ([("Famotidine", "delirium"), ("famotidine", "DELIRIUM")], (1, 0, 1)),
        # a composite mention names both concepts: one predicted pair finds both gold pairs
        ([("famotidine", "delirium-confusion")], (2, 0, 0)),
        # wrong direction, unknown text, wrong type: false positives
        ([("delirium", "famotidine")], (0, 1, 2)),
        ([("famotidine", "headache"), ("famotidine", "confusion")], (1, 1, 1)),
        ([], (0, 0, 2)),
    ],
)
def test_cid_concept_pairs_count_once_and_match_any_mention(pairs, expected) -> None:
    scored = score_records("re", [cid_gold()], {"9": predicted_pairs(pairs)})
    score = scored.score
    assert (score.true_positives, score.false_positives, score.false_negatives) == expected


def test_cid_gold_scored_against_itself_and_against_any_choice_of_mentions() -> None:
    gold = cid_gold()
    assert score_records("re", [gold], {"9": gold}).score.f1 == 1.0
    rng = random.Random(3)
    chemical = ["Famotidine", "famotidine"]
    for _ in range(20):
        pairs = [(rng.choice(chemical), rng.choice(["delirium", "delirium-confusion"])),
                 (rng.choice(chemical), rng.choice(["confusion", "delirium-confusion"]))]  # fmt: skip
        assert score_records("re", [gold], {"9": predicted_pairs(pairs)}).score.f1 == 1.0


def test_error_summary_names_missed_and_spurious_units() -> None:
    scored = score_records("re", [cid_gold()], {"9": predicted_pairs([("famotidine", "headache")])})
    assert scored.false_positive_units == {"CID: famotidine | headache": 1}
    assert set(scored.false_negative_units) == {"CID: famotidine | delirium", "CID: famotidine | confusion"}


def ner(record_id: str, document: str, mentions: list[tuple[str, str]]) -> Record:
    return Record(
        id=record_id, document_id=document, dataset="n", language="en", task="ner",
        entities=[Entity(id=f"T{i}", type=kind, text=text) for i, (kind, text) in enumerate(mentions)],
    )  # fmt: skip


def test_ner_deduplicates_per_document_and_case_matters() -> None:
    gold = [ner("a", "doc1", [("Chemical", "aspirin"), ("Chemical", "aspirin"), ("Disease", "fever")])]
    predicted = {
        "a": ner("a", "other", [("Chemical", "aspirin"), ("Chemical", "Aspirin"), ("Chemical", "fever")])
    }
    score = score_records("ner", gold, predicted).score
    assert (score.true_positives, score.false_positives, score.false_negatives) == (1, 2, 1)


def test_missing_prediction_is_wrong_not_skipped() -> None:
    gold = [ner("a", "a", [("Chemical", "x")]), ner("b", "b", [("Chemical", "y")])]
    score = score_records("ner", gold, {"a": gold[0]}).score
    assert (score.precision, score.recall, score.n) == (1.0, 0.5, 2)


def test_strict_spans_need_offsets() -> None:
    gold = [ner("a", "a", [("Chemical", "x")])]
    with pytest.raises(ScoringError, match=r"record 'a': entity 'T0' \('x'\) has no offsets"):
        score_records("ner", gold, {}, strict_spans=True)


def test_single_label_gold_must_have_one_label() -> None:
    gold = [Record(id="q", document_id="q", dataset="k", language="zh", task="tc", labels=["a", "b"])]
    with pytest.raises(ScoringError, match=r"gold record 'q' has 2 labels .* tc expects exactly one"):
        score_records("tc", gold, {})


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(["eval", "score", *argv])
    return status, out.getvalue(), err.getvalue()


def test_cli_rejects_predictions_for_unknown_ids_and_bad_lines(tmp_path: Path) -> None:
    gold = tmp_path / "g.jsonl"
    gold.write_text(ner("a", "a", [("Chemical", "x")]).model_dump_json() + "\n")
    stranger = tmp_path / "p.jsonl"
    stranger.write_text(ner("zzz", "a", []).model_dump_json() + "\n")
    status, _, err = run_cli("--task", "ner", "--gold", str(gold), "--pred", str(stranger), "--json")
    assert status == 2 and "1 predicted ids are not in" in err and "zzz" in err
    broken = tmp_path / "b.jsonl"
    broken.write_text(ner("a", "a", []).model_dump_json() + "\n" + '{"id": "b", "task": "ner"}\n')
    status, _, err = run_cli("--task", "ner", "--gold", str(gold), "--pred", str(broken), "--json")
    assert status == 2 and f"{broken}:2: field document_id: Field required" in err


def test_cli_reads_prediction_lines_with_their_extra_fields(tmp_path: Path) -> None:
    gold = tmp_path / "g.jsonl"
    gold.write_text(ner("a", "a", [("Chemical", "x"), ("Chemical", "y")]).model_dump_json() + "\n")
    line = ner("a", "a", [("Chemical", "x")]).model_dump(mode="json")
    line.update(prompt="p", raw_output="Chemical: x", parsed=True, problems=[], gold_answer="Chemical: x; y")
    pred = tmp_path / "p.jsonl"
    pred.write_text(json.dumps(line) + "\n")
    status, out, _ = run_cli("--task", "ner", "--gold", str(gold), "--pred", str(pred), "--json")
    assert status == 0
    assert (
        out.strip() == '{"precision": 1.0, "recall": 0.5, "f1": 0.6666666666666666, "accuracy": null, "n": 1}'
    )
