"""The inference engine (`taiyi_ray.model.engine.ContinuousBatcher`) against Hugging Face `generate`, and
its invariants: batch invariance (the same tokens and bitwise the same logprobs alone and in batches of 2
to 32), seeds, repetition penalty, stop strings, streamed deltas joining to the final text, cancellation,
sequences joining a running batch, logprobs == prompt scoring."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from taiyi_ray.data.schema import Message
from taiyi_ray.model.engine import ContinuousBatcher
from taiyi_ray.model.factory import LoadedModel, load_for_inference
from taiyi_ray.model.generation import (
    Completion,
    IncrementalText,
    RowListener,
    SamplingParams,
    end_token_id,
    prompt_logprobs,
)

QUESTIONS = ["What is aspirin used for?", "x", "患者出现发热咳嗽，诊断为肺炎。"]


def prompts(loaded: LoadedModel) -> list[str]:
    return [loaded.chat_format.prompt_text([Message(role="user", content=q)]) for q in QUESTIONS]


def encode(loaded: LoadedModel, texts: list[str]) -> list[list[int]]:
    return [loaded.tokenizer(text, add_special_tokens=False)["input_ids"] for text in texts]


def decode(
    loaded: LoadedModel,
    ids: list[list[int]],
    params: list[SamplingParams],
    listeners: list[RowListener | None] | None = None,
    max_sequences: int = 32,
) -> list[Completion]:
    return ContinuousBatcher.for_model(loaded, max_sequences=max_sequences).generate(
        loaded, ids, params, listeners
    )


def many_prompts(loaded: LoadedModel, count: int = 32) -> list[list[int]]:
    """Prompts of many lengths (1 to ~40 tokens of text), as a server sees them."""
    words = ["aspirin", "fever", "cough", "肺炎", "patient", "dose", "mg", "咳嗽", "the", "of", "trial"]
    questions = [" ".join(words[(i * 7) % 11 :] + words[: i % 11]) * (1 + i % 3) for i in range(count)]
    return encode(
        loaded, [loaded.chat_format.prompt_text([Message(role="user", content=q)]) for q in questions]
    )


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
    ids = encode(loaded, prompts(loaded))
    ours = decode(loaded, ids, [SamplingParams(max_new_tokens=12)] * len(ids))
    for row, prompt in zip(ours, ids, strict=True):
        reference = loaded.model.generate(
            torch.tensor([prompt]), max_new_tokens=12, do_sample=False, eos_token_id=end_token_id(loaded),
            pad_token_id=loaded.tokenizer.pad_token_id,
        )[0, len(prompt) :].tolist()  # fmt: skip
        assert row.token_ids == reference
        assert row.text == loaded.tokenizer.decode(reference, skip_special_tokens=True)
        assert row.prompt_tokens == len(prompt) and row.finish_reason == "length"


@pytest.fixture(scope="module")
def wide(tmp_path_factory: pytest.TempPathFactory, qwen2_tokenizer_dir: Path) -> Iterator[LoadedModel]:
    """A random Qwen2 with the widths where MKL's row-count effects reach 12-16 rows (hidden 256, MLP 896)."""
    from taiyi_ray.config.model import TinyQwen2Shape
    from taiyi_ray.model.result import write_random_export

    shape = TinyQwen2Shape(
        hidden_size=256, intermediate_size=896, num_attention_heads=8, num_key_value_heads=2
    )
    directory = write_random_export(tmp_path_factory.mktemp("wide"), qwen2_tokenizer_dir, shape, seed=1)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield load_for_inference(directory)
    torch.set_num_threads(threads)


@pytest.mark.parametrize(
    ("model", "max_sequences"),
    [("loaded", 2), ("loaded", 3), ("loaded", 8), ("loaded", 32), ("wide", 5), ("wide", 32)],
)
def test_greedy_tokens_and_logprobs_are_batch_invariant(
    model: str, max_sequences: int, request: pytest.FixtureRequest
) -> None:
    """The same sequences alone and in running batches of up to 2..32 (joining and leaving as others end:
    max_tokens differ) give the same tokens and bitwise the same logprobs. (With fewer than 16 matrix rows
    per pass, the wide model's logprobs differ in the last bits here.)"""
    loaded: LoadedModel = request.getfixturevalue(model)
    ids = many_prompts(loaded, 32 if model == "loaded" else 12)
    params = [SamplingParams(max_new_tokens=3 + i % 9, logprobs=0) for i in range(len(ids))]
    alone = [decode(loaded, [prompt], [p])[0] for prompt, p in zip(ids, params, strict=True)]
    together = decode(loaded, ids, params, max_sequences=max_sequences)
    assert [row.token_ids for row in together] == [row.token_ids for row in alone]
    assert [[t.logprob for t in row.logprobs or []] for row in together] == [
        [t.logprob for t in row.logprobs or []] for row in alone
    ]


def test_seeded_sample_is_the_same_in_any_batch(loaded: LoadedModel) -> None:
    ids = many_prompts(loaded, 12)
    params = [SamplingParams(max_new_tokens=10, temperature=0.9, top_p=0.95, seed=i) for i in range(12)]
    alone = [decode(loaded, [prompt], [p])[0].token_ids for prompt, p in zip(ids, params, strict=True)]
    assert [row.token_ids for row in decode(loaded, ids, params, max_sequences=5)] == alone


def test_sequences_join_a_running_batch_at_any_step(loaded: LoadedModel) -> None:
    """Continuous batching: a sequence submitted while others run joins at the next step, and one that
    ends leaves at once; every result equals decoding alone."""
    ids = many_prompts(loaded, 6)
    batcher = ContinuousBatcher.for_model(loaded, max_sequences=8)
    first = [batcher.submit(prompt, SamplingParams(max_new_tokens=20)) for prompt in ids[:3]]
    for _ in range(5):
        batcher.step(loaded)
    late = [batcher.submit(prompt, SamplingParams(max_new_tokens=4)) for prompt in ids[3:]]
    batcher.step(loaded)
    assert batcher.stats.largest_batch == 6
    while batcher.has_work():
        batcher.step(loaded)
    assert all(s.result is not None for s in late) and first[0].result is not None
    assert batcher.stats.steps == 20  # the late ones ran inside the first ones' 20 steps
    for sequence, prompt in zip(first + late, ids, strict=True):
        expected = decode(loaded, [prompt], [sequence.params])[0]
        assert sequence.result is not None and sequence.result.token_ids == expected.token_ids


def test_static_scheduling_waits_for_the_batch_to_end(loaded: LoadedModel) -> None:
    ids = many_prompts(loaded, 4)
    batcher = ContinuousBatcher.for_model(loaded, max_sequences=2, scheduling="static")
    results = batcher.generate(loaded, ids, [SamplingParams(max_new_tokens=n) for n in (2, 6, 2, 6)])
    assert [len(row.token_ids) for row in results] == [2, 6, 2, 6]
    assert batcher.stats.steps == 12  # two batches of 6 steps: the short rows keep their slots
    assert batcher.stats.largest_batch == 2
    continuous = decode(loaded, ids, [SamplingParams(max_new_tokens=n) for n in (2, 6, 2, 6)])
    assert [row.token_ids for row in results] == [row.token_ids for row in continuous]


def test_repetition_penalty_follows_hugging_face(loaded: LoadedModel) -> None:
    ids = encode(loaded, prompts(loaded))[:1]
    ours = decode(loaded, ids, [SamplingParams(max_new_tokens=12, repetition_penalty=1.8)])[0].token_ids
    reference = loaded.model.generate(
        torch.tensor(ids), max_new_tokens=12, do_sample=False, repetition_penalty=1.8,
        eos_token_id=end_token_id(loaded), pad_token_id=loaded.tokenizer.pad_token_id,
    )[0, len(ids[0]) :].tolist()  # fmt: skip
    assert ours == reference
    assert ours != decode(loaded, ids, [SamplingParams(max_new_tokens=12)])[0].token_ids


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


def test_grammar_constrains_the_output_to_a_json_schema(loaded: LoadedModel) -> None:
    """A random model's output, constrained to a finite JSON language, is always a sentence of it and ends
    with the end token; unconstrained, the same model writes no JSON at all."""
    import json

    from outlines_core.json_schema import build_regex_from_schema

    from taiyi_ray.model.generation import OutputGrammar

    schema = {
        "type": "object",
        "properties": {"answer": {"enum": ["yes", "no", "maybe"]}, "sure": {"type": "boolean"}},
        "required": ["answer", "sure"],
    }
    grammar = OutputGrammar(
        build_regex_from_schema(json.dumps(schema)), loaded.tokenizer, end_token_id(loaded)
    )
    ids = many_prompts(loaded, 8)
    params = [SamplingParams(max_new_tokens=40, temperature=1.0, seed=i, grammar=grammar) for i in range(8)]
    constrained = decode(
        loaded, [*ids, ids[0]], [*params, SamplingParams(max_new_tokens=40, grammar=grammar)]
    )
    for row in constrained:
        assert row.finish_reason == "stop", row
        value = json.loads(row.text)
        assert set(value) == {"answer", "sure"} and value["answer"] in ("yes", "no", "maybe")
        assert isinstance(value["sure"], bool)
    free = decode(loaded, ids[:1], [SamplingParams(max_new_tokens=40)])[0]
    with pytest.raises(json.JSONDecodeError):
        json.loads(free.text)


@pytest.mark.parametrize("temperature", [5e-324, 1e-300, 1e-30])
def test_a_tiny_temperature_is_greedy_not_nan(loaded: LoadedModel, temperature: float) -> None:
    ids = encode(loaded, prompts(loaded))[:1]
    greedy = decode(loaded, ids, [SamplingParams(max_new_tokens=8)])[0].token_ids
    cold = decode(loaded, ids, [SamplingParams(max_new_tokens=8, temperature=temperature, seed=1)])[0]
    assert cold.token_ids == greedy


@pytest.mark.parametrize("scheduling", ["continuous", "static"])
def test_batched_attention_and_its_graphs_decode_as_the_exact_path(
    wide: LoadedModel, scheduling: Literal["continuous", "static"]
) -> None:
    """The CUDA path's attention (`attention="batched"`: one call over a slot cache with a length mask),
    run here on CPU, with and without `DecodeGraphs` (its static pass runs eagerly here: rows padded to a
    power of two through the scratch slot, the span padded to a power of two, recaptured when the store
    grows): 12 sequences through 5 slots (freed slots reused, sequences joining a running batch), 70-100
    tokens each so that the slot cache grows past its first 64 positions. Same tokens as the exact
    per-sequence path and logprobs within 1e-4 (only summation order differs)."""
    ids = many_prompts(wide, 12)
    params = [SamplingParams(max_new_tokens=70 + 3 * i, logprobs=0) for i in range(len(ids))]

    def run(attention: Literal["exact", "batched"], graphs: bool = False) -> list[Completion]:
        batcher = ContinuousBatcher(
            wide.tokenizer, end_token_id(wide), 5, scheduling=scheduling, attention=attention, graphs=graphs
        )
        completions = batcher.generate(wide, ids, params)
        if graphs:  # rows 1, 2, 4 and 5 (the slots) at spans 64 and 128, some recaptured after a growth
            assert batcher.graphs is not None and batcher.graphs.captures >= 6
        return completions

    exact = run("exact")
    for other in (run("batched"), run("batched", graphs=True)):
        assert [row.token_ids for row in other] == [row.token_ids for row in exact]
        assert all(len(row.token_ids) == p.max_new_tokens for row, p in zip(other, params, strict=True))
        for ours, theirs in zip(other, exact, strict=True):
            got = torch.tensor([t.logprob for t in ours.logprobs or []])
            want = torch.tensor([t.logprob for t in theirs.logprobs or []])
            assert got.shape == want.shape and torch.allclose(got, want, atol=1e-4), (got - want).abs().max()


def test_graphs_are_replayed_until_the_slot_store_moves(wide: LoadedModel) -> None:
    """A captured graph holds the store's tensors of its capture: the same (rows, span) bucket replays it,
    and a reallocated store (any layer growing) makes every graph be captured again. On a GPU a stale graph
    would read and write freed memory; here the counts show the decision."""
    batcher = ContinuousBatcher(wide.tokenizer, end_token_id(wide), 4, attention="batched", graphs=True)
    graphs = batcher.graphs
    assert graphs is not None
    prompt = many_prompts(wide, 1)[0]
    assert len(prompt) < 60  # prefill and a few steps stay within the first span of 64 positions
    batcher.submit(prompt, SamplingParams(max_new_tokens=20))
    batcher.step(wide)  # the prefill: an eager pass, nothing captured
    assert graphs.captures == 0
    for _ in range(3):  # one row, span 64: captured once, then replayed
        batcher.step(wide)
    assert graphs.captures == 1
    keys = graphs.store.keys[0]
    graphs.store.reserve(0, keys[0, :, :1], keys.shape[2] + 1)  # layer 0's store is reallocated
    batcher.step(wide)
    assert graphs.captures == 2


def test_graphs_need_the_batched_attention(wide: LoadedModel) -> None:
    with pytest.raises(ValueError, match='attention="batched"'):
        ContinuousBatcher(wide.tokenizer, end_token_id(wide), 4, attention="exact", graphs=True)
