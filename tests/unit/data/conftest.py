"""Fixtures of the data-layer tests: the real files of ../shared/data, converted once per session."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from taiyi_ray.config.data import DatasetEntry
from taiyi_ray.data.convert import iter_records
from taiyi_ray.data.formats import BadRecord
from taiyi_ray.data.schema import Record
from taiyi_ray.storage import Storage

RealRecords = Callable[..., list[Record]]


@pytest.fixture(scope="session")
def shared_data(shared_dir: Path) -> Iterator[Path]:
    """../shared/data; also exported as TAIYI_SHARED_DATA so catalogues in configs/ resolve to it."""
    data = shared_dir / "data"
    previous = os.environ.get("TAIYI_SHARED_DATA")
    os.environ["TAIYI_SHARED_DATA"] = str(data)
    yield data
    if previous is None:
        os.environ.pop("TAIYI_SHARED_DATA", None)
    else:
        os.environ["TAIYI_SHARED_DATA"] = previous


@pytest.fixture(scope="session")
def real_records(shared_data: Path) -> RealRecords:
    """`real_records(format, path under ../shared/data, language, task)`: the file's records, cached.

    Fails the test if the converter rejects any item of a real file.
    """
    cache: dict[tuple[object, ...], list[Record]] = {}

    def load(fmt: str, relative: str, language: str, task: str, **extra: object) -> list[Record]:
        key = (fmt, relative, language, task, repr(sorted(extra.items())))
        if key not in cache:
            entry = DatasetEntry.model_validate(
                {
                    "name": Path(relative).stem,
                    "format": fmt,
                    "uri": str(shared_data / relative),
                    "language": language,
                    "task": task,
                    **extra,
                }
            )
            items = list(iter_records(entry, Storage()))
            bad = [item.describe() for item in items if isinstance(item, BadRecord)]
            assert not bad, f"{relative}: {len(bad)} rejected, first: {bad[:3]}"
            cache[key] = [item for item in items if isinstance(item, Record)]
        return cache[key]

    return load


@pytest.fixture
def storage() -> Storage:
    return Storage()


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str, str | bytes], str]:
    """`write(name, content)` -> the path of a new file under tmp_path (text as UTF-8)."""

    def make(name: str, content: str | bytes) -> str:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return str(path)

    return make


@pytest.fixture(scope="session")
def qwen2(qwen2_tokenizer_dir: Path):
    """The shared Qwen2 tokenizer, loaded once."""
    from taiyi_ray.data.tokenizer import load_tokenizer

    return load_tokenizer(qwen2_tokenizer_dir)
