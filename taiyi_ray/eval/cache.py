"""The prediction cache: generated outputs keyed by model, generation settings and prompt.

Layout: `{root}/{namespace}/{SET}/part-*.jsonl`, one `{"key": prompt sha256, "text", "finish_reason",
"prompt_tokens", "output_tokens"}` per line; `namespace` is a hash of the model's identity and the
settings (`{root}/{namespace}/about.json` says which, for people). Outputs are written in small part
files while a set is generated, never appended (S3 objects cannot be), so a run that dies mid-set
loses at most one part; a rerun generates only the prompts no part holds.

A model directory's identity is a fingerprint of its files (names, sizes, the full content of small
files and the first and last MiB of large ones): a retrained export in the same directory is a new
model, without hashing gigabytes of weights on every run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Mapping

from taiyi_ray.eval.generation_types import RawOutput
from taiyi_ray.storage import Storage, join

log = logging.getLogger(__name__)

SMALL_FILE_BYTES = 4 * 2**20
EDGE_BYTES = 2**20
PART_LINES = 64


def model_fingerprint(storage: Storage, location: str) -> str:
    """sha256 over a model directory's files (see the module docstring); local path or URI."""
    fs, root = storage.fsspec(location)
    if not fs.isdir(root):
        raise FileNotFoundError(f"{location}: not a directory; expected an exported model directory")
    hasher = hashlib.sha256()
    for path, info in sorted(fs.find(root, detail=True).items()):
        size = int(info.get("size") or 0)
        hasher.update(f"{os.path.relpath(path, root)}\x00{size}\x00".encode())
        with fs.open(path, "rb") as handle:
            if size <= SMALL_FILE_BYTES:
                hasher.update(handle.read())
            else:
                hasher.update(handle.read(EDGE_BYTES))
                handle.seek(size - EDGE_BYTES)
                hasher.update(handle.read(EDGE_BYTES))
    return hasher.hexdigest()


class PredictionCache:
    """Outputs of one (model, settings) namespace under `root`, read and written per set."""

    def __init__(self, storage: Storage, root: str, identity: str, about: Mapping[str, object]) -> None:
        self.storage = storage
        self.namespace = hashlib.sha256(identity.encode("utf-8")).hexdigest()[:24]
        self.directory = join(root, self.namespace)
        about_file = join(self.directory, "about.json")
        if not storage.exists(about_file):
            storage.write_json(about_file, {"identity": identity, **about})

    def load(self, set_name: str) -> dict[str, RawOutput]:
        """Prompt key -> cached output for one set (empty when nothing is cached)."""
        directory = join(self.directory, set_name)
        if not self.storage.exists(directory):
            return {}
        found: dict[str, RawOutput] = {}
        for part in self.storage.list(directory):
            if not part.endswith(".jsonl"):
                continue
            for number, line in enumerate(self.storage.read_text(part).splitlines(), start=1):
                try:
                    value = json.loads(line)
                    found[value["key"]] = RawOutput.from_dict(value)
                except (json.JSONDecodeError, KeyError, TypeError) as error:
                    log.warning("%s:%d: unreadable cache line skipped (%s)", part, number, error)
        return found

    def writer(self, set_name: str) -> CacheWriter:
        return CacheWriter(self.storage, join(self.directory, set_name))


class CacheWriter:
    """Buffers outputs of one set and writes them as a new part file every `PART_LINES` outputs."""

    def __init__(self, storage: Storage, directory: str) -> None:
        self.storage = storage
        self.directory = directory
        self.pending: list[str] = []
        self.parts = 0

    def add(self, key: str, output: RawOutput) -> None:
        value = {"key": key, **output.to_dict()}
        value.pop("corrupted", None)
        self.pending.append(json.dumps(value, ensure_ascii=False))
        if len(self.pending) >= PART_LINES:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        self.parts += 1
        name = f"part-{time.time_ns()}-{os.getpid()}-{self.parts}.jsonl"
        self.storage.write_text(join(self.directory, name), "\n".join(self.pending) + "\n")
        self.pending = []
