"""Training steps run in train mode from the first one (07a7c69).

`from_pretrained` leaves a model in eval mode and `deepspeed.initialize` keeps it there, so before the fix
LoRA dropout stayed off until the first validation switched train mode on (for the whole run without
validation), and nothing failed except bitsandbytes' 4-bit layers on AVX512-BF16 CPUs. This runs the
worker's own `start_deepspeed` on a LoRA model (in a child process: DeepSpeed and a one-rank gloo group
stay out of the test process) and checks that dropout acts on the very first forward pass.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent(
    """
    import json, sys
    from taiyi_ray.runtime import configure_device_env
    configure_device_env()
    import torch, torch.distributed as dist
    from peft import LoraConfig, get_peft_model
    from taiyi_ray.config.model import TinyQwen2Shape
    from taiyi_ray.config.train import DataSource, StageConfig
    from taiyi_ray.model.factory import build_tiny_qwen2
    from taiyi_ray.train.optimization import build_deepspeed_config, build_optimizer
    from taiyi_ray.train.worker import start_deepspeed

    dist.init_process_group("gloo", init_method=f"file://{sys.argv[1]}", rank=0, world_size=1)
    stage = StageConfig(data=[DataSource(set="stage1")], method="lora", micro_batch_size=1)
    model = build_tiny_qwen2(TinyQwen2Shape(hidden_size=32, intermediate_size=64), 128, 0, 1, 0)
    lora = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.5, target_modules="all-linear", task_type="CAUSAL_LM")
    model = get_peft_model(model, lora)
    with torch.no_grad():  # LoRA's B starts at zero, which would hide dropout: make the adapters act
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.5, generator=torch.Generator().manual_seed(1))
    model.eval()  # as from_pretrained leaves it
    trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]
    optimizer, scheduler = build_optimizer(trainable, stage, 10, False)
    engine = start_deepspeed(model, optimizer, scheduler, build_deepspeed_config(stage, 1, False))
    module_training = engine.module.training
    dropouts = [m.training for n, m in model.named_modules() if n.endswith("lora_dropout.default")]
    ids = torch.arange(2, 18)[None, :]
    first, second = (engine(input_ids=ids).logits for _ in range(2))
    with torch.no_grad():
        engine.eval()
        deterministic = [engine(input_ids=ids).logits for _ in range(2)]
    print(json.dumps({
        "module_training": module_training,
        "dropouts": len(dropouts), "dropouts_training": sum(dropouts),
        "first_two_passes_differ": not torch.equal(first, second),
        "eval_passes_equal": torch.equal(*deterministic),
    }))
    dist.destroy_process_group()
    """
)


def test_the_deepspeed_engine_trains_in_train_mode_from_its_first_step(tmp_path: Path) -> None:
    # the variables Ray Train's workers have (DeepSpeed asserts LOCAL_RANK)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LOCAL_RANK": "0", "RANK": "0", "WORLD_SIZE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "gloo-store")],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["module_training"] is True
    assert report["dropouts"] > 0 and report["dropouts_training"] == report["dropouts"]
    assert report["first_two_passes_differ"], "LoRA dropout (0.5) did not act on the first training passes"
    assert report["eval_passes_equal"]  # the difference above is dropout, nothing else
