"""The serving decoder (`taiyi_ray.model.generation.decode`) against Hugging Face `generate`, and its
invariants: seeds, stop strings, streamed deltas joining to the final text, logprobs == prompt scoring."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from taiyi_ray.data.schema import Message
from taiyi_ray.model.generation import (
    Completion,
    GenerationSettings,
    IncrementalText,
    SamplingParams,
    decode,
    generate_batch,
    prompt_logprobs,
)
from taiyi_ray.model.inference import LoadedModel

QUESTIONS = ["What is aspirin used for?", "x", "患者出现发热咳嗽，诊断为肺炎。"]


def prompts(loaded: LoadedModel) -> list[str]:
    return [loaded.chat_format.prompt_text([Message(role="user", content=q)]) for q in QUESTIONS]


def encode(loaded: LoadedModel, texts: list[str]) -> list[list[int]]:
    return [loaded.tokenizer(text, add_special_tokens=False)["input_ids"] for text in texts]


class Recorder:
    """A RowListener that keeps what the decoder reports."""

    def __init__(self, stream: bool = True, cancel_after: int | None = None) -> None:
        self.stream = stream
        self.deltas: list[str] = []
        self.done: list[Completion] = []
        self.cancel_after = cancel_after

    def on_delta(self, text: str) -> None:
        self.deltas.append(text)

    def on_done(self, completion: Completion) -> None:
        self.done.append(completion)

    def is_cancelled(self) -> bool:
        return self.cancel_after is not None and len(self.deltas) >= self.cancel_after


def test_greedy_decode_equals_hugging_face_generate(loaded: LoadedModel) -> None:
    texts = prompts(loaded)
    reference = generate_batch(loaded, texts, GenerationSettings(max_new_tokens=12))
    ours = decode(loaded, encode(loaded, texts), [SamplingParams(max_new_tokens=12)] * len(texts))
    assert [row.token_ids for row in ours] == [row.token_ids for row in reference]
    assert [row.text for row in ours] == [row.text for row in reference]
    assert [row.prompt_tokens for row in ours] == [row.prompt_tokens for row in reference]
    assert all(row.finish_reason == "length" and len(row.token_ids) == 12 for row in ours)


def test_rows_keep_their_own_max_tokens(loaded: LoadedModel) -> None:
    ids = encode(loaded, prompts(loaded))
    ours = decode(loaded, ids, [SamplingParams(max_new_tokens=n) for n in (3, 0, 7)])
    assert [len(row.token_ids) for row in ours] == [3, 0, 7]
    assert ours[1].text == "" and ours[1].finish_reason == "length"
    alone = decode(loaded, ids[2:], [SamplingParams(max_new_tokens=7)])
    assert alone[0].token_ids == ours[2].token_ids


def test_seed_fixes_the_sample_and_different_seeds_differ(loaded: LoadedModel) -> None:
    ids = encode(loaded, prompts(loaded))[:1]
    sampled = [
        decode(loaded, ids, [SamplingParams(max_new_tokens=16, temperature=1.0, seed=seed)])[0]
        for seed in (1, 1, 2)
    ]
    assert sampled[0].token_ids == sampled[1].token_ids
    assert sampled[0].token_ids != sampled[2].token_ids
    greedy = decode(loaded, ids, [SamplingParams(max_new_tokens=16)])[0]
    assert (
        sampled[0].token_ids != greedy.token_ids
    )  # a random model's distribution is flat: sampling must show


def test_sampling_limits_are_greedy(loaded: LoadedModel) -> None:
    ids = encode(loaded, prompts(loaded))[:1]
    greedy = decode(loaded, ids, [SamplingParams(max_new_tokens=10)])[0].token_ids
    cold = decode(loaded, ids, [SamplingParams(max_new_tokens=10, temperature=1e-4, seed=3)])[0].token_ids
    narrow = decode(loaded, ids, [SamplingParams(max_new_tokens=10, temperature=1.0, top_p=1e-9, seed=3)])[
        0
    ].token_ids
    assert cold == greedy
    assert narrow == greedy  # the nucleus of a tiny top_p is the single most likely token


def test_stop_string_cuts_the_text(loaded: LoadedModel) -> None:
    ids = encode(loaded, prompts(loaded))[:1]
    full = decode(loaded, ids, [SamplingParams(max_new_tokens=12)])[0]
    stop = full.text[len(full.text) // 2 : len(full.text) // 2 + 3]
    cut = decode(loaded, ids, [SamplingParams(max_new_tokens=12, stop=(stop,))])[0]
    assert cut.finish_reason == "stop"
    assert cut.text == full.text[: full.text.index(stop)]
    assert len(cut.token_ids) < len(full.token_ids)


def test_streamed_deltas_join_to_the_final_text(loaded: LoadedModel) -> None:
    ids = encode(loaded, prompts(loaded))
    listeners = [Recorder(), Recorder(), Recorder(stream=False)]
    params = [
        SamplingParams(max_new_tokens=20, temperature=1.0, seed=5, stop=("zz", "。")),
        SamplingParams(max_new_tokens=9),
        SamplingParams(max_new_tokens=4),
    ]
    results = decode(loaded, ids, params, listeners=listeners)
    for listener, result in zip(listeners[:2], results, strict=False):
        assert "".join(listener.deltas) == result.text
        assert listener.done == [result]
    assert listeners[2].deltas == [] and listeners[2].done == [results[2]]


def test_cancelled_row_stops_early(loaded: LoadedModel) -> None:
    ids = encode(loaded, prompts(loaded))[:1]
    listener = Recorder(cancel_after=2)
    result = decode(loaded, ids, [SamplingParams(max_new_tokens=50)], listeners=[listener])[0]
    assert result.finish_reason == "cancelled"
    assert len(result.token_ids) < 50


def test_logprobs_match_scoring_the_same_tokens(loaded: LoadedModel) -> None:
    """What /v1/completions echo scoring relies on: decode-time logprobs == a forward pass over the text."""
    ids = encode(loaded, prompts(loaded))[0]
    generated = decode(loaded, [ids], [SamplingParams(max_new_tokens=6, logprobs=3)])[0]
    assert generated.logprobs is not None and len(generated.logprobs) == 6
    for item in generated.logprobs:  # greedy: the chosen token is the most likely one
        assert item.top[0][0] == item.token_id
        assert item.logprob == pytest.approx(item.top[0][1])
    scored = prompt_logprobs(loaded, ids + generated.token_ids, top_k=2)
    assert scored[0] is None and len(scored) == len(ids) + 6
    for item, again in zip(generated.logprobs, scored[len(ids) :], strict=True):
        assert again is not None and again.token_id == item.token_id
        assert again.logprob == pytest.approx(item.logprob, abs=1e-4)


@pytest.fixture(scope="module")
def tokenizer(loaded: LoadedModel):
    return loaded.tokenizer


# Ids from all over the vocabulary, incl. byte tokens that end inside a UTF-8 character (Chinese text).
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_incremental_text_deltas_always_join_to_the_text(tokenizer, data: st.DataObject) -> None:
    pool = tokenizer("肺炎 aspirin 咳嗽, the—é 😀 zz", add_special_tokens=False)["input_ids"]
    token = st.one_of(st.sampled_from(pool), st.integers(0, 151_000))
    ids = data.draw(st.lists(token, max_size=24))
    stop = data.draw(st.lists(st.sampled_from(["zz", "炎", " the", "\n", "é"]), max_size=2))
    text = IncrementalText(tokenizer, stop)
    deltas = []
    for end in range(1, len(ids) + 1):
        deltas.append(text.update(ids[:end]))
        if text.stopped:
            break
    deltas.append(text.finish())
    full = tokenizer.decode(
        ids[: end if ids else 0], skip_special_tokens=True, clean_up_tokenization_spaces=False
    )
    cut = min([index for index in (full.find(s) for s in stop) if index >= 0], default=len(full))
    assert "".join(deltas) == text.text == full[:cut]


def test_prompt_logprobs_first_token_has_none(loaded: LoadedModel) -> None:
    scored = prompt_logprobs(loaded, [1, 2, 3], top_k=0)
    assert scored[0] is None
    assert all(item is not None and item.top == () and item.logprob <= 0 for item in scored[1:])
    assert torch.isfinite(torch.tensor([item.logprob for item in scored[1:] if item is not None])).all()
