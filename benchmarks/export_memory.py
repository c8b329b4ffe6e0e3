"""Peak memory of `export` against the size of what it writes (issue 13: goal <= 1.5x).

Builds a bf16 base of Qwen2.5-0.5B's shape with random weights (no download: the shape is written out
below, from the model's published config.json), a LoRA stage result over it (all-linear, r=16) and,
with `--method full`, a full fine-tuning result whose weights are float32 as CPU training saves them.
Then each export runs in a fresh process that reports its RSS after the imports and its peak RSS
(VmHWM) after `export_model`; the figure is (peak - after imports) / size of the written safetensors.
Baseline in the same run: the same process loading the base with plain `from_pretrained` and saving it
(`baseline_load_save`), so the ratio to it shows what the export adds on top of one copy of the model.

    python benchmarks/export_memory.py [--method lora|full|both] [--shape 0.5b|tiny]

Prints one JSON line per case.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

QWEN25_05B = {
    "hidden_size": 896,
    "intermediate_size": 4864,
    "num_hidden_layers": 24,
    "num_attention_heads": 14,
    "num_key_value_heads": 2,
    "vocab_size": 151936,
    "tie_word_embeddings": True,
    "rope_theta": 1000000.0,
    "max_position_embeddings": 32768,
}
TINY = {**QWEN25_05B, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 4, "vocab_size": 2048}  # fmt: skip

MEASURE = r"""
import json, sys, time
def rss_kib(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
import torch, transformers, peft  # noqa: F401
from transformers import AutoModelForCausalLM
from taiyi_ray.storage import Storage
from taiyi_ray.train.export import export_model
case, run, output = sys.argv[1], sys.argv[2], sys.argv[3]
after_imports = rss_kib("VmRSS")
started = time.perf_counter()
if case == "baseline_load_save":
    AutoModelForCausalLM.from_pretrained(run, dtype=torch.bfloat16).save_pretrained(output)
else:
    export_model(Storage(), run, output, True, "bench", "research")
print(json.dumps({"after_imports_kib": after_imports, "peak_kib": rss_kib("VmHWM"),
                  "seconds": time.perf_counter() - started}))
"""


def build_runs(folder: Path, shape: dict, methods: list[str]) -> dict[str, Path]:
    """The bf16 base and one stage result per method (what a stage run dir holds for export)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, Qwen2Config

    from taiyi_ray.data.chat_format import get_chat_format
    from taiyi_ray.data.tokenizer import configure_tokenizer, save_tokenizer, train_bpe_tokenizer
    from taiyi_ray.model.result import TrainedModel, write_result
    from taiyi_ray.storage import Storage

    tokenizer = configure_tokenizer(
        train_bpe_tokenizer(["aspirin causes bleeding"] * 20, 300), get_chat_format("taiyi")
    )
    torch.manual_seed(0)
    config = Qwen2Config(**shape, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(folder / "base")
    save_tokenizer(tokenizer, folder / "base")
    runs = {"baseline_load_save": folder / "base"}
    for method in methods:
        run = folder / f"run-{method}"
        if method == "lora":
            adapter = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear"))
            with torch.no_grad():
                for name, parameter in adapter.named_parameters():
                    if "lora_B" in name:
                        parameter.normal_(0, 0.01)
            adapter.save_pretrained(str(run / "model" / "adapter"))
            model = adapter.unload()
        else:
            model.float().save_pretrained(run / "model" / "weights")  # CPU training saves float32
            model = model.to(torch.bfloat16)
        tokenizer.save_pretrained(run / "model" / "tokenizer")
        result = TrainedModel(method, str(folder / "base"), "taiyi", "stage1",
                              adapter="adapter" if method == "lora" else None,
                              weights="weights" if method == "full" else None)  # fmt: skip
        write_result(Storage(), str(run / "model"), result)
        runs[f"export_{method}"] = run
    return runs


def measure(case: str, run: Path, output: Path) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, case, str(run), str(output)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=1800, env={"HF_HUB_OFFLINE": "1", **_env()},
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"{case} failed:\n{done.stderr[-3000:]}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    written = sum(path.stat().st_size for path in output.glob("*.safetensors"))
    added = (figures["peak_kib"] - figures["after_imports_kib"]) * 1024
    return {
        "case": case,
        "written_gib": round(written / 2**30, 3),
        "peak_minus_imports_gib": round(added / 2**30, 3),
        "ratio_to_written": round(added / written, 3),
        "seconds": round(figures["seconds"], 1),
    }


def _env() -> dict[str, str]:
    import os

    return {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", choices=["lora", "full", "both"], default="both")
    parser.add_argument("--shape", choices=["0.5b", "tiny"], default="0.5b")
    args = parser.parse_args()
    methods = ["lora", "full"] if args.method == "both" else [args.method]
    with tempfile.TemporaryDirectory(prefix="taiyi-export-memory-") as scratch:
        folder = Path(scratch)
        runs = build_runs(folder, QWEN25_05B if args.shape == "0.5b" else TINY, methods)
        baseline = None
        for case, run in runs.items():
            line = measure(case, run, folder / f"out-{case}")
            if baseline is None:
                baseline = line["peak_minus_imports_gib"]
            else:
                line["ratio_to_baseline"] = round(line["peak_minus_imports_gib"] / baseline, 3)
            print(json.dumps({"shape": args.shape, **line}), flush=True)


if __name__ == "__main__":
    main()
