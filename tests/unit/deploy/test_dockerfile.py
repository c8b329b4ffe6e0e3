"""The Dockerfile passes the static checks, and each check fires on a Dockerfile broken its way."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from deploy.helpers import REPO_ROOT
from taiyi_ray.deploy.dockerfile import check_dockerfile, parse


def test_dockerfile_is_valid() -> None:
    findings = check_dockerfile(REPO_ROOT / "Dockerfile", REPO_ROOT)
    assert not findings, "\n".join(map(str, findings))


def test_parse_joins_continuations_and_skips_comments() -> None:
    instructions = parse("# c\nFROM a:1 AS x\nRUN one \\\n  # inner comment\n  two\nUSER 1000\n")
    assert [(item.line, item.keyword, item.arguments) for item in instructions] == [
        (2, "FROM", "a:1 AS x"), (3, "RUN", "one two"), (6, "USER", "1000"),
    ]  # fmt: skip


CASES = [
    ("docker-base-pinned", "FROM nvidia/cuda:13.0.1-cudnn-devel-ubuntu24.04", "FROM nvidia/cuda:latest"),
    ("docker-base-pinned", "COPY --from=uv /uv", "COPY --from=ghcr.io/astral-sh/uv /uv"),
    ("docker-cuda-base", "FROM nvidia/cuda:13.0.1-cudnn-devel-ubuntu24.04", "FROM ubuntu:24.04"),
    ("docker-user", "USER 1000:1000", "USER root"),
    ("docker-user", "USER 1000:1000", ""),
    (
        "docker-secrets",
        "ENV DEBIAN_FRONTEND=noninteractive",
        "ENV AWS_SECRET_ACCESS_KEY=abc DEBIAN_FRONTEND=noninteractive",
    ),
    ("docker-secrets", "ARG PYTHON_VERSION=3.11.14", "ARG PYTHON_VERSION=3.11.14\nARG HF_TOKEN"),
    ("docker-secrets", "COPY jobs ./jobs", "COPY .env ./\nCOPY jobs ./jobs"),
    (
        "docker-constraints",
        'RUN uv pip install --constraint constraints.txt ".[gpu]"',
        'RUN uv pip install ".[gpu]"',
    ),
    ("docker-torch", "ARG TORCH_VERSION=2.13.0", "ARG TORCH_VERSION=2.12.0"),
    ("docker-python", "ARG PYTHON_VERSION=3.11.14", "ARG PYTHON_VERSION=3.10.14"),
    ("docker-copy", "COPY jobs ./jobs", "COPY jobz ./jobs"),
    ("docker-install-sources", "COPY jobs ./jobs\nRUN uv pip install", "RUN uv pip install"),
    ("docker-gpu-extra", 'constraints.txt ".[gpu]"', "constraints.txt ."),
    ("docker-flash-attn", "ARG FLASH_ATTN_VERSION=2.8.3.post2", "ARG FLASH_ATTN_VERSION=2.8.2"),
]


@pytest.mark.parametrize(("rule", "old", "new"), CASES, ids=[f"{rule}: {new[:40]}" for rule, _, new in CASES])
def test_rule_fires(rule: str, old: str, new: str, tmp_path: Path) -> None:
    text = (REPO_ROOT / "Dockerfile").read_text()
    assert old in text, old
    for name in ("constraints.txt", "pyproject.toml", ".dockerignore"):
        shutil.copy(REPO_ROOT / name, tmp_path / name)
    for name in ("README.md", "jobs", "configs", "taiyi_ray"):
        (tmp_path / name).mkdir() if name != "README.md" else (tmp_path / name).write_text("")
    (tmp_path / "Dockerfile").write_text(text.replace(old, new))
    rules = {finding.rule for finding in check_dockerfile(tmp_path / "Dockerfile", tmp_path)}
    assert rule in rules, f"expected {rule}, got {rules}"


def test_dockerignore_rule_fires(tmp_path: Path) -> None:
    for name in ("constraints.txt", "pyproject.toml", "Dockerfile"):
        shutil.copy(REPO_ROOT / name, tmp_path / name)
    (tmp_path / ".dockerignore").write_text(".git\nruns\n")
    assert "dockerignore" in {finding.rule for finding in check_dockerfile(tmp_path / "Dockerfile", tmp_path)}


def test_a_compiler_comes_from_a_devel_base_or_build_essential(tmp_path: Path) -> None:
    for name in ("constraints.txt", "pyproject.toml", ".dockerignore", "README.md"):
        shutil.copy(REPO_ROOT / name, tmp_path / name)
    for name in ("jobs", "configs", "taiyi_ray"):
        (tmp_path / name).mkdir()
    text = (REPO_ROOT / "Dockerfile").read_text()
    runtime = text.replace("cudnn-devel-ubuntu24.04", "cudnn-runtime-ubuntu24.04")
    bare = runtime.replace("tini build-essential", "tini")
    for variant, fires in (
        (text, False),
        (runtime, False),
        (text.replace("tini build-essential", "tini"), False),
        (bare, True),
    ):
        (tmp_path / "Dockerfile").write_text(variant)
        rules = {finding.rule for finding in check_dockerfile(tmp_path / "Dockerfile", tmp_path)}
        assert ("docker-compiler" in rules) is fires, rules
