"""Corpus metrics of generated text and similarity scores, computed by the libraries papers report them with.

- `rouge_l`: the mean over items of the ROUGE-L F-measure (`rouge-score`'s `RougeScorer(["rougeL"])`,
  what its `BootstrapAggregator` and Hugging Face `evaluate` average). English uses the library's own
  tokeniser (lower-cased ASCII letters and digits, no stemming, as `evaluate`'s default); Chinese has no
  spaces between words, so it is tokenised by character (every non-space character one token, lower-cased:
  the character-level ROUGE the CBLUE/PromptCBLUE generation tasks use). Without it the library's
  tokeniser drops every Chinese character and scores 0.
- `bleu`: sacrebleu's corpus BLEU-4 (`corpus_bleu`, one reference per item) with its `13a` tokeniser for
  English and `zh` (each Chinese character a token) for Chinese.
- `chrf`: sacrebleu's corpus chrF (character 6-grams, beta 2; whitespace ignored, so no tokeniser).
- `distinct_2`: distinct bigrams over all bigrams of the outputs (Li et al. 2016; MedDialog reports it
  with BLEU-4), tokens as for ROUGE-L: it falls when a model repeats itself or every reply is the same.
- `pearson`, `spearman`: `scipy.stats.pearsonr` / `spearmanr` between gold and predicted scores (STS,
  BIOSSES). An unparsed or missing prediction is scored as 0.0 (the bottom of the scales used, 0-4 and
  0-5) and counted in `unparsed`: it is wrong, never skipped. A constant vector (e.g. every prediction
  unparsed) has no correlation; it is reported as 0.0, as 0/0 ratios are elsewhere in scoring.

Scale: every value is a fraction. ROUGE-L, distinct-2 are 0..1 as the library gives them; sacrebleu's
0..100 BLEU and chrF are divided by 100; correlations are -1..1. The libraries are imported when a metric is
computed: `taiyi-ray --help` imports this module's caller and must stay instant (rouge-score imports nltk).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from taiyi_ray.config.data import Language
from taiyi_ray.data.schema import Record

TEXT_METRICS = ("rouge_l", "bleu", "chrf", "distinct_2")
SCORE_METRICS = ("pearson", "spearman")
_BLEU_TOKENISER: dict[Language, str] = {"en": "13a", "zh": "zh"}


@dataclass(frozen=True)
class TextScore:
    """The corpus metrics of one set (fractions, see the module docstring); None where they do not apply."""

    rouge_l: float | None = None
    bleu: float | None = None
    chrf: float | None = None
    distinct_2: float | None = None
    pearson: float | None = None
    spearman: float | None = None
    unparsed: int = 0

    def metric(self, name: str) -> float | None:
        """The value of `name` (one of TEXT_METRICS or SCORE_METRICS); None when it was not computed."""
        if name not in TEXT_METRICS + SCORE_METRICS:
            raise ValueError(f"unknown metric {name!r}: expected one of {TEXT_METRICS + SCORE_METRICS}")
        value: float | None = getattr(self, name)
        return value

    def as_dict(self) -> dict[str, float | int | None]:
        """The computed metrics (and `unparsed` for scores), for `taiyi-ray eval score --json`."""
        if self.pearson is not None:
            return {"pearson": self.pearson, "spearman": self.spearman, "unparsed": self.unparsed}
        return {name: self.metric(name) for name in TEXT_METRICS}


class GoldTextError(ValueError):
    """A gold record has no text or score to compare with (the message names the record)."""


class CharacterTokenizer:
    """rouge-score's tokeniser protocol (`tokenize(text) -> tokens`) for Chinese: one token per character."""

    def tokenize(self, text: str) -> list[str]:
        return [character for character in text.casefold() if not character.isspace()]


def _rouge_scorer(language: Language) -> Any:
    from rouge_score.rouge_scorer import RougeScorer

    return RougeScorer(["rougeL"], tokenizer=CharacterTokenizer() if language == "zh" else None)


def tokens(text: str, language: Language) -> list[str]:
    """The tokens ROUGE-L and distinct-2 count: characters for Chinese, rouge-score's words for English."""
    if language == "zh":
        return CharacterTokenizer().tokenize(text)
    from rouge_score.tokenize import tokenize

    return list(tokenize(text, None))


def rouge_l(outputs: Sequence[str], references: Sequence[str], language: Language) -> float:
    """Mean ROUGE-L F-measure of `outputs` against `references` (one each), 0..1; 0.0 for no items."""
    _check_pairs(outputs, references)
    scorer = _rouge_scorer(language)
    scores = [
        scorer.score(reference, output)["rougeL"].fmeasure
        for output, reference in zip(outputs, references, strict=True)
    ]
    return sum(scores) / len(scores) if scores else 0.0


def bleu(outputs: Sequence[str], references: Sequence[str], language: Language) -> float:
    """sacrebleu corpus BLEU-4 / 100 (one reference per item), tokenised for the references' language."""
    import sacrebleu

    _check_pairs(outputs, references)
    result = sacrebleu.corpus_bleu(list(outputs), [list(references)], tokenize=_BLEU_TOKENISER[language])
    return float(result.score) / 100.0


def chrf(outputs: Sequence[str], references: Sequence[str]) -> float:
    """sacrebleu corpus chrF / 100 (character 6-grams, beta 2)."""
    import sacrebleu

    _check_pairs(outputs, references)
    return float(sacrebleu.corpus_chrf(list(outputs), [list(references)]).score) / 100.0


def distinct_n(outputs: Sequence[str], language: Language, n: int = 2) -> float:
    """Distinct n-grams over all n-grams of the outputs (Li et al. 2016), 0..1; 0.0 when there is none."""
    grams = [
        tuple(items[start : start + n])
        for items in (tokens(output, language) for output in outputs)
        for start in range(len(items) - n + 1)
    ]
    return len(set(grams)) / len(grams) if grams else 0.0


def score_generated(outputs: Sequence[str], references: Sequence[str], language: Language) -> TextScore:
    """Every text metric of a set of generated outputs (missing ones are empty strings)."""
    return TextScore(
        rouge_l=rouge_l(outputs, references, language),
        bleu=bleu(outputs, references, language),
        chrf=chrf(outputs, references),
        distinct_2=distinct_n(outputs, language, 2),
    )


def score_similarity(predicted: Sequence[float | None], gold: Sequence[float]) -> TextScore:
    """Pearson and Spearman of predicted against gold scores; None (unparsed) is scored as 0.0 and counted."""
    from scipy import stats

    _check_pairs(predicted, gold)
    values = [0.0 if value is None else value for value in predicted]
    unparsed = sum(value is None for value in predicted)
    if len(set(values)) < 2 or len(set(gold)) < 2:
        return TextScore(pearson=0.0, spearman=0.0, unparsed=unparsed)
    pearson = float(stats.pearsonr(gold, values).statistic)
    spearman = float(stats.spearmanr(gold, values).statistic)
    return TextScore(pearson=_finite(pearson), spearman=_finite(spearman), unparsed=unparsed)


def _finite(value: float) -> float:
    return value if math.isfinite(value) else 0.0


def _check_pairs(outputs: Sequence[object], references: Sequence[object]) -> None:
    if len(outputs) != len(references):
        raise ValueError(f"{len(outputs)} outputs for {len(references)} references: expected one output each")


# -- records -> texts --------------------------------------------------------------------------------


def score_text_records(task: str, gold: Sequence[Record], predicted: Mapping[str, Record]) -> TextScore:
    """Score the predicted records (by id; a missing one is an empty answer) of a text task or `sts`.

    The text is `answer` (dialogue: the last turn, when it is the assistant's); an sts answer is a score.
    """
    references = [_gold_text(record) for record in gold]
    outputs = [_answer_text(predicted.get(record.id)) for record in gold]
    if task == "sts":
        truth = [_gold_score(record, text) for record, text in zip(gold, references, strict=True)]
        return score_similarity([_number(text) for text in outputs], truth)
    return score_generated(outputs, references, _target_language(gold, translation=task == "translation"))


def _answer_text(record: Record | None) -> str:
    if record is None:
        return ""
    if record.task == "dialogue":
        last = record.turns[-1] if record.turns else None
        return last.content.strip() if last is not None and last.role == "assistant" else ""
    return (record.answer or "").strip()


def _gold_text(record: Record) -> str:
    text = _answer_text(record)
    if not text:
        where = "no assistant turn last" if record.task == "dialogue" else "no answer"
        raise GoldTextError(f"gold record {record.id!r} has {where} (an unlabelled file cannot be scored)")
    return text


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _gold_score(record: Record, text: str) -> float:
    value = _number(text)
    if value is None:
        raise GoldTextError(
            f"gold record {record.id!r}: answer {text!r} is not a score (expected a number like 3.2)"
        )
    return value


def _target_language(gold: Sequence[Record], translation: bool) -> Language:
    """The language of the gold texts: the records', or the other one for translation (one per set)."""
    found: set[Language] = {_other(record.language) if translation else record.language for record in gold}
    if len(found) > 1:
        raise GoldTextError(
            "the gold records mix English and Chinese targets: score each language as its own set"
        )
    return found.pop() if found else "en"


def _other(language: Language) -> Language:
    return "zh" if language == "en" else "en"
