"""Helpers shared by integration tests (plain functions; fixtures live in conftest.py)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import torch

from taiyi_ray.config import load_job_config
from taiyi_ray.config.jobs import PipelineJobConfig

REPO_ROOT = Path(__file__).resolve().parents[2]
TEST_CONFIG = REPO_ROOT / "configs" / "tests.yaml"


def s3_root(name: str) -> str:
    """A fresh prefix in the test bucket (tests never share mutable state)."""
    return f"s3://taiyi-test/{name}-{uuid.uuid4().hex[:8]}"


def config_for(storage_root: str, *overrides: str) -> PipelineJobConfig:
    """configs/tests.yaml with the storage root moved and any overrides, as the jobs would load it."""
    return load_job_config(PipelineJobConfig, TEST_CONFIG, [f"storage.root={storage_root}", *overrides])


def memorise(model_dir: Path, pairs: list[tuple[list[int], list[int]]], steps: int = 400) -> None:
    """Train the tiny model until it answers each prompt with its answer (greedy), and save it."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir)
    width = max(len(prompt) + len(answer) for prompt, answer in pairs)
    ids = torch.zeros((len(pairs), width), dtype=torch.long)
    labels = torch.full_like(ids, -100)
    mask = torch.zeros_like(ids)
    for row, (prompt, answer) in enumerate(pairs):
        sequence = prompt + answer
        ids[row, : len(sequence)] = torch.tensor(sequence)
        mask[row, : len(sequence)] = 1
        labels[row, len(prompt) : len(sequence)] = torch.tensor(answer)
    optimiser = torch.optim.Adam(model.parameters(), lr=2e-2)
    model.train()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: thread synchronisation would cost more than it saves
    try:
        loss = _train(model, optimiser, ids, mask, labels, steps)
    finally:
        torch.set_num_threads(threads)
    assert loss < 0.05, f"the tiny model did not learn its answers (loss {loss:.3f})"
    model.save_pretrained(model_dir)


def _train(
    model: Any, optimiser: Any, ids: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor, steps: int
) -> float:
    """Loss on the answer tokens only, computed on their hidden states alone (the vocabulary is 150k)."""
    for _ in range(steps):
        hidden = model.model(input_ids=ids, attention_mask=mask).last_hidden_state[:, :-1]
        targets = labels[:, 1:]
        loss = torch.nn.functional.cross_entropy(
            model.lm_head(hidden[targets != -100]), targets[targets != -100]
        )
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if loss.item() < 2e-3:
            break
    return loss.item()
