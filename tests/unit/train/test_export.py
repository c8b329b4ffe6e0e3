"""export.dtype: a bf16 base exports bf16 (not a float32 copy twice its size), after LoRA merging and
after full fine-tuning whose weights training saved in float32; an explicit dtype wins. export.memory_gib:
the default budget follows the weights the export holds, and a budget no node can hold is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from peft import LoraConfig, get_peft_model
from safetensors import safe_open
from transformers import AutoModelForCausalLM

from taiyi_ray.config.model import TinyQwen2Shape
from taiyi_ray.data.chat_format import get_chat_format
from taiyi_ray.data.tokenizer import configure_tokenizer, save_tokenizer, train_bpe_tokenizer
from taiyi_ray.model.factory import build_tiny_qwen2
from taiyi_ray.model.result import TrainedModel, write_result
from taiyi_ray.storage import Storage
from taiyi_ray.train.export import export_model
from taiyi_ray.train.export_task import (
    GIB,
    check_budget_covers_the_model,
    check_memory_fits,
    export_weight_bytes,
    memory_budget_gib,
    weights_bytes,
)


@pytest.fixture(scope="module")
def bf16_base(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    folder = tmp_path_factory.mktemp("export-dtype")
    tokenizer = configure_tokenizer(
        train_bpe_tokenizer(["aspirin causes bleeding"] * 20, 300), get_chat_format("taiyi")
    )
    model = build_tiny_qwen2(TinyQwen2Shape(), 320, 0, tokenizer.eos_token_id, tokenizer.pad_token_id)
    model.to(torch.bfloat16).save_pretrained(folder / "base", safe_serialization=True)
    save_tokenizer(tokenizer, folder / "base")
    return folder, tokenizer


def stage_result(folder: Path, tokenizer: object, method: str) -> Path:
    """A stage run dir as training leaves it: float32 weights (CPU training upcasts), perturbed."""
    run = folder / f"run-{method}"
    model = AutoModelForCausalLM.from_pretrained(folder / "base", dtype=torch.float32)
    if method == "lora":
        model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    torch.manual_seed(1)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if method == "full" or "lora_B" in name:
                parameter.add_(0.01 * torch.randn_like(parameter))
    model.save_pretrained(
        run / "model" / ("weights" if method == "full" else "adapter"), safe_serialization=True
    )
    tokenizer.save_pretrained(run / "model" / "tokenizer")  # type: ignore[attr-defined]
    result = TrainedModel(method, str(folder / "base"), "taiyi", "stage1",
                          adapter=None if method == "full" else "adapter",
                          weights="weights" if method == "full" else None)  # fmt: skip
    write_result(Storage(), str(run / "model"), result)
    return run


def saved_dtypes(directory: Path) -> set[str]:
    dtypes = set()
    for weights in directory.glob("*.safetensors"):
        with safe_open(str(weights), framework="pt") as handle:
            dtypes |= {handle.get_slice(name).get_dtype() for name in handle.keys()}  # noqa: SIM118
    return dtypes


@pytest.mark.parametrize("method", ["lora", "full"])
def test_auto_exports_the_base_dtype_and_reloads(bf16_base: tuple[Path, object], method: str) -> None:
    folder, tokenizer = bf16_base
    run = stage_result(folder, tokenizer, method)
    output = folder / f"export-{method}"
    info = export_model(Storage(), str(run), str(output), True, "m", "research").model_dump()
    assert info["dtype"] == "bfloat16" and saved_dtypes(output) == {"BF16"}
    assert json.loads((output / "config.json").read_text())["dtype"] == "bfloat16"
    reloaded = AutoModelForCausalLM.from_pretrained(output, dtype="auto")
    assert {parameter.dtype for parameter in reloaded.parameters()} == {torch.bfloat16}
    trained = AutoModelForCausalLM.from_pretrained(folder / "base", dtype=torch.float32)
    if method == "full":
        trained = AutoModelForCausalLM.from_pretrained(run / "model" / "weights", dtype=torch.float32)
    else:
        from peft import PeftModel

        trained = PeftModel.from_pretrained(trained, run / "model" / "adapter").merge_and_unload()
    for (name, ours), reference in zip(
        reloaded.state_dict().items(), trained.state_dict().values(), strict=True
    ):
        assert torch.allclose(ours.float(), reference, atol=2e-2, rtol=1e-2), name  # bf16 rounding only
    base = AutoModelForCausalLM.from_pretrained(folder / "base", dtype=torch.float32)
    moved = [
        n
        for (n, p), q in zip(reloaded.named_parameters(), base.parameters(), strict=True)
        if not torch.equal(p.float(), q)
    ]
    assert moved  # the training's change survived the export


def test_an_explicit_dtype_wins(bf16_base: tuple[Path, object]) -> None:
    folder, tokenizer = bf16_base
    run = stage_result(folder, tokenizer, "full")
    output = folder / "export-fp32"
    info = export_model(Storage(), str(run), str(output), True, "m", "research", dtype="float32").model_dump()
    assert info["dtype"] == "float32" and saved_dtypes(output) == {"F32"}


def test_the_default_budget_follows_the_weights_in_the_export_dtype(bf16_base: tuple[Path, object]) -> None:
    folder, tokenizer = bf16_base
    base_bytes = sum(path.stat().st_size for path in (folder / "base").glob("*.safetensors"))
    assert weights_bytes(Storage(), str(folder / "base")) == base_bytes
    lora, full = stage_result(folder, tokenizer, "lora"), stage_result(folder, tokenizer, "full")
    assert export_weight_bytes(Storage(), str(lora), "auto") == base_bytes  # merging holds the bf16 base
    assert export_weight_bytes(Storage(), str(lora), "float32") == 2 * base_bytes
    full_bytes = weights_bytes(Storage(), str(full / "model" / "weights"))  # float32, as training saved it
    assert full_bytes == pytest.approx(2 * base_bytes, rel=0.01)
    assert export_weight_bytes(Storage(), str(full), "auto") == full_bytes / 2
    # 1.5x the weights plus 2 GiB, up to the next 0.5 GiB: a 7B bf16 base (15.2 GB) needs 23.5 GiB
    assert memory_budget_gib(0) == 2.0
    assert memory_budget_gib(15.2e9) == 23.5
    assert memory_budget_gib(GIB) == 3.5


def test_a_budget_no_node_can_hold_is_refused_naming_the_largest() -> None:
    capacities = {"node 127.0.0.1": 12.5, "worker group cpu": 22.4, "worker group gpu": 44.8}
    check_memory_fits(44.8, capacities)
    with pytest.raises(ValueError, match=r"export.memory_gib=64: .*\(largest: 44.8 GiB, worker group gpu\)"):
        check_memory_fits(64, capacities)
    with pytest.raises(ValueError, match="no node that runs tasks"):
        check_memory_fits(1, {})


def test_a_budget_below_the_models_need_is_refused_before_loading() -> None:
    weights = 15.2e9  # a 7B bf16 base
    check_budget_covers_the_model(memory_budget_gib(weights), weights)
    check_budget_covers_the_model(16.6, weights)  # 1.1 x 14.16 GiB + 1 GiB = 16.57 GiB
    with pytest.raises(
        ValueError, match=r"export.memory_gib=8 is below .* needs: 16.6 GiB .*default 23.5 GiB"
    ):
        check_budget_covers_the_model(8, weights)
