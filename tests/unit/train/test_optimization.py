"""The learning-rate schedules and the DeepSpeed JSON derived from a stage config."""

from __future__ import annotations

import itertools
import math

import pytest

from taiyi_ray.config.train import DataSource, StageConfig
from taiyi_ray.train.optimization import build_deepspeed_config, lr_multiplier


def test_taiyi_schedule_warms_up_linearly_then_stays_at_the_peak() -> None:
    multiplier = lr_multiplier("constant_with_warmup", total_steps=100, warmup_ratio=0.1)
    assert [multiplier(step) for step in range(10)] == pytest.approx([(step + 1) / 10 for step in range(10)])
    assert {multiplier(step) for step in range(10, 100)} == {1.0}


@pytest.mark.parametrize("kind", ["cosine", "linear"])
def test_decaying_schedules_reach_the_floor_at_the_last_step(kind: str) -> None:
    multiplier = lr_multiplier(kind, total_steps=50, warmup_ratio=0.2, min_lr_ratio=0.1)
    assert multiplier(9) == pytest.approx(1.0)  # the last warm-up step trains at the peak
    assert multiplier(10) == pytest.approx(1.0)  # decay starts from the peak
    assert multiplier(50) == pytest.approx(0.1)
    values = [multiplier(step) for step in range(10, 51)]
    assert all(later <= earlier for earlier, later in itertools.pairwise(values))
    halfway = multiplier(30)
    assert halfway == pytest.approx(
        0.1 + 0.9 * (0.5 if kind == "linear" else 0.5 * (1 + math.cos(math.pi / 2)))
    )


def test_an_unknown_schedule_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match="constant_with_warmup, cosine or linear"):
        lr_multiplier("step", total_steps=10, warmup_ratio=0.0)(3)


def test_deepspeed_batch_maths_follow_the_stage() -> None:
    stage = StageConfig(
        data=[DataSource(set="stage1")], micro_batch_size=2, gradient_accumulation_steps=8, zero_stage=3
    )
    config = build_deepspeed_config(stage, world_size=4, on_gpu=False)
    assert config["train_batch_size"] == 2 * 8 * 4
    assert config["zero_optimization"]["stage"] == 3
    assert config["bf16"]["enabled"] is False  # precision auto: fp32 on CPU
    assert build_deepspeed_config(stage, world_size=4, on_gpu=True)["bf16"]["enabled"] is True
