"""The serve job as a user runs it (`taiyi-ray serve`, the same entry point as `jobs/serve.py`): its own Ray
cluster, the ready line with "url", the API key from the environment only, and a SIGTERM that drains the
request in flight before the job exits with its final JSON line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def read_json_line(process: subprocess.Popen, timeout_s: float, transcript: list[str]) -> dict[str, Any]:
    """The first stdout line that is a JSON object (the job's ready line)."""
    deadline = time.monotonic() + timeout_s
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            raise AssertionError(f"the job ended before it was ready: {transcript[-20:]}")
        transcript.append(line)
        if line.startswith("{"):
            return json.loads(line)
    raise AssertionError(f"no ready line within {timeout_s} s")


def test_serve_job_prints_url_requires_key_and_drains_on_sigterm(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    key = f"sk-job-{uuid.uuid4().hex}"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | {"TAIYI_API_KEY": key}
    run_dir = tmp_path / "run"
    command = [
        sys.executable, "-m", "taiyi_ray.cli", "serve", "--model", str(tiny_model_dir), "--port", "0",
        "--run-dir", str(run_dir), "--set", "ray.num_cpus=2", "--set", "serve.num_cpus_per_replica=0.5",
    ]  # fmt: skip
    process = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    transcript: list[str] = []
    try:
        ready = read_json_line(process, 240, transcript)
        url = ready["url"]
        assert url.startswith("http://127.0.0.1:") and ready["models"] == [model_name(tiny_model_dir)]
        assert key not in Path(f"/proc/{process.pid}/cmdline").read_bytes().decode(errors="replace")
        probe = httpx.get(f"{url}/healthz")  # open to probes, but no model list without the key
        assert probe.status_code == 200 and probe.json()["models"] is None
        headers = {"Authorization": f"Bearer {key}"}
        assert httpx.get(f"{url}/healthz", headers=headers).json()["models"] == ready["models"]
        lines = drain_while_streaming(process, url, headers)
        assert lines[-1] == "data: [DONE]"
        chunks = [json.loads(line[len("data: ") :]) for line in lines[:-1]]
        assert chunks[-1]["usage"]["completion_tokens"] == 400
        assert process.wait(timeout=120) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    rest = process.stdout.read() if process.stdout else ""
    transcript.append(rest)
    final = json.loads(rest.strip().splitlines()[-1])
    assert final["run_dir"] == str(run_dir) and final["url"] == url
    assert json.loads((run_dir / "serve.json").read_text())["url"] == url
    assert key not in "".join(transcript)


def model_name(model_dir: Path) -> str:
    """The id the model is served under: its export's model_name."""
    return str(json.loads((model_dir / "taiyi_export.json").read_text())["model_name"])


def drain_while_streaming(process: subprocess.Popen, url: str, headers: dict[str, str]) -> list[str]:
    """Stream a long completion; SIGTERM the job once tokens flow; return the stream's data lines."""
    started, lines = threading.Event(), []
    body = {"prompt": "x", "max_tokens": 400, "stream": True, "stream_options": {"include_usage": True}}

    def stream() -> None:
        with httpx.stream(
            "POST", f"{url}/v1/completions", json=body, headers=headers, timeout=120
        ) as response:
            assert response.status_code == 200
            for line in response.iter_lines():
                started.set()
                if line.startswith("data: "):
                    lines.append(line)

    worker = threading.Thread(target=stream)
    worker.start()
    assert started.wait(timeout=60)
    process.send_signal(signal.SIGTERM)
    worker.join(timeout=120)
    assert not worker.is_alive()
    return lines
