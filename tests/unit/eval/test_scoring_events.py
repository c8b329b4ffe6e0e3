"""Event-extraction scoring, with counts worked out by hand: events must match with all their
arguments, arguments score on their own, nested events compare by type and trigger, texts case-fold."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from taiyi_ray.cli import main
from taiyi_ray.data.schema import Entity, Event, EventArgument, Record
from taiyi_ray.eval.scoring import SCORE_TASK_OF, ScoringError, score_records

TEXT = "TNF induces phosphorylation of TRAF2 at Ser-55 and expression of IL-2."


def arguments(*pairs: tuple[str, str]) -> list[EventArgument]:
    return [EventArgument(role=role, ref_id=ref) for role, ref in pairs]


def record(events: list[Event], entities: list[Entity] | None = None, record_id: str = "r1") -> Record:
    mentions = entities if entities is not None else [
        Entity(id="T1", type="Protein", text="TNF"),
        Entity(id="T2", type="Protein", text="TRAF2"),
        Entity(id="T3", type="Entity", text="Ser-55"),
        Entity(id="T4", type="Protein", text="IL-2"),
    ]  # fmt: skip
    return Record(
        id=record_id, document_id="PMID-1", dataset="ge", language="en", task="ee", text=TEXT,
        entities=mentions, events=events,
    )  # fmt: skip


def gold() -> Record:
    """3 events, 5 arguments; the Positive_regulation's Theme is the Phosphorylation."""
    return record([
        Event(id="E1", type="Phosphorylation", trigger="phosphorylation",
              arguments=arguments(("Theme", "T2"), ("Site", "T3"))),
        Event(id="E2", type="Positive_regulation", trigger="induces",
              arguments=arguments(("Theme", "E1"), ("Cause", "T1"))),
        Event(id="E3", type="Gene_expression", trigger="expression", arguments=arguments(("Theme", "T4"))),
    ])  # fmt: skip


def predicted() -> Record:
    """Phosphorylation missing its Site (event wrong, Theme right), the regulation right (its nested
    Theme matched by type and trigger), written twice; the expression with a wrong role."""
    entities = [
        Entity(id="P1", type="entity", text="traf2"),
        Entity(id="P2", type="entity", text="TNF"),
        Entity(id="P3", type="entity", text="IL-2"),
    ]
    return record(
        [
            Event(id="E1", type="Phosphorylation", trigger="Phosphorylation", arguments=arguments(("Theme", "P1"))),
            Event(id="E2", type="Positive_regulation", trigger="induces",
                  arguments=arguments(("Theme", "E1"), ("Cause", "P2"))),
            Event(id="E3", type="Positive_regulation", trigger="INDUCES",
                  arguments=arguments(("Cause", "P2"), ("Theme", "E1"))),
            Event(id="E4", type="Gene_expression", trigger="expression", arguments=arguments(("Cause", "P3"))),
        ],
        entities,
    )  # fmt: skip


def test_event_and_argument_counts_by_hand() -> None:
    scored = score_records("ee", [gold()], {"r1": predicted()})
    score = scored.score
    # events: tp 1 (the regulation, once for its duplicate), fp 2, fn 2 (Phosphorylation, expression)
    assert (score.true_positives, score.false_positives, score.false_negatives) == (1, 2, 2)
    assert score.metric("micro_f1") == pytest.approx(1 / 3)
    # arguments: 4 predicted, 5 gold, 3 right (Theme TRAF2, Theme Phosphorylation(...), Cause TNF)
    assert score.metric("argument_precision") == pytest.approx(3 / 4)
    assert score.metric("argument_recall") == pytest.approx(3 / 5)
    assert score.metric("argument_f1") == pytest.approx(2 * 3 / (4 + 5))
    assert scored.false_positive_units == {
        "Phosphorylation: phosphorylation | Theme: traf2": 1,
        "Gene_expression: expression | Cause: il-2": 1,
    }
    assert scored.false_negative_units == {
        "Phosphorylation: phosphorylation | Site: ser-55; Theme: traf2": 1,
        "Gene_expression: expression | Theme: il-2": 1,
    }
    assert score.as_dict()["argument_f1"] == pytest.approx(2 / 3)
    assert SCORE_TASK_OF["ee"] == "ee"


def test_nested_argument_compares_the_nested_events_type_and_trigger() -> None:
    wrong_type = gold().model_copy(deep=True)
    wrong_type.events[0].type = "Dephosphorylation"  # the regulation's Theme now names another event
    score = score_records("ee", [gold()], {"r1": wrong_type}).score
    # the Phosphorylation and the regulation are both wrong; only the expression matches
    assert (score.true_positives, score.false_positives, score.false_negatives) == (1, 2, 2)
    # arguments: Theme TRAF2 / Site Ser-55 under another type, and Theme Dephosphorylation(...) miss
    assert score.metric("argument_f1") == pytest.approx(2 * 2 / (5 + 5))


def test_missing_prediction_perfect_prediction_and_unknown_metric() -> None:
    missing = score_records("ee", [gold()], {}).score
    assert (missing.true_positives, missing.false_positives, missing.false_negatives) == (0, 0, 3)
    assert missing.metric("argument_recall") == 0.0
    perfect = score_records("ee", [gold()], {"r1": gold()}).score
    assert perfect.f1 == perfect.metric("argument_f1") == 1.0
    with pytest.raises(ScoringError, match=r"expected one of .*argument_f1"):
        perfect.metric("bleurt")
    with pytest.raises(ScoringError, match=r"metric 'rouge_l' does not apply to task 'ee'"):
        perfect.metric("rouge_l")


def test_cli_scores_ee_files(tmp_path: Path) -> None:
    gold_file, pred_file = tmp_path / "gold.jsonl", tmp_path / "pred.jsonl"
    gold_file.write_text(gold().model_dump_json() + "\n", encoding="utf-8")
    pred_file.write_text(predicted().model_dump_json() + "\n", encoding="utf-8")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main(
            ["eval", "score", "--task", "ee", "--gold", str(gold_file), "--pred", str(pred_file), "--json"]
        )
    assert status == 0
    result = json.loads(out.getvalue())
    assert result["f1"] == pytest.approx(1 / 3) and result["argument_f1"] == pytest.approx(2 / 3)
    assert result["n"] == 1 and result["accuracy"] is None
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert (
            main(["eval", "score", "--task", "ee", "--gold", str(gold_file), "--pred", str(pred_file)]) == 0
        )
    assert out.getvalue().startswith("ee: precision 0.333") and "argument_f1 0.666" in out.getvalue()
