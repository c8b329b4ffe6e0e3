"""Our training job against the bare-PyTorch anchor on the same GPU, in one call (issue 12):

    python benchmarks/gpu_train.py --anchor .anchor/sft_anchor.py [--cases a,b,...] [--budget-s 480]
    python benchmarks/gpu_train.py --anchor ../shared/gpu/sft_anchor.py --shape tiny --device cpu --mb 2 --seq 128
    python benchmarks/gpu_train.py --write-lengths     # rewrite benchmarks/data/shared_train_lengths.json

benchmarks/gpu_run.sh is the one device call (wheels, anchor copy, timeout, $OUT/gpu_train.jsonl).

Every case runs in its own process (a fresh Ray for each of ours), so a case that fails or overruns is
one `error` line and the rest still run; one JSON line per case, then a summary line:

- anchor cases run ../shared/gpu/sft_anchor.py (copied into an ignored folder such as .anchor/: ../shared
  does not travel to the GPU machine) and report its own printed figures: `anchor_full` (bare PyTorch, bf16
  autocast, fused AdamW, SDPA), `anchor_full_compile`, `anchor_ds` (DeepSpeed ZeRO-2 bf16, no Ray),
  `anchor_lora_7b` (bf16 base, LoRA r=64 all linear, gradient checkpointing, micro-batch 4) and
  `anchor_ray_ds` (the ds loop inside Ray Train);
- cases of ours run our stage-1 job (`taiyi_ray.train.job.run_stage_job`: Ray Train TorchTrainer with
  one worker, DeepSpeed ZeRO-2 bf16, our data stream, full fine-tuning unless the case says otherwise)
  on a random-weight Qwen2 of the anchor's shape: `ours_sdpa`, `ours_lora_7b` (LoRA r=64 alpha 128 on
  all linear layers, gradient checkpointing, micro-batch 4), `ours_flex_compile`, `ours_sdpa_compile`,
  `ours_liger_mb16`, `ours_sdpa_rows` (max_tokens_per_micro_batch = seq: one row per forward pass) and
  `ours_flash` (only where the flash-attn package is installed; a `skipped` line says so otherwise).
  CASES holds each one's exact config overrides (on top of `_gpu_ours.stage_overrides`); every line
  repeats them.

Like for like, per REAL token: the anchor trains full rows of random tokens (seq x micro-batch tokens,
every one real); ours trains rows packed from random-token samples whose lengths follow the shared
training catalogue (benchmarks/_gpu_ours.py; at seq 2048 about 99.6% of each row is real tokens, mean
sample 109 tokens). Our tokens/s counts real tokens only (no packing gaps, no compile padding): their
sum over the steps after warm-up divided by those steps' time, from our own metrics.jsonl; MFU is the
mean of our metrics' MFU over the same steps, the anchor's its own (the same PaLM count with the row
length as T; the anchor assumes 989 TFLOP/s, H100/H200 SXM, ours reads the device name; on CPU both are
null). `ratio_to_anchor` divides by the anchor case named in `anchor_case`, measured in the same call
(anchor_full for the 0.5B cases, anchor_lora_7b for the 7B LoRA case).

The summary: `full_ratio` = the best 0.5B case of ours / anchor_full (`full_best_case` names it);
`lora_ratio` = ours_lora_7b / anchor_lora_7b; `ray_overhead` = 1 - ours_sdpa / anchor_ds: the anchor's
DeepSpeed ZeRO-2 bf16 step outside Ray Train (same shape, micro-batch 8, seq 2048, sdpa, no compile)
against ours inside it. It charges ours more than Ray Train: our data stream, per-step metrics, and
attention over packed samples, whose block-diagonal mask keeps SDPA off its causal flash kernel (after
the padding-free change, over the whole flattened micro-batch); fused AdamW favours ours. So it bounds
Ray's share from above; `anchor_ray_overhead` = 1 - anchor_ray_ds / anchor_ds isolates Ray Train around
the identical loop when that case runs.

`--budget-s` (default 480): a case whose typical wall time (Case.estimate_s) no longer fits the time
left is skipped with a line saying so, and a running case is stopped when the budget is spent; cases
run in CASES order, the summary's figures first.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

SHAPES: dict[str, dict[str, Any]] = {  # sft_anchor.py's shapes (tiny: the CPU dry run)
    "tiny": {
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "vocab_size": 1000,
        "tie_word_embeddings": True,
    },
    "0.5b": {
        "hidden_size": 896,
        "intermediate_size": 4864,
        "num_hidden_layers": 24,
        "num_attention_heads": 14,
        "num_key_value_heads": 2,
        "vocab_size": 151936,
        "tie_word_embeddings": True,
    },
    "7b": {
        "hidden_size": 3584,
        "intermediate_size": 18944,
        "num_hidden_layers": 28,
        "num_attention_heads": 28,
        "num_key_value_heads": 4,
        "vocab_size": 152064,
        "tie_word_embeddings": False,
    },
}
LORA_7B = (  # the anchor's lora case: r=64 on every linear layer (alpha 128, no dropout), checkpointing
    "stage1.method=lora",
    "stage1.lora.r=64",
    "stage1.lora.alpha=128",
    "stage1.lora.dropout=0",
    "stage1.lora.target_modules=all-linear",
    "stage1.gradient_checkpointing=true",
    "stage1.learning_rate=1e-4",
)
RESULT_MARKER = "CASE_RESULT "
STOP_GRACE_S = 30  # a stopped case of ours checkpoints and shuts its Ray down in this time


@dataclass(frozen=True)
class Case:
    name: str
    shape: str  # the anchor's shape name (every case runs tiny on a dry run)
    micro_batch: int
    estimate_s: int  # typical wall seconds on an H100/H200, start to end (for --budget-s)
    anchor_args: tuple[str, ...] = ()  # sft_anchor.py's case and flags: an anchor case
    overrides: tuple[str, ...] = ()  # config overrides on top of _gpu_ours.stage_overrides: ours
    anchor_case: str | None = "anchor_full"  # what ratio_to_anchor divides by
    needs_gpu: bool = False
    needs_module: str | None = None

    @property
    def side(self) -> str:
        return "anchor" if self.anchor_args else "ours"

    def resolved_overrides(self, seq_len: int) -> tuple[str, ...]:
        """The overrides with `{seq}` replaced by the run's sequence length."""
        return tuple(override.replace("{seq}", str(seq_len)) for override in self.overrides)


FLEX = ("model.attn_implementation=flex_attention", "stage1.torch_compile=true")
CASES = (  # in run order: the summary's figures first; estimate_s guessed for an H100/H200
    Case("anchor_full", "0.5b", 8, 20, anchor_args=("full",), anchor_case=None),
    Case("ours_sdpa", "0.5b", 8, 60),
    Case("anchor_ds", "0.5b", 8, 30, anchor_args=("ds",)),
    Case("anchor_lora_7b", "7b", 4, 35, anchor_args=("lora",), anchor_case=None),
    Case("ours_lora_7b", "7b", 4, 100, overrides=LORA_7B, anchor_case="anchor_lora_7b"),
    Case("ours_flex_compile", "0.5b", 8, 120, overrides=FLEX, needs_gpu=True),
    Case("ours_sdpa_compile", "0.5b", 8, 100, overrides=("stage1.torch_compile=true",)),
    Case("anchor_full_compile", "0.5b", 8, 60, anchor_args=("full", "--compile")),
    Case(
        "ours_liger_mb16",
        "0.5b",
        16,
        60,
        overrides=("stage1.liger_kernel=true",),
        needs_gpu=True,
        needs_module="liger_kernel",
    ),
    # One row per forward pass: sdpa's attention then spans one row, not the whole flattened micro-batch.
    Case("ours_sdpa_rows", "0.5b", 8, 60, overrides=("stage1.max_tokens_per_micro_batch={seq}",)),
    Case(
        "ours_flash",
        "0.5b",
        8,
        60,
        overrides=("model.attn_implementation=flash_attention_2",),
        needs_gpu=True,
        needs_module="flash_attn",
    ),
    Case("anchor_ray_ds", "0.5b", 8, 40, anchor_args=("ray_ds",)),
)
CASE_BY_NAME = {case.name: case for case in CASES}


class CaseFailed(Exception):
    """A case ended without figures (non-zero exit, no result line, out of budget)."""


class Interrupted(Exception):
    """SIGTERM (the outer timeout): stop the running case, print the summary of what ran."""


def emit(record: dict[str, Any]) -> None:
    print(json.dumps(record), flush=True)


def device_name(device: str) -> str:
    """torch.cuda.get_device_name()'s string, read with nvidia-smi: no CUDA context in this process."""
    if device != "cuda":
        return "cpu"
    done = subprocess.run(
        ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True
    )
    return done.stdout.strip().splitlines()[0] if done.returncode == 0 and done.stdout.strip() else "cuda"


def shape_of(case: Case, args: argparse.Namespace) -> str:
    return case.shape if args.shape == "real" else args.shape


def micro_batch_of(case: Case, args: argparse.Namespace) -> int:
    return args.mb or case.micro_batch


def skip_reason(case: Case, args: argparse.Namespace, elapsed_s: float) -> str | None:
    if case.needs_gpu and args.device != "cuda":
        return "needs a GPU"
    if case.needs_module and importlib.util.find_spec(case.needs_module) is None:
        return f"the {case.needs_module} package is not installed"
    if case.side == "anchor" and not args.anchor:
        return "no --anchor given"
    if elapsed_s + case.estimate_s > args.budget_s:
        return f"budget: {elapsed_s:.0f} s spent, about {case.estimate_s} s more would pass {args.budget_s:.0f} s"
    return None


def case_command(case: Case, args: argparse.Namespace) -> list[str]:
    common = ["--shape", shape_of(case, args), "--mb", str(micro_batch_of(case, args))]
    common += ["--seq", str(args.seq), "--device", args.device]
    common += ["--steps", str(args.steps), "--warmup", str(args.warmup)]
    if case.side == "anchor":
        return [sys.executable, args.anchor, *case.anchor_args, *common]
    return [sys.executable, str(Path(__file__).resolve()), "--child", case.name, *common]


def run_case(case: Case, args: argparse.Namespace, timeout_s: float) -> dict[str, Any]:
    """Run the case's process (output into its log file); its figures from the last result line."""
    log_path = Path(args.log_dir) / f"{case.name}.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            case_command(case, args), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            returncode = process.wait(timeout=max(timeout_s, 1))
        except (subprocess.TimeoutExpired, Interrupted) as error:
            stop(process)
            if isinstance(error, Interrupted):
                raise
            raise CaseFailed(f"stopped after {timeout_s:.0f} s: the budget was spent") from None
    output = log_path.read_text(errors="replace")
    marker = "RESULT " if case.side == "anchor" else RESULT_MARKER
    results = [line[len(marker) :] for line in output.splitlines() if line.startswith(marker + "{")]
    if returncode != 0 or not results:
        raise CaseFailed(f"exit status {returncode}, no result line; log {log_path} ends: {output[-1500:]}")
    return json.loads(results[-1])


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM first (our job checkpoints and shuts its Ray down), then kill what is left of the group."""
    process.terminate()
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=STOP_GRACE_S)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def case_line(
    case: Case, raw: dict[str, Any], done: dict[str, dict[str, Any]], args: argparse.Namespace
) -> dict[str, Any]:
    """The case's JSON line: the common figures, the ratio to its anchor case, what ran."""
    reference = done.get(case.anchor_case) if case.anchor_case else None
    line = {
        "case": case.name,
        "side": case.side,
        "device": args.device_name,
        "shape": shape_of(case, args),
        "micro_batch": micro_batch_of(case, args),
        "seq": args.seq,
        "tokens_per_s": raw["tokens_per_s"],
        "mfu": raw["mfu"] if args.device == "cuda" else None,  # the anchor's CPU figure has no real peak
        "peak_mem_gib": raw["peak_mem_gib"],
        "step_s": raw["step_s"],
        "ratio_to_anchor": round(raw["tokens_per_s"] / reference["tokens_per_s"], 3) if reference else None,
        "anchor_case": case.anchor_case if reference else None,
        "wall_s": raw["wall_s"],
    }
    if case.side == "anchor":
        return line | {"anchor_args": list(case.anchor_args), "loss": raw["loss"]}
    extra = {key: raw[key] for key in ("fill", "final_loss", "measured_steps")}
    return line | extra | {"overrides": list(case.resolved_overrides(args.seq))}


def ratio(done: dict[str, dict[str, Any]], numerator: str, denominator: str) -> float | None:
    if numerator in done and denominator in done:
        return round(done[numerator]["tokens_per_s"] / done[denominator]["tokens_per_s"], 3)
    return None


def summary(done: dict[str, dict[str, Any]], args: argparse.Namespace, wall_s: float) -> dict[str, Any]:
    """The issue's figures, from the cases that ran in this call (null where a case is missing)."""
    ours_05b = [
        case.name for case in CASES if case.side == "ours" and case.shape == "0.5b" and case.name in done
    ]
    best = max(ours_05b, key=lambda name: done[name]["tokens_per_s"], default=None)
    overhead = ratio(done, "ours_sdpa", "anchor_ds")
    anchor_overhead = ratio(done, "anchor_ray_ds", "anchor_ds")
    return {
        "metric": "gpu_train_summary",
        "device": args.device_name,
        "full_ratio": ratio(done, best, "anchor_full") if best else None,
        "full_best_case": best,
        "lora_ratio": ratio(done, "ours_lora_7b", "anchor_lora_7b"),
        "ray_overhead": round(1 - overhead, 3) if overhead is not None else None,
        "anchor_ray_overhead": round(1 - anchor_overhead, 3) if anchor_overhead is not None else None,
        "cases_run": sorted(done),
        "wall_s": round(wall_s, 1),
    }


def setup_line(args: argparse.Namespace, cases: list[Case]) -> dict[str, Any]:
    versions: dict[str, str | None] = {}
    for package in ("torch", "transformers", "deepspeed", "ray", "liger-kernel", "flash-attn"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "metric": "gpu_train_setup",
        "device": args.device_name,
        "cases": [case.name for case in cases],
        "seq": args.seq,
        "measured_steps": args.steps,
        "warmup_steps": args.warmup,
        "budget_s": args.budget_s,
        "versions": versions,
    }


def run_all(cases: list[Case], args: argparse.Namespace) -> None:
    started = time.perf_counter()
    emit(setup_line(args, cases))
    done: dict[str, dict[str, Any]] = {}
    for case in cases:
        elapsed = time.perf_counter() - started
        reason = skip_reason(case, args, elapsed)
        if reason:
            emit({"case": case.name, "skipped": reason})
            continue
        try:
            done[case.name] = run_case(case, args, args.budget_s - elapsed)
        except CaseFailed as error:
            emit(
                {
                    "case": case.name,
                    "error": str(error),
                    "wall_s": round(time.perf_counter() - started - elapsed, 1),
                }
            )
            continue
        except Interrupted:
            emit({"case": case.name, "error": "interrupted (SIGTERM): the outer timeout"})
            break
        emit(case_line(case, done[case.name], done, args))
    emit(summary(done, args, time.perf_counter() - started))


def child(args: argparse.Namespace) -> None:
    """One case of ours, in its own process: prints its figures after RESULT_MARKER."""
    from taiyi_ray.runtime import prepare_process_env

    prepare_process_env()  # before torch / ray are imported
    from benchmarks._gpu_ours import OursSetup, run_ours
    from taiyi_ray.config.model import TinyQwen2Shape

    started = time.perf_counter()
    case = CASE_BY_NAME[args.child]
    setup = OursSetup(
        shape=TinyQwen2Shape(**SHAPES[args.shape], max_position_embeddings=32768),
        micro_batch=args.mb,
        seq_len=args.seq,
        warmup_steps=args.warmup,
        measured_steps=args.steps,
        device=args.device,
        overrides=case.resolved_overrides(args.seq),
    )
    figures = run_ours(setup)
    print(
        RESULT_MARKER + json.dumps(figures | {"wall_s": round(time.perf_counter() - started, 1)}), flush=True
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--anchor", help="a copy of ../shared/gpu/sft_anchor.py (the anchor cases)")
    parser.add_argument(
        "--cases", default=",".join(case.name for case in CASES), help="comma-separated, of CASES"
    )
    parser.add_argument(
        "--shape", choices=["real", *SHAPES], default="real", help="real: each case's own; else every case's"
    )
    parser.add_argument("--mb", type=int, help="micro-batch of every case (default: each case's own)")
    parser.add_argument("--seq", type=int, default=2048)
    parser.add_argument("--steps", type=int, default=10, help="measured steps per case")
    parser.add_argument("--warmup", type=int, default=3, help="steps before the measured ones")
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--budget-s", type=float, default=480)
    parser.add_argument("--log-dir", help="one log per case (default: a temporary folder)")
    parser.add_argument(
        "--write-lengths", action="store_true", help="rewrite the lengths file (needs ../shared)"
    )
    parser.add_argument("--child", choices=sorted(CASE_BY_NAME), help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.write_lengths:
        from benchmarks._gpu_ours import LENGTHS_FILE, write_lengths

        written = write_lengths()
        emit(
            {
                "lengths_file": str(LENGTHS_FILE),
                "samples": written.samples,
                "distinct_lengths": len(written.counts),
            }
        )
        return
    if args.child:
        child(args)
        return
    names = [name.strip() for name in args.cases.split(",") if name.strip()]
    unknown = sorted(set(names) - set(CASE_BY_NAME))
    if unknown:
        raise SystemExit(f"--cases: unknown {unknown}; expected some of {[case.name for case in CASES]}")
    args.device_name = device_name(args.device)
    args.log_dir = args.log_dir or tempfile.mkdtemp(prefix="taiyi-gpu-bench-logs-")
    os.makedirs(args.log_dir, exist_ok=True)

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise Interrupted

    signal.signal(signal.SIGTERM, interrupt)
    run_all([case for case in CASES if case.name in names], args)


if __name__ == "__main__":
    main()
