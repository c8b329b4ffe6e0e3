"""Config loading: good and bad YAML, overrides, env expansion, errors naming file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from taiyi_ray.config import ConfigError, load_job_config
from taiyi_ray.config.jobs import Stage1JobConfig, Stage2JobConfig
from taiyi_ray.config.loader import apply_overrides, expand_env, parse_override

GOOD = """\
storage:
  root: /tmp/taiyi-test-root
model:
  chat_format: chatml
data:
  catalogue: configs/catalogues/demo.yaml
stage1:
  data:
    - set: stage1
  epochs: 2
  micro_batch_size: 2
  gradient_accumulation_steps: 4
  num_workers: 3
serve:
  port: 9000
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_good_config_loads_and_derives_batch(tmp_path: Path) -> None:
    config = load_job_config(Stage1JobConfig, write(tmp_path, GOOD))
    assert config.stage1.epochs == 2
    assert config.stage1.global_batch_size() == 2 * 4 * 3
    assert config.model.chat_format == "chatml"
    # relative paths become absolute against the working directory (jobs run from the repo root)
    assert Path(config.data.catalogue).is_absolute()
    assert config.data.catalogue.endswith("configs/catalogues/demo.yaml")


def test_unknown_field_names_file_line_and_field(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("  epochs: 2", "  epochs: 2\n  learning_rat: 0.1"))
    with pytest.raises(ConfigError) as error:
        load_job_config(Stage1JobConfig, path)
    message = str(error.value)
    assert f"{path}:11: stage1.learning_rat: Extra inputs are not permitted" in message


def test_wrong_type_and_range_are_reported_with_value(tmp_path: Path) -> None:
    path = write(
        tmp_path, GOOD.replace("epochs: 2", "epochs: 0").replace("num_workers: 3", "num_workers: many")
    )
    with pytest.raises(ConfigError) as error:
        load_job_config(Stage1JobConfig, path)
    lines = str(error.value).splitlines()
    assert any(line.startswith(f"{path}:10: stage1.epochs:") and "(got 0)" in line for line in lines)
    assert any(line.startswith(f"{path}:13: stage1.num_workers:") and "'many'" in line for line in lines)


def test_unknown_section_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + "stage_one:\n  epochs: 1\n")
    with pytest.raises(ConfigError, match=r"unknown section\(s\) stage_one \(line 16\)"):
        load_job_config(Stage1JobConfig, path)


def test_job_ignores_sections_it_does_not_use_but_requires_its_own(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="stage2: Field required"):
        load_job_config(Stage2JobConfig, write(tmp_path, GOOD))


def test_overrides_apply_in_order_and_parse_yaml_values(tmp_path: Path) -> None:
    config = load_job_config(
        Stage1JobConfig,
        write(tmp_path, GOOD),
        ["stage1.epochs=5", "stage1.lora.r=4", "stage1.epochs=7", "stage1.resources_per_worker={node_a: 1}"],
    )
    assert config.stage1.epochs == 7
    assert config.stage1.lora.r == 4
    assert config.stage1.resources_per_worker == {"node_a": 1.0}


def test_override_errors_are_clear() -> None:
    with pytest.raises(ConfigError, match="expected key=value"):
        parse_override("stage1.epochs")
    with pytest.raises(ConfigError, match=r"stage1\.epochs is a int, not a section"):
        apply_overrides({"stage1": {"epochs": 1}}, ["stage1.epochs.x=2"])


def test_env_expansion(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAIYI_TEST_BUCKET", "bucket-a")
    assert expand_env("s3://${TAIYI_TEST_BUCKET}/x", "f") == "s3://bucket-a/x"
    assert expand_env("${TAIYI_TEST_UNSET:-../shared/data}/a", "f") == "../shared/data/a"
    with pytest.raises(ConfigError, match=r"TAIYI_TEST_UNSET\} is not set"):
        expand_env("${TAIYI_TEST_UNSET}", "f")


def test_cross_field_rules(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("  epochs: 2", "  epochs: 2\n  offload_params: true"))
    with pytest.raises(ConfigError, match="offload_params needs zero_stage 3"):
        load_job_config(Stage1JobConfig, path)
    path = write(tmp_path, GOOD.replace("  epochs: 2", "  epochs: 2\n  method: qlora\n  zero_stage: 3"))
    with pytest.raises(ConfigError, match="method qlora with zero_stage 3: ZeRO-3 cannot partition"):
        load_job_config(Stage1JobConfig, path)
    path = write(tmp_path, GOOD.replace("    - set: stage1", "    - set: stage1\n      uri: s3://b/x"))
    with pytest.raises(ConfigError, match="exactly one of `set`"):
        load_job_config(Stage1JobConfig, path)


def test_invalid_yaml_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_job_config(Stage1JobConfig, write(tmp_path, "stage1: [unclosed\n"))


def test_validation_section_loads_and_rejects_bad_values(tmp_path: Path) -> None:
    validated = GOOD.replace(
        "  num_workers: 3",
        "  num_workers: 3\n  validation:\n    catalogue: configs/catalogues/demo-eval.yaml\n    every_steps: 50",
    )
    validation = load_job_config(Stage1JobConfig, write(tmp_path, validated)).stage1.validation
    assert validation is not None and validation.every_steps == 50
    assert validation.items_per_set == 200 and validation.max_new_tokens is None  # eval's max_new_tokens
    with pytest.raises(
        ConfigError, match=r"config.yaml:16: stage1.validation.every_steps: .*greater than or equal to 1"
    ):
        load_job_config(
            Stage1JobConfig, write(tmp_path, validated.replace("every_steps: 50", "every_steps: 0"))
        )
    with pytest.raises(ConfigError, match=r"stage1.validation.catalogue: Field required"):
        load_job_config(
            Stage1JobConfig,
            write(tmp_path, validated.replace("    catalogue: configs/catalogues/demo-eval.yaml\n", "")),
        )
