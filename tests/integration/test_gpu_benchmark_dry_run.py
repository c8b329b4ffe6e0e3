"""benchmarks/gpu_train.py is the script a session with a GPU machine runs in its few device minutes:
it must not first fail there. Its CPU dry run (tiny shape) goes through the same code — the anchor
from ../shared/gpu, random packed shards, our Ray Train stage-1 job with and without torch.compile."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_gpu_benchmark_runs_on_cpu_against_the_anchor(shared_dir: Path) -> None:
    """With --compile: the path with the most to break (the eager stage-1 job runs in many other tests)."""
    command = [
        sys.executable,
        "benchmarks/gpu_train.py",
        "--anchor",
        str(shared_dir / "gpu" / "sft_anchor.py"),
    ]
    command += [
        "--shape",
        "tiny",
        "--device",
        "cpu",
        "--mb",
        "2",
        "--seq",
        "128",
        "--steps",
        "6",
        "--compile",
    ]
    env = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"} | {"HF_HUB_OFFLINE": "1"}
    done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    records = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    lines = {item["case"]: item for item in records if "case" in item}
    anchor, ours = lines["anchor_bare_pytorch"], lines["taiyi_ray_stage1"]
    assert anchor["device"] == ours["device"] == "cpu" and anchor["tokens_per_s"] > 0
    assert ours["compile"] is True and ours["tokens_per_s"] > 0
    assert ours["ratio_to_anchor"] == pytest.approx(ours["tokens_per_s"] / anchor["tokens_per_s"], rel=1e-2)
    assert ours["mfu"] is None and ours["peak_mem_gib"] is None  # no GPU: no peak FLOP/s, no CUDA memory
    assert 0 < ours["final_loss"] < 10  # random tokens over a 1,000-word vocabulary: about ln(1000) = 6.9
