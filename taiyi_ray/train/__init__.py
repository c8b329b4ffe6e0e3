"""Two-stage supervised fine-tuning: Ray Train TorchTrainer + DeepSpeed ZeRO, LoRA/QLoRA/full."""
