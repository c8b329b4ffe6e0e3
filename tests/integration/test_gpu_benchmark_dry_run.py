"""benchmarks/gpu_train.py is the script a session with a GPU machine runs in its few device minutes:
it must not first fail there. Its CPU dry run (tiny shape for every case) goes through the same code —
the anchor from ../shared/gpu in its own process, rows packed from the committed length distribution
written as a shard version, a saved random base, our Ray Train stage-1 job once with torch.compile and
once as the 7B case's LoRA with gradient checkpointing, the ratios and the summary line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
CASES = ["anchor_full", "anchor_lora_7b", "ours_sdpa_compile", "ours_lora_7b", "ours_flex_compile"]
MEASURED_STEPS = 2


def test_gpu_benchmark_runs_on_cpu_against_the_anchor(shared_dir: Path, tmp_path: Path) -> None:
    command = [
        sys.executable,
        "benchmarks/gpu_train.py",
        "--anchor",
        str(shared_dir / "gpu" / "sft_anchor.py"),
    ]
    command += ["--shape", "tiny", "--device", "cpu", "--mb", "2", "--seq", "128", "--cases", ",".join(CASES)]
    command += [
        "--steps",
        str(MEASURED_STEPS),
        "--warmup",
        "2",
        "--budget-s",
        "900",
        "--log-dir",
        str(tmp_path),
    ]
    env = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"} | {"HF_HUB_OFFLINE": "1"}
    done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    print(done.stdout)  # the case lines, for the log of a failing run
    assert done.returncode == 0, done.stderr[-3000:]
    records = [json.loads(line) for line in done.stdout.splitlines()]  # JSON lines only on stdout
    lines = {item["case"]: item for item in records if "case" in item}
    errors = {name: line["error"] for name, line in lines.items() if "error" in line}
    assert not errors, errors
    assert lines["ours_flex_compile"] == {"case": "ours_flex_compile", "skipped": "needs a GPU"}

    anchor, anchor_lora = lines["anchor_full"], lines["anchor_lora_7b"]
    ours, ours_lora = lines["ours_sdpa_compile"], lines["ours_lora_7b"]
    assert {line["device"] for line in (anchor, anchor_lora, ours, ours_lora)} == {"cpu"}
    assert anchor["tokens_per_s"] > 0 and anchor_lora["tokens_per_s"] > 0 and anchor["mfu"] is None
    assert ours["overrides"] == ["stage1.torch_compile=true"] and ours["anchor_case"] == "anchor_full"
    assert ours["ratio_to_anchor"] == pytest.approx(ours["tokens_per_s"] / anchor["tokens_per_s"], rel=1e-2)
    assert ours_lora["anchor_case"] == "anchor_lora_7b"
    assert "stage1.gradient_checkpointing=true" in ours_lora["overrides"]
    assert ours_lora["ratio_to_anchor"] == pytest.approx(
        ours_lora["tokens_per_s"] / anchor_lora["tokens_per_s"], rel=1e-2
    )
    for line in (ours, ours_lora):
        assert line["measured_steps"] == MEASURED_STEPS and line["tokens_per_s"] > 0 and line["step_s"] > 0
        assert line["mfu"] is None and line["peak_mem_gib"] is None  # no GPU: no peak FLOP/s, no CUDA memory
        # samples of the real lengths (mean 109 tokens) truncated at 128 pack rows about 84% full
        assert 0.7 < line["fill"] < 1
        assert 0 < line["final_loss"] < 10  # random tokens over a 1,000-word vocabulary: about ln(1000) = 6.9

    summary = records[-1]
    assert summary["metric"] == "gpu_train_summary" and summary["full_best_case"] == "ours_sdpa_compile"
    assert summary["full_ratio"] == pytest.approx(ours["ratio_to_anchor"], rel=1e-2)
    assert summary["lora_ratio"] == pytest.approx(ours_lora["ratio_to_anchor"], rel=1e-2)
    assert summary["ray_overhead"] is None  # anchor_ds did not run
    assert sorted(summary["cases_run"]) == sorted(CASES[:-1])
