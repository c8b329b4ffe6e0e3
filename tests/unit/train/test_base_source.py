"""Where a stage's starting weights come from (QLoRA loads exactly this, once, in 4-bit): model.base as
given (an s3:// URI stays a URI for the node cache to fetch, never handed raw to from_pretrained), the
previous stage's base after LoRA/QLoRA, its full weights after full fine-tuning."""

from __future__ import annotations

from dataclasses import replace

import pytest

from taiyi_ray.config.model import ModelConfig
from taiyi_ray.config.platform import StorageConfig
from taiyi_ray.config.train import DataSource, StageConfig
from taiyi_ray.model.result import TrainedModel
from taiyi_ray.train.model_setup import base_source
from taiyi_ray.train.spec import TrainSpec

BASE = "s3://models/qwen2.5-7b"


def spec(**changes: object) -> TrainSpec:
    stage = StageConfig(data=[DataSource(set="stage1")], method="qlora")
    plain = TrainSpec("stage1", "s3://runs/s1", StorageConfig(), ModelConfig(base=BASE), stage, (), 256,
                      "tok", "fp", 1, 1)  # fmt: skip
    return replace(plain, **changes)


def test_model_base_as_given() -> None:
    assert base_source(spec()) == (BASE, BASE)


@pytest.mark.parametrize("method", ["lora", "qlora"])
def test_after_an_adapter_stage_its_base(method: str) -> None:
    previous = TrainedModel(method, BASE, "taiyi", "stage1", adapter="adapter")
    assert base_source(spec(init_from=previous, init_from_dir="s3://runs/s1/model")) == (BASE, BASE)


def test_after_full_fine_tuning_its_weights() -> None:
    previous = TrainedModel("full", BASE, "taiyi", "stage1", weights="weights")
    located = base_source(spec(init_from=previous, init_from_dir="s3://runs/s1/model"))
    assert located == ("s3://runs/s1/model/weights", BASE)


def test_no_base_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"model\.base is not set"):
        base_source(spec(model=ModelConfig(base=None)))
