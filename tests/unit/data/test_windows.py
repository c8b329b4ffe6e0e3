"""Windows of long documents: bounded, never cutting a mention, and losing none."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from taiyi_ray.data.schema import Entity, Record
from taiyi_ray.data.windows import ELLIPSIS, cut, window_record

words = st.text(st.sampled_from("abcde"), min_size=1, max_size=9)


@st.composite
def documents(draw: st.DrawFn) -> Record:
    tokens = draw(
        st.lists(st.tuples(words, st.sampled_from([" ", " ", ". ", "。", "\n"])), min_size=1, max_size=80)
    )
    text = "".join(word + gap for word, gap in tokens).strip() or "a"
    spans = draw(st.lists(st.tuples(st.integers(0, len(text) - 1), st.integers(1, 25)), max_size=15))
    entities = []
    for number, (start, length) in enumerate(spans):
        end = min(start + length, len(text))
        if (
            text[start:end].strip() == text[start:end]
        ):  # mentions have no outer spaces (nested/overlapping allowed)
            entities.append(Entity(id=f"T{number}", type="X", text=text[start:end], offsets=[(start, end)]))
    return Record(
        id="d", document_id="d", dataset="t", language="en", task="ner", text=text, entities=entities
    )


@settings(max_examples=300, deadline=None)
@given(record=documents(), max_chars=st.integers(min_value=10, max_value=120))
def test_windows_keep_every_mention_exactly_once(record: Record, max_chars: int) -> None:
    windows = window_record(record, max_chars)
    positions: list[int] = []
    for window in windows.records:
        Record.model_validate(window.model_dump())  # offsets still spell the mentions
        # a window is longer than the bound only to avoid cutting a mention that crosses the bound
        ends = [last for entity in window.entities for _, last in entity.offsets or ()]
        assert len(window.text) <= max_chars or max(ends, default=0) > max_chars
        start = record.text.index(window.text, positions[-1] if positions else 0)
        positions.append(start + len(window.text))
        for entity in window.entities:
            ((first, last),) = entity.offsets or [(0, 0)]
            assert record.text[start + first : start + last] == entity.text
    kept = [entity.id for window in windows.records for entity in window.entities]
    assert sorted(kept) == sorted(entity.id for entity in record.entities)
    assert not windows.windowed or len(record.text) > max_chars
    assert "".join(window.text for window in windows.records).replace(" ", "").replace(
        "\n", ""
    ) == record.text.replace(" ", "").replace("\n", "")


def test_cut_prefers_a_space_and_marks_the_cut() -> None:
    assert cut("short", 10) == ("short", False)
    text, was_cut = cut("alpha beta gamma delta epsilon", 20)
    assert was_cut and text == "alpha beta gamma" + ELLIPSIS and len(text) <= 20
