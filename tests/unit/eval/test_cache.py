"""The prediction cache's keys (model files, settings, prompt) and its part files; the endpoint's body."""

from __future__ import annotations

from pathlib import Path

import pytest

from taiyi_ray.config.evaluation import GenerationConfig
from taiyi_ray.eval.cache import PART_LINES, PredictionCache, model_fingerprint
from taiyi_ray.eval.endpoint import request_body
from taiyi_ray.eval.generation_types import RawOutput, settings_key
from taiyi_ray.storage import Storage


def test_fingerprint_follows_file_contents_not_paths(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    for folder in (first, second):
        folder.mkdir()
        (folder / "config.json").write_text('{"hidden_size": 8}')
        (folder / "model.safetensors").write_bytes(bytes(range(256)) * 20_000)  # > 4 MiB: edges hashed
    assert model_fingerprint(Storage(), str(first)) == model_fingerprint(Storage(), str(second))
    (second / "config.json").write_text('{"hidden_size": 9}')
    assert model_fingerprint(Storage(), str(first)) != model_fingerprint(Storage(), str(second))
    before = model_fingerprint(Storage(), str(first))
    weights = bytearray((first / "model.safetensors").read_bytes())
    weights[-1] ^= 1  # a change in the last MiB of a large file
    (first / "model.safetensors").write_bytes(bytes(weights))
    assert model_fingerprint(Storage(), str(first)) != before


def test_greedy_settings_key_ignores_sampling_parameters() -> None:
    greedy = settings_key(GenerationConfig(max_new_tokens=16))
    assert greedy == settings_key(GenerationConfig(max_new_tokens=16, temperature=0.3, top_p=0.9, seed=4))
    assert greedy != settings_key(GenerationConfig(max_new_tokens=17))
    sampled = settings_key(GenerationConfig(do_sample=True, temperature=0.3))
    assert sampled != settings_key(GenerationConfig(do_sample=True, temperature=0.4))


def test_cache_round_trip_in_parts_and_namespaces(tmp_path: Path) -> None:
    storage = Storage()
    cache = PredictionCache(storage, str(tmp_path), "model X settings Y", {"note": "test"})
    writer = cache.writer("SET")
    outputs = {f"k{i}": RawOutput(f"text {i}", "length", 3, 8) for i in range(PART_LINES + 5)}
    for key, output in outputs.items():
        writer.add(key, output)
    assert len(list((tmp_path / cache.namespace / "SET").glob("part-*.jsonl"))) == 1  # one full part so far
    writer.flush()
    assert cache.load("SET") == outputs
    assert PredictionCache(storage, str(tmp_path), "model X settings Z", {}).load("SET") == {}
    assert cache.load("OTHER") == {}


def test_endpoint_body_is_greedy_unless_sampling() -> None:
    messages = [{"role": "user", "content": "hi"}]
    body = request_body("m", messages, GenerationConfig(max_new_tokens=5, temperature=0.3))
    assert body == {"model": "m", "messages": messages, "max_tokens": 5, "temperature": 0.0, "stream": False}
    sampled = request_body(
        "m", messages, GenerationConfig(do_sample=True, temperature=0.3, top_p=0.9, seed=2)
    )
    assert (sampled["temperature"], sampled["top_p"], sampled["seed"]) == (0.3, 0.9, 2)


def test_a_generator_failure_keeps_what_was_generated_for_the_rerun(tmp_path: Path) -> None:
    """Fault injection: the generator dies after 3 answers; the rerun is asked only for the rest."""
    from taiyi_ray.data.catalogue import load_catalogue
    from taiyi_ray.eval.generate import generate_sets
    from taiyi_ray.eval.sets import load_eval_set

    repo = Path(__file__).resolve().parents[3]
    catalogue = load_catalogue(str(repo / "configs" / "catalogues" / "demo-eval.yaml"))
    entry = next(entry for entry in catalogue.datasets if entry.name == "NCBI-Disease")
    eval_set = load_eval_set(entry.model_copy(update={"uri": str(repo / entry.uri)}), Storage(), None, 0)
    gold = {item.prompt_key: item.gold_answer for item in eval_set.items}
    cache = PredictionCache(Storage(), str(tmp_path / "cache"), "model M", {})
    asked: list[int] = []

    def dies_after_three(requests, on_result) -> None:
        asked.append(len(requests))
        for request in requests[:3]:
            on_result(request.set_name, request.key, RawOutput(gold[request.key], "stop"), 0.1)
        raise RuntimeError("actor died")

    def answers_all(requests, on_result) -> None:
        asked.append(len(requests))
        for request in requests:
            on_result(request.set_name, request.key, RawOutput(gold[request.key], "stop"), 0.1)

    with pytest.raises(RuntimeError, match="actor died"):
        generate_sets([(eval_set, "f")], cache, dies_after_three, Storage(), str(tmp_path / "run"))
    assert len(cache.load(eval_set.name)) == 3
    results = generate_sets([(eval_set, "f")], cache, answers_all, Storage(), str(tmp_path / "run"))
    assert asked == [len(gold), len(gold) - 3]
    assert results[eval_set.name].score == 100.0 and results[eval_set.name].timing.cached == 3
