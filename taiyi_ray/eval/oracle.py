"""`--oracle`: every item answered with its own serialised gold, optionally corrupted for a seeded share.

The oracle's text goes through the same parse -> prediction record -> score path as a model's output,
so 100.0 on every set checks converter, serialiser, parser and scorer end to end.

`--oracle-noise P` corrupts k = floor(P * n + 0.5) items of a set of n, chosen with a seeded RNG
(seed, set name). The j-th chosen item (j = 0, 1, ...) gets, alternately:
- j even, a *wrong* answer that parses: another option / yes-no-maybe value / label, or for NER, RE, EE
  and multi-label sets one spurious unit that no gold has (text `NOISE_TEXT`, or a label not among the
  item's gold labels) in place of the gold ones;
- j odd, an *empty* output, which no parser reads: the item is counted unparsed.
So exactly k // 2 items are unparsed; a per-item metric (QA, single-label) is exactly 100 * (n - k) / n;
and a set metric loses every gold unit of the k items and gains exactly ceil(k / 2) false positives:
F1 = 2(G - L) / (2G - L + ceil(k / 2)), G the set's gold units and L those of the chosen items, which
lies between the values for the k items with the fewest and with the most gold units (the tests
derive exactly these bounds from P).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from taiyi_ray.data.answers import YES_NO_MAYBE, EventAnswer, Prediction, serialise
from taiyi_ray.eval.generation_types import RawOutput
from taiyi_ray.eval.sets import EvalItem, EvalSet

NOISE_TEXT = "⟂"
"""The text of a spurious mention or argument: it occurs in no evaluation set, so it is never right."""


def corrupted_count(fraction: float, n: int) -> int:
    """k = floor(P * n + 0.5): round half up, not Python's round-half-to-even."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"--oracle-noise must be a fraction in [0, 1], got {fraction}")
    return min(n, int(fraction * n + 0.5))


def corrupted_positions(n: int, fraction: float, seed: int, set_name: str) -> list[int]:
    """Positions of the corrupted items, in the order they were chosen (which decides wrong vs empty)."""
    rng = random.Random(f"{seed}\x00{set_name}")
    return rng.sample(range(n), corrupted_count(fraction, n))


def oracle_outputs(eval_set: EvalSet, fraction: float, seed: int) -> dict[str, RawOutput]:
    """Record id -> the oracle's output text for every item of the set."""
    outputs = {item.record.id: RawOutput(item.gold_answer, finish_reason="stop") for item in eval_set.items}
    rng = random.Random(f"{seed}\x00{eval_set.name}\x00answers")
    for order, position in enumerate(corrupted_positions(len(eval_set.items), fraction, seed, eval_set.name)):
        item = eval_set.items[position]
        text = wrong_answer(item, rng) if order % 2 == 0 else ""
        outputs[item.record.id] = RawOutput(text, finish_reason="stop", corrupted=True)
    return outputs


def wrong_answer(item: EvalItem, rng: random.Random) -> str:
    """An answer to `item` that parses and is wrong in every unit (see the module docstring)."""
    record, space = item.record, item.space
    task = record.task
    if task == "qa_yesno":
        prediction = Prediction(task, answer=rng.choice([a for a in YES_NO_MAYBE if a != record.answer]))
    elif task == "qa_mc":
        prediction = Prediction(
            task, answer=rng.choice([k for k in (record.choices or {}) if k != record.answer])
        )
    elif task in ("tc", "text_pair", "tc_multilabel"):
        prediction = Prediction(task, labels=(_other_label(record.labels, space.label_names, rng),))
    elif task == "ner":
        entity_type = space.entity_types[0] if space.entity_types else "entity"
        prediction = Prediction(task, entities=((entity_type, NOISE_TEXT),))
    elif task == "re":
        relation_type = space.relation_types[0] if space.relation_types else "related"
        prediction = Prediction(task, relations=((relation_type, NOISE_TEXT, NOISE_TEXT),))
    elif task == "ee":
        event_type = space.event_types[0] if space.event_types else "event"
        prediction = Prediction(task, events=(EventAnswer(event_type, NOISE_TEXT),))
    else:
        raise ValueError(f"record {record.id!r}: no wrong answer is defined for task {task!r}")
    return serialise(prediction, space)


def _other_label(gold: Sequence[str], names: Sequence[str] | None, rng: random.Random) -> str:
    others = [name for name in names or () if name not in set(gold)]
    return rng.choice(others) if others else NOISE_TEXT
