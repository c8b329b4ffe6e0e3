"""Evaluation speed: items/s per set through the job's Ray Data actor pool, and batched vs one-at-a-time
generation on the same items. Prints one JSON line per measurement.

    python benchmarks/eval.py                                  # tiny random Qwen2 on this machine's CPU
    python benchmarks/eval.py --shape qwen2.5-0.5b --device cuda --limit 64 --batch-size 32

The model is a random-weight Qwen2 of the given shape with the real Qwen2 tokenizer (or `--model DIR`,
an exported model). A random model never stops early, so every item generates exactly
`--max-new-tokens` tokens in both modes: the speed-up compares equal work (checked: the output token
counts of the two modes must be equal). Lines:
  {"bench": "eval_set", "set", "items", "items_per_s", "output_tokens_per_s", "device"}   per set (actor pool)
  {"bench": "eval_sets_total", "items", "wall_s", ...}                                  the pool's whole run
  {"bench": "batched_vs_single", "set", "items", "batch_size", "batched_items_per_s",
   "single_items_per_s", "speedup", "device"}                                            per set, and "set": "all"
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from taiyi_ray.runtime import prepare_process_env, setup_logging

REPO = Path(__file__).resolve().parent.parent
SHAPES: dict[str, dict[str, Any]] = {
    "tiny": {"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2},
    # Qwen2.5-0.5B's published shape (random weights; vocabulary from the Qwen2 tokenizer).
    "qwen2.5-0.5b": {
        "hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24, "num_attention_heads": 14,
        "num_key_value_heads": 2, "max_position_embeddings": 32768, "rope_theta": 1000000.0,
    },
}  # fmt: skip


def parse_args() -> argparse.Namespace:
    shared = Path(os.environ.get("TAIYI_SHARED", REPO.parent / "shared"))
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", help="an exported model directory (default: a random model of --shape)")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="tiny")
    parser.add_argument("--tokenizer", default=str(shared / "tokenizers" / "qwen2"))
    parser.add_argument("--catalogue", default=str(REPO / "configs" / "eval-13.yaml"))
    parser.add_argument(
        "--data",
        default=os.environ.get("TAIYI_SHARED_DATA", str(shared / "data")),
        help="the folder the catalogue's ${TAIYI_SHARED_DATA} names (default ../shared/data)",
    )
    parser.add_argument("--limit", type=int, default=16, help="items per set through the actor pool")
    parser.add_argument("--single-items", type=int, default=16, help="items per set for batched vs single")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--num-cpus", type=int, default=4, help="logical CPUs of the local Ray cluster")
    parser.add_argument(
        "--cpu-threads", type=int, default=1, help="torch threads for batched vs single on CPU"
    )
    parser.add_argument("--skip-pool", action="store_true", help="only batched vs single (no Ray)")
    return parser.parse_args()


def build_model(directory: Path, shape: str, tokenizer_dir: str) -> Path:
    """An export-shaped directory: random Qwen2 weights of `shape`, the Qwen2 tokenizer, Taiyi's format."""
    from taiyi_ray.config.model import TinyQwen2Shape
    from taiyi_ray.model.result import write_random_export

    return write_random_export(directory, tokenizer_dir, TinyQwen2Shape(**SHAPES[shape]))


def device_name(device: str) -> str:
    import torch

    return torch.cuda.get_device_name(0) if device == "cuda" else f"cpu x{os.cpu_count()}"


def load_sets(catalogue: str, limit: int) -> list:
    from taiyi_ray.data.catalogue import load_catalogue
    from taiyi_ray.eval.sets import load_eval_set
    from taiyi_ray.storage import Storage

    sets = [load_eval_set(entry, Storage(), limit, 0) for entry in load_catalogue(catalogue).datasets]
    present = [eval_set for eval_set in sets if not eval_set.missing]
    if not present:
        raise SystemExit(
            f"no set of {catalogue} has its file: expected them under $TAIYI_SHARED_DATA (--data)"
        )
    return present


def actor_pool_speed(args: argparse.Namespace, model_dir: Path, sets: list, scratch: Path) -> None:
    """The job's generation stage (Ray Data actor pool, cache empty) over every set; a line per set."""
    import ray

    from taiyi_ray.config.evaluation import EvalConfig, GenerationConfig
    from taiyi_ray.config.platform import RayConfig, StorageConfig
    from taiyi_ray.eval.actors import generate_with_actors
    from taiyi_ray.eval.cache import PredictionCache
    from taiyi_ray.eval.generate import generate_sets
    from taiyi_ray.runtime import init_ray
    from taiyi_ray.storage import Storage

    config = EvalConfig(
        catalogue=args.catalogue, model=str(model_dir), batch_size=args.batch_size,
        gpus_per_actor=1 if args.device == "cuda" else 0,
        generation=GenerationConfig(max_new_tokens=args.max_new_tokens),
    )  # fmt: skip
    storage = StorageConfig(root=str(scratch))
    init_ray(RayConfig(num_cpus=args.num_cpus))
    cache = PredictionCache(Storage(), str(scratch / "cache"), f"bench {time.time_ns()}", {})
    started = time.perf_counter()
    results = generate_sets(
        [(eval_set, "bench") for eval_set in sets],
        cache,
        lambda requests, on_result: generate_with_actors(requests, config, storage, on_result),
        Storage(),
        str(scratch / "run"),
    )
    wall = time.perf_counter() - started
    ray.shutdown()
    name = device_name(args.device)
    for eval_set in sets:
        timing = results[eval_set.name].timing
        tokens_per_s = timing.output_tokens / timing.generate_s if timing.generate_s else None
        emit(bench="eval_set", set=eval_set.name, items=timing.generated, items_per_s=timing.items_per_s,
             output_tokens_per_s=round(tokens_per_s, 1) if tokens_per_s else None, device=name)  # fmt: skip
    items = sum(results[s.name].timing.generated for s in sets)
    emit(bench="eval_sets_total", items=items, wall_s=round(wall, 2), items_per_s=round(items / wall, 3),
         batch_size=args.batch_size, max_new_tokens=args.max_new_tokens, device=name,
         note="wall includes the Ray Data pipeline start and the model load in the actor")  # fmt: skip


def timed(loaded, prompts: list[str], batch_size: int, settings) -> tuple[float, int]:
    """Seconds and output tokens of decoding `prompts` with the engine, `batch_size` sequences at once."""
    from taiyi_ray.model.engine import ContinuousBatcher

    ids = [loaded.tokenizer(prompt, add_special_tokens=False)["input_ids"] for prompt in prompts]
    batcher = ContinuousBatcher.for_model(loaded, max_sequences=batch_size)
    started = time.perf_counter()
    tokens = sum(len(item.token_ids) for item in batcher.generate(loaded, ids, settings))
    if loaded.model.device.type == "cuda":
        import torch

        torch.cuda.synchronize()
    return time.perf_counter() - started, tokens


def batched_vs_single(args: argparse.Namespace, model_dir: Path, sets: list) -> None:
    """The same items generated in batches of --batch-size and one at a time, in this process."""
    from taiyi_ray.model.factory import load_for_inference
    from taiyi_ray.model.generation import SamplingParams

    if args.device == "cpu":
        import torch

        # As the actors run (Ray gives an actor of 1 CPU one thread): more threads than free cores make
        # each small kernel wait on thread synchronisation, which swamps what is being compared.
        torch.set_num_threads(args.cpu_threads)
    loaded = load_for_inference(model_dir, device=args.device)
    settings = SamplingParams(max_new_tokens=args.max_new_tokens)
    timed(loaded, [loaded.chat_format.prompt_text(sets[0].items[0].messages)] * 2, 2, settings)  # warm-up
    totals = {"items": 0, "batched_s": 0.0, "single_s": 0.0}
    name = device_name(args.device)
    for eval_set in sets:
        prompts = [
            loaded.chat_format.prompt_text(item.messages) for item in eval_set.items[: args.single_items]
        ]
        batched_s, batched_tokens = timed(loaded, prompts, args.batch_size, settings)
        single_s, single_tokens = timed(loaded, prompts, 1, settings)
        if batched_tokens != single_tokens:
            raise SystemExit(
                f"{eval_set.name}: unequal work, {batched_tokens} vs {single_tokens} output tokens"
            )
        emit(bench="batched_vs_single", set=eval_set.name, items=len(prompts), batch_size=args.batch_size,
             batched_items_per_s=round(len(prompts) / batched_s, 3), single_items_per_s=round(len(prompts) / single_s, 3),
             speedup=round(single_s / batched_s, 2), device=name)  # fmt: skip
        totals["items"] += len(prompts)
        totals["batched_s"] += batched_s
        totals["single_s"] += single_s
    emit(bench="batched_vs_single", set="all", items=totals["items"], batch_size=args.batch_size,
         batched_items_per_s=round(totals["items"] / totals["batched_s"], 3),
         single_items_per_s=round(totals["items"] / totals["single_s"], 3),
         speedup=round(totals["single_s"] / totals["batched_s"], 2), max_new_tokens=args.max_new_tokens,
         device=name)  # fmt: skip


def emit(**values: object) -> None:
    print(json.dumps(values, ensure_ascii=False), flush=True)


def main() -> None:
    args = parse_args()
    prepare_process_env()
    setup_logging()
    os.environ["TAIYI_SHARED_DATA"] = str(Path(args.data).resolve())
    with tempfile.TemporaryDirectory(prefix="taiyi-bench-eval-") as scratch:
        model_dir = (
            Path(args.model)
            if args.model
            else build_model(Path(scratch) / "model", args.shape, args.tokenizer)
        )
        sets = load_sets(args.catalogue, max(args.limit, args.single_items))
        pool_sets = [type(s)(s.entry, s.items[: args.limit], s.missing, s.source_items) for s in sets]
        if not args.skip_pool:
            actor_pool_speed(args, model_dir, pool_sets, Path(scratch))
        batched_vs_single(args, model_dir, sets)


if __name__ == "__main__":
    main()
