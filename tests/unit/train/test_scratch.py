"""Local scratch of training workers: what a crashed or killed worker left behind is removed by the next
worker on the node; what a live process owns is not."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from taiyi_ray.train.checkpoint import scratch_dir, sweep_abandoned_scratch


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_scratch_of_a_process_that_is_gone_is_swept_and_live_scratch_is_kept(tmp_path: Path) -> None:
    gone = dead_pid()
    abandoned = [tmp_path / f"taiyi-{kind}-{gone}-abc" for kind in ("worker", "ckpt", "result")]
    for directory in abandoned:
        (directory / "base").mkdir(parents=True)
        (directory / "base" / "model.safetensors").write_bytes(b"x" * 1024)
    mine = Path(scratch_dir("worker", str(tmp_path)))
    assert mine.name.startswith(f"taiyi-worker-{os.getpid()}-")
    parent = tmp_path / f"taiyi-worker-{os.getppid()}-live"  # another live process's
    unrelated = tmp_path / f"taiyi-eval-model-{gone}-x"  # not a training scratch name
    stray_file = tmp_path / f"taiyi-ckpt-{gone}-file"  # a file, not a directory
    for directory in (parent, unrelated):
        directory.mkdir()
    stray_file.write_text("")
    removed = sweep_abandoned_scratch(str(tmp_path))
    assert sorted(removed) == sorted(str(directory) for directory in abandoned)
    assert not any(directory.exists() for directory in abandoned)
    assert mine.is_dir() and parent.is_dir() and unrelated.is_dir() and stray_file.is_file()
    assert sweep_abandoned_scratch(str(tmp_path)) == []
