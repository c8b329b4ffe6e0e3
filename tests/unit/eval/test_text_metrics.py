"""Text and similarity metrics against their libraries and against values worked out by hand."""

from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path

import pytest
import sacrebleu
from rouge_score.rouge_scorer import RougeScorer
from scipy import stats

from taiyi_ray.cli import main
from taiyi_ray.config.data import DatasetEntry, Language, Task
from taiyi_ray.data.answers import answer_space
from taiyi_ray.data.instruct import build_prompt, gold_answer
from taiyi_ray.data.schema import Record, Turn
from taiyi_ray.eval.baselines import trivial_baselines
from taiyi_ray.eval.finalise import parse_and_score
from taiyi_ray.eval.generation_types import RawOutput
from taiyi_ray.eval.scoring import ScoringError, default_metric, score_records
from taiyi_ray.eval.sets import EvalItem, EvalSet
from taiyi_ray.eval.text_metrics import bleu, chrf, distinct_n, rouge_l, score_similarity

HYPOTHESES = ["the patient was given aspirin daily", "no fever was reported", "blood pressure rose"]
REFERENCES = ["the patient received aspirin every day", "fever was not reported", "the blood pressure rose"]


def test_rouge_l_is_the_lcs_f_measure_by_hand_in_english() -> None:
    # LCS("the cat on the mat", "the cat sat on the mat") = 5: P = 5/5, R = 5/6, F = 10/11.
    assert rouge_l(["The cat on the mat."], ["the cat sat on the mat"], "en") == pytest.approx(10 / 11)
    library = RougeScorer(["rougeL"]).score("the cat sat on the mat", "The cat on the mat.")["rougeL"]
    assert library.fmeasure == pytest.approx(10 / 11)


def test_rouge_l_counts_chinese_characters_which_the_library_tokeniser_drops() -> None:
    # LCS("患者发热", "患者出现发热") = 4 characters: P = 4/4, R = 4/6, F = 0.8.
    assert rouge_l(["患者发热"], ["患者出现发热"], "zh") == pytest.approx(0.8)
    assert RougeScorer(["rougeL"]).score("患者出现发热", "患者发热")["rougeL"].fmeasure == 0.0


def test_rouge_l_is_the_mean_over_items() -> None:
    ours = rouge_l(HYPOTHESES, REFERENCES, "en")
    scorer = RougeScorer(["rougeL"])
    each = [
        scorer.score(ref, hyp)["rougeL"].fmeasure for hyp, ref in zip(HYPOTHESES, REFERENCES, strict=True)
    ]
    assert ours == pytest.approx(sum(each) / 3)
    assert 0.0 < ours < 1.0


def test_bleu_and_chrf_equal_sacrebleu_on_fixed_corpora_as_fractions() -> None:
    library = sacrebleu.corpus_bleu(HYPOTHESES, [REFERENCES]).score
    assert 0.0 < library < 100.0
    assert bleu(HYPOTHESES, REFERENCES, "en") == pytest.approx(library / 100)
    assert chrf(HYPOTHESES, REFERENCES) == pytest.approx(
        sacrebleu.corpus_chrf(HYPOTHESES, [REFERENCES]).score / 100
    )


def test_bleu_by_hand() -> None:
    # n-gram precisions 4/5, 3/4, 2/3, 1/2 and no brevity penalty: (0.2) ** (1/4).
    assert bleu(["a b c d e"], ["a b c d f"], "en") == pytest.approx(0.2**0.25)


def test_chinese_bleu_needs_the_zh_tokeniser() -> None:
    hypothesis, reference = "患者出现发热症状", "患者出现发热"
    # 13a leaves each sentence one token: no match at all.
    assert sacrebleu.corpus_bleu([hypothesis], [[reference]], tokenize="13a").score == 0.0
    # zh: characters; precisions 6/8, 5/7, 4/6, 3/5, the hypothesis is longer (no brevity penalty).
    expected = (6 / 8 * 5 / 7 * 4 / 6 * 3 / 5) ** 0.25
    assert bleu([hypothesis], [reference], "zh") == pytest.approx(expected)
    assert sacrebleu.corpus_bleu([hypothesis], [[reference]], tokenize="zh").score / 100 == pytest.approx(
        expected
    )


@pytest.mark.parametrize("language", ["en", "zh"])
def test_perfect_outputs_score_one(language: Language) -> None:
    texts = ["患者出现发热症状", "建议多喝水"] if language == "zh" else REFERENCES
    assert rouge_l(texts, texts, language) == pytest.approx(1.0)
    assert bleu(texts, texts, language) == pytest.approx(1.0)
    assert chrf(texts, texts) == pytest.approx(1.0)


def test_distinct_2_counts_repeated_bigrams_once() -> None:
    assert distinct_n(["a b a b"], "en") == pytest.approx(2 / 3)  # (a b) (b a) (a b)
    assert distinct_n(["好好好"], "zh") == pytest.approx(1 / 2)
    assert distinct_n(["", "a"], "en") == 0.0


def test_correlations_equal_scipy_and_the_hand_value() -> None:
    gold, predicted = [0.0, 1.0, 2.0, 3.0, 4.0], [0.0, 1.0, 2.0, 3.0, 8.0]
    score = score_similarity(predicted, gold)
    # sum dx dy = 18, sum dx^2 = 10, sum dy^2 = 38.8 -> r = 18 / sqrt(388); the ranks agree exactly.
    assert score.pearson == pytest.approx(18 / math.sqrt(388))
    assert score.pearson == pytest.approx(stats.pearsonr(gold, predicted).statistic)
    assert score.spearman == pytest.approx(1.0)
    mixed = [3.1, 0.2, 2.5, 1.0, 4.0]
    assert score_similarity(mixed, gold).spearman == pytest.approx(stats.spearmanr(gold, mixed).statistic)


def test_unparsed_scores_count_as_zero_and_constant_predictions_as_no_correlation() -> None:
    gold = [0.0, 1.0, 2.0, 3.0, 4.0]
    score = score_similarity([None, 1.0, 2.0, 3.0, None], gold)
    assert score.unparsed == 2
    assert score.pearson == pytest.approx(stats.pearsonr(gold, [0.0, 1.0, 2.0, 3.0, 0.0]).statistic)
    nothing = score_similarity([None] * 5, gold)
    assert (nothing.pearson, nothing.spearman, nothing.unparsed) == (0.0, 0.0, 5)


# -- through score_records and the CLI -----------------------------------------------------------------


def record(
    record_id: str, task: Task, answer: str | None, language: Language = "en", **fields: object
) -> Record:
    return Record(
        id=record_id, document_id=record_id, dataset="d", language=language, task=task, text="t",
        answer=answer, **fields,
    )  # fmt: skip


def test_score_records_gives_the_catalogue_metrics_and_missing_predictions_are_empty() -> None:
    gold = [record(str(index), "generation", text) for index, text in enumerate(REFERENCES)]
    predicted = {str(index): record(str(index), "generation", text) for index, text in enumerate(HYPOTHESES)}
    del predicted["2"]
    score = score_records("generation", gold, predicted).score
    outputs = [*HYPOTHESES[:2], ""]
    assert score.metric("rouge_l") == pytest.approx(rouge_l(outputs, REFERENCES, "en"))
    assert score.metric("bleu") == pytest.approx(sacrebleu.corpus_bleu(outputs, [REFERENCES]).score / 100)
    assert (score.precision, score.f1, score.n) == (None, None, 3)
    assert default_metric("generation") == "rouge_l" and default_metric("sts") == "pearson"
    with pytest.raises(ScoringError, match="'pearson' does not apply to task 'generation'"):
        score.metric("pearson")
    with pytest.raises(ScoringError, match="'micro_f1' does not apply"):
        score.metric("micro_f1")


def test_translation_is_tokenised_for_the_target_language() -> None:
    gold = [record("1", "translation", "患者出现发热", language="en")]  # English source, Chinese target
    predicted = {"1": record("1", "translation", "患者出现发热症状", language="en")}
    score = score_records("translation", gold, predicted).score
    assert score.metric("bleu") == pytest.approx((6 / 8 * 5 / 7 * 4 / 6 * 3 / 5) ** 0.25)
    mixed = [*gold, record("2", "translation", "fever", language="zh")]
    with pytest.raises(ScoringError, match="mix English and Chinese targets"):
        score_records("translation", mixed, predicted)


def test_dialogue_scores_the_last_assistant_turn() -> None:
    turns = [Turn(role="user", content="我发烧了"), Turn(role="assistant", content="建议多喝水并休息")]
    gold = [record("1", "dialogue", None, language="zh", turns=turns)]
    reply = [turns[0], Turn(role="assistant", content="建议多喝水")]
    score = score_records(
        "dialogue", gold, {"1": record("1", "dialogue", None, language="zh", turns=reply)}
    ).score
    assert score.metric("rouge_l") == pytest.approx(rouge_l(["建议多喝水"], ["建议多喝水并休息"], "zh"))
    assert score.metric("distinct_2") == pytest.approx(1.0)


def test_sts_reads_scores_and_refuses_gold_that_is_not_one() -> None:
    gold = [record(str(index), "sts", value) for index, value in enumerate(["0", "1.5", "2", "4"])]
    predicted = {"0": record("0", "sts", "0.5"), "1": record("1", "sts", "1"), "2": record("2", "sts", "3")}
    score = score_records("sts", gold, predicted).score
    assert score.text is not None and score.text.unparsed == 1
    assert score.metric("pearson") == pytest.approx(stats.pearsonr([0, 1.5, 2, 4], [0.5, 1, 3, 0]).statistic)
    with pytest.raises(ScoringError, match="gold record '9': answer 'high' is not a score"):
        score_records("sts", [record("9", "sts", "high")], {})
    with pytest.raises(ScoringError, match="gold record '9' has no answer"):
        score_records("qa_open", [record("9", "qa_open", None)], {})


def test_cli_scores_a_new_task_as_json(tmp_path: Path) -> None:
    gold, pred = tmp_path / "g.jsonl", tmp_path / "p.jsonl"
    gold.write_text(
        "".join(record(str(i), "qa_open", t).model_dump_json() + "\n" for i, t in enumerate(REFERENCES))
    )
    pred.write_text(
        "".join(record(str(i), "qa_open", t).model_dump_json() + "\n" for i, t in enumerate(REFERENCES))
    )
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main(
            ["eval", "score", "--task", "qa_open", "--gold", str(gold), "--pred", str(pred), "--json"]
        )
    result = json.loads(out.getvalue())
    assert status == 0 and result["n"] == 3 and result["f1"] is None
    assert result["rouge_l"] == pytest.approx(1.0) and result["bleu"] == pytest.approx(1.0)
    assert set(result) >= {"rouge_l", "bleu", "chrf", "distinct_2"}


# -- from raw outputs: the evaluation job's path ------------------------------------------------------


def eval_set(records: list[Record], task: Task) -> EvalSet:
    entry = DatasetEntry(name="s", format="x", uri="x", language=records[0].language, task=task)
    items = tuple(
        EvalItem(
            record=item,
            messages=tuple(build_prompt(item, entry, 0)),
            gold_answer=gold_answer(item, entry),
            space=answer_space(item, entry),
        )
        for item in records
    )
    return EvalSet(entry, items)


def dialogue(record_id: str, reply: str) -> Record:
    turns = [Turn(role="user", content="我头痛"), Turn(role="assistant", content=reply)]
    return record(record_id, "dialogue", None, language="zh", turns=turns)


@pytest.mark.parametrize(
    ("task", "records"),
    [
        (
            "sts",
            [record(str(i), "sts", score, context="b") for i, score in enumerate(["0", "1.2", "3.8", "2"])],
        ),
        ("generation", [record(str(i), "generation", text) for i, text in enumerate(REFERENCES)]),
        ("dialogue", [dialogue("1", "请多休息"), dialogue("2", "可以服用止痛药")]),
    ],
)
def test_gold_outputs_score_one_and_the_empty_baseline_zero(task: Task, records: list[Record]) -> None:
    """Perfect outputs through parse and score give 1.0; the 'predict nothing' baseline gives 0 (a
    dialogue's baseline must not keep the gold reply among its turns)."""
    items = eval_set(records, task)
    outputs = {item.record.id: RawOutput(item.gold_answer) for item in items.items}
    lines, scored = parse_and_score(items.score_task, items.items, outputs)
    assert all(line.parsed for line in lines)
    assert scored.score.metric(items.metric) == pytest.approx(1.0)
    baselines = trivial_baselines(items.score_task, items.metric, items.items)
    assert baselines is not None and (baselines.majority, baselines.random) == (0.0, None)
