"""taiyi-ray: Ray-native two-stage supervised fine-tuning, serving and evaluation of biomedical LLMs."""

__version__ = "0.1.0"
