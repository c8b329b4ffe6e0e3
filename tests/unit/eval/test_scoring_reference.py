"""The scorers agree exactly with reference implementations on many randomly perturbed prediction files.

Gold and predicted files go through the real path: BIO files through the `bio_tsv` converter, unified
records through `taiyi-ray eval score --json` (in process). References: seqeval's entity-level scores
(default, conlleval-compatible mode) for strict spans; scikit-learn's micro precision/recall/F1 and
accuracy over binarised (document, unit) indicators for everything else. Precision and recall are the
same divisions, so they must be equal to the bit; seqeval's F1 is 2PR/(P+R) while ours (and sklearn's)
is 2tp/(2tp+fp+fn), so against seqeval F1 agrees to 1e-12.
"""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from seqeval.metrics import f1_score as seqeval_f1
from seqeval.metrics import precision_score as seqeval_precision
from seqeval.metrics import recall_score as seqeval_recall
from seqeval.metrics.sequence_labeling import get_entities
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score
from sklearn.preprocessing import MultiLabelBinarizer

from taiyi_ray.cli import main
from taiyi_ray.data.convert import convert_file
from taiyi_ray.data.schema import Entity, Record, Relation
from taiyi_ray.storage import Storage

TAGS = ["O", "B-Chemical", "I-Chemical", "B-Disease", "I-Disease"]
WORDS = ["aspirin", "fever", "cough", "the", "of", "Aspirin", "acute", "renal", "failure", "(", ")", "-"]
LABELS = ["alpha", "beta", "gamma", "delta", "none"]
SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def score_cli(task: str, gold: Path, pred: Path, *flags: str) -> dict[str, float | int | None]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main(
            ["eval", "score", "--task", task, "--gold", str(gold), "--pred", str(pred), "--json", *flags]
        )
    assert status == 0
    return json.loads(out.getvalue())


def sklearn_micro(gold: list[set], predicted: list[set]) -> tuple[float, float, float]:
    """sklearn's micro P/R/F1 over per-document unit sets (units as text; two never-used columns keep
    the indicator matrix multi-label even when no unit exists, as sklearn reads one column as binary)."""
    gold = [{repr(unit) for unit in units} for units in gold]
    predicted = [{repr(unit) for unit in units} for units in predicted]
    binariser = MultiLabelBinarizer()
    binariser.fit([*gold, *predicted, {"~never", "~never either"}])
    truth, guess = binariser.transform(gold), binariser.transform(predicted)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        return (
            precision_score(truth, guess, average="micro", zero_division=0),
            recall_score(truth, guess, average="micro", zero_division=0),
            f1_score(truth, guess, average="micro", zero_division=0),
        )


# -- NER on BIO files --------------------------------------------------------------------------------


@st.composite
def bio_corpus(draw: st.DrawFn) -> tuple[list[list[str]], list[list[str]], list[list[str]]]:
    """Sentences, gold tags (any sequence, ill-formed I- included) and a perturbed copy as predictions."""
    sentences = draw(
        st.lists(st.lists(st.sampled_from(WORDS), min_size=1, max_size=12), min_size=1, max_size=8)
    )
    gold = [draw(st.lists(st.sampled_from(TAGS), min_size=len(s), max_size=len(s))) for s in sentences]
    predicted = []
    for tags in gold:
        flips = draw(st.lists(st.booleans(), min_size=len(tags), max_size=len(tags)))
        new = draw(st.lists(st.sampled_from(TAGS), min_size=len(tags), max_size=len(tags)))
        predicted.append([n if flip else t for t, n, flip in zip(tags, new, flips, strict=True)])
    return sentences, gold, predicted


def write_bio(path: Path, sentences: list[list[str]], tags: list[list[str]]) -> None:
    blocks = [
        "\n".join(f"{w}\t{t}" for w, t in zip(s, ts, strict=True))
        for s, ts in zip(sentences, tags, strict=True)
    ]
    path.write_text("\n\n".join(blocks) + "\n", encoding="utf-8")


def convert_pair(tmp: Path, corpus: tuple) -> tuple[Path, Path]:
    sentences, gold, predicted = corpus
    outputs = []
    for name, tags in (("gold", gold), ("pred", predicted)):
        folder = tmp / name
        folder.mkdir(parents=True, exist_ok=True)
        write_bio(folder / "test.tsv", sentences, tags)  # same file name: ids `test.tsv:N` match
        convert_file("bio_tsv", str(folder / "test.tsv"), str(folder / "test.jsonl"), "fail", Storage())
        outputs.append(folder / "test.jsonl")
    return outputs[0], outputs[1]


@SETTINGS
@given(corpus=bio_corpus())
def test_strict_spans_equal_seqeval(tmp_path_factory, corpus) -> None:
    gold_file, pred_file = convert_pair(tmp_path_factory.mktemp("bio"), corpus)
    ours = score_cli("ner", gold_file, pred_file, "--strict-spans")
    _, gold, predicted = corpus
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert ours["precision"] == seqeval_precision(gold, predicted)
        assert ours["recall"] == seqeval_recall(gold, predicted)
        assert abs(ours["f1"] - seqeval_f1(gold, predicted)) <= 1e-12
    assert ours["accuracy"] is None and ours["n"] == len(gold)


@SETTINGS
@given(corpus=bio_corpus())
def test_deduplicated_texts_equal_sklearn_over_seqeval_chunks(tmp_path_factory, corpus) -> None:
    """The paper's rule: per document (here a sentence) the set of (type, text), chunks as seqeval reads them."""
    gold_file, pred_file = convert_pair(tmp_path_factory.mktemp("bio"), corpus)
    ours = score_cli("ner", gold_file, pred_file)
    sentences, gold, predicted = corpus

    def units(tokens: list[str], tags: list[str]) -> set:
        return {(kind, " ".join(tokens[start : end + 1])) for kind, start, end in get_entities(tags)}

    reference = sklearn_micro(
        [units(s, t) for s, t in zip(sentences, gold, strict=True)],
        [units(s, t) for s, t in zip(sentences, predicted, strict=True)],
    )
    assert (ours["precision"], ours["recall"], ours["f1"]) == reference


# -- classification and QA ---------------------------------------------------------------------------


def write_records(path: Path, records: list[Record]) -> Path:
    path.write_text("".join(r.model_dump_json() + "\n" for r in records), encoding="utf-8")
    return path


def label_record(index: int, task: str, labels: list[str]) -> Record:
    return Record(
        id=f"i{index}",
        document_id=f"d{index}",
        dataset="t",
        language="en",
        task=task,
        text="x",
        labels=labels,
    )


@SETTINGS
@given(
    items=st.lists(
        st.tuples(st.sets(st.sampled_from(LABELS), min_size=1), st.sets(st.sampled_from(LABELS))),
        min_size=1,
        max_size=40,
    )
)
def test_multilabel_equals_sklearn_micro_and_subset_accuracy(tmp_path_factory, items) -> None:
    folder = tmp_path_factory.mktemp("ml")
    gold = write_records(
        folder / "g.jsonl", [label_record(i, "tc_multilabel", sorted(g)) for i, (g, _) in enumerate(items)]
    )
    pred = write_records(
        folder / "p.jsonl", [label_record(i, "tc_multilabel", sorted(p)) for i, (_, p) in enumerate(items)]
    )
    ours = score_cli("tc_multilabel", gold, pred)
    truth, guess = [g for g, _ in items], [p for _, p in items]
    assert (ours["precision"], ours["recall"], ours["f1"]) == sklearn_micro(truth, guess)
    binariser = MultiLabelBinarizer(classes=LABELS)
    assert ours["accuracy"] == accuracy_score(binariser.fit_transform(truth), binariser.transform(guess))


@SETTINGS
@given(
    items=st.lists(
        st.tuples(st.sampled_from(LABELS), st.one_of(st.none(), st.sampled_from(LABELS))),
        min_size=1,
        max_size=40,
    )
)
def test_single_label_micro_f1_is_sklearn_micro_f1_and_accuracy(tmp_path_factory, items) -> None:
    """An item with no predicted label (unparsed) is wrong, as sklearn sees a label that is never right."""
    folder = tmp_path_factory.mktemp("tc")
    gold = write_records(folder / "g.jsonl", [label_record(i, "tc", [g]) for i, (g, _) in enumerate(items)])
    pred = write_records(
        folder / "p.jsonl", [label_record(i, "tc", [p] if p else []) for i, (_, p) in enumerate(items)]
    )
    ours = score_cli("tc", gold, pred)
    truth = [g for g, _ in items]
    guess = [p if p is not None else "__unparsed__" for _, p in items]
    assert ours["f1"] == f1_score(truth, guess, average="micro")
    assert (
        ours["precision"] == ours["recall"] == ours["f1"] == ours["accuracy"] == accuracy_score(truth, guess)
    )


@SETTINGS
@given(
    items=st.lists(
        st.tuples(st.sampled_from("ABCDE"), st.one_of(st.none(), st.sampled_from("ABCDE"))),
        min_size=1,
        max_size=40,
    ),
    missing=st.sets(st.integers(0, 39)),
)
def test_qa_accuracy_equals_sklearn_with_missing_predictions(tmp_path_factory, items, missing) -> None:
    folder = tmp_path_factory.mktemp("qa")
    choices = {key: f"option {key}" for key in "ABCDE"}

    def record(index: int, answer: str | None) -> Record:
        return Record(
            id=f"q{index}", document_id=f"q{index}", dataset="t", language="en", task="qa_mc",
            question="?", choices=choices, answer=answer,
        )  # fmt: skip

    gold = write_records(folder / "g.jsonl", [record(i, g) for i, (g, _) in enumerate(items)])
    pred = write_records(
        folder / "p.jsonl", [record(i, p) for i, (_, p) in enumerate(items) if i not in missing]
    )
    ours = score_cli("qa", gold, pred)
    guess = [("-" if i in missing or p is None else p) for i, (_, p) in enumerate(items)]
    assert ours == {
        "precision": None, "recall": None, "f1": None,
        "accuracy": accuracy_score([g for g, _ in items], guess), "n": len(items),
    }  # fmt: skip


# -- relations between entities ----------------------------------------------------------------------

ARGUMENTS = ["肺癌", "咳嗽", "Aspirin", "aspirin", "fever", "Fever"]
PREDICATES = ["临床表现", "药物治疗"]


def relation_record(index: int, triples: list[tuple[str, str, str]]) -> Record:
    entities: dict[str, Entity] = {}
    relations = []
    for predicate, head, tail in triples:
        for text in (head, tail):
            if text not in entities:
                entities[text] = Entity(id=f"T{len(entities) + 1}", type="x", text=text)
        relations.append(Relation(type=predicate, head_id=entities[head].id, tail_id=entities[tail].id))
    return Record(
        id=f"s{index}", document_id=f"s{index}", dataset="t", language="zh", task="re", text="",
        entities=list(entities.values()), relations=relations,
    )  # fmt: skip


triples = st.lists(
    st.tuples(st.sampled_from(PREDICATES), st.sampled_from(ARGUMENTS), st.sampled_from(ARGUMENTS))
)


@SETTINGS
@given(documents=st.lists(st.tuples(triples, triples), min_size=1, max_size=10))
def test_entity_relations_equal_sklearn_over_casefolded_triples(tmp_path_factory, documents) -> None:
    folder = tmp_path_factory.mktemp("re")
    gold = write_records(folder / "g.jsonl", [relation_record(i, g) for i, (g, _) in enumerate(documents)])
    pred = write_records(folder / "p.jsonl", [relation_record(i, p) for i, (_, p) in enumerate(documents)])
    ours = score_cli("re", gold, pred)

    def folded(items: list[tuple[str, str, str]]) -> set:
        return {(p, h.casefold(), t.casefold()) for p, h, t in items}

    reference = sklearn_micro([folded(g) for g, _ in documents], [folded(p) for _, p in documents])
    assert (ours["precision"], ours["recall"], ours["f1"]) == reference
