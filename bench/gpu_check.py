"""GPU check: the text task on CUDA with bf16 autocast and fused AdamW, model FLOPs utilisation,
`hps worker --device all`, and trials/hour with N = 1, 2, 4 trials per GPU.

Run on a machine with NVIDIA GPUs (the `device` tool lends one to some sessions):

    python bench/gpu_check.py [--steps 60] [--batch-size 32] [--compile] [--packing 1,2,4] [--trials 8]

Prints samples/s and peak GPU memory of the text-classification task (MiniLM-L6 on reviews-sample) in
bf16 against fp32 measured in the same run, checks that AdamW runs fused, and the model FLOPs utilisation
of bf16 training (6 x parameters x tokens per second against the GPU's dense bf16 peak; `--peak-tflops`
for a GPU the table below does not know), eager against `torch.compile` with `--compile`. Then it starts a
server and `hps worker --device all --once`, checks that every visible GPU ran trials, and runs the same
MiniLM study with `--trials-per-device N` on cuda:0 for each N of `--packing`, printing trials/hour (from
the first trial's start to the last one's end, as the server recorded them) against N = 1 measured in the
same run, and what the trials cost in GPU-seconds. Without CUDA it exits at once with status 2 and says so.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import cast

import torch

# The test harness (server processes) is reused from tests/, which is not installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from harness.processes import ServerProcess
from hps.catalog.registry import load_registry
from hps.client.http import HpsClient
from hps.workers.devices import peak_memory_mb, reset_peak_memory, visible_cuda_devices
from hps.workers.optimizers import build_optimizer
from hps.workers.tasks.text import TextBatch, make_task
from hps.workers.training import Decision, TrainingPlan, train

TOKEN = "gpu-check"
# Dense bf16 tensor-core peaks (TFLOP/s, no sparsity) by a substring of torch's device name.
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0, "A10": 125.0}


def measure(precision: str, steps: int, batch_size: int, cache: Path) -> tuple[float, float, str]:
    """Samples/s and peak memory (MiB) of one epoch of `steps` steps on cuda:0."""
    registry = load_registry()
    task = make_task(registry.models["minilm-l6"], registry.datasets["reviews-sample"], cache)
    device = torch.device("cuda:0")
    plan = TrainingPlan(
        epochs=1,
        batch_size=batch_size,
        max_steps_per_epoch=steps,
        metric="val_accuracy",
        direction="maximize",
        seed=0,
        device=device,
        precision=precision,  # type: ignore[arg-type]
    )
    reset_peak_memory(device)
    torch.cuda.synchronize()
    began = time.perf_counter()
    outcome = train(task, {"optimizer": "adamw", "lr": 5e-5}, plan, lambda _: Decision.CONTINUE)
    torch.cuda.synchronize()
    seconds = time.perf_counter() - began
    samples = int(outcome.attrs["steps"]) * batch_size
    return samples / seconds, peak_memory_mb(device), str(outcome.attrs["precision"])


def model_flops_utilisation(
    steps: int, batch_size: int, cache: Path, peak_tflops: float, compiled: bool
) -> tuple[float, float]:
    """Samples/s and model FLOPs utilisation of bf16 training steps of MiniLM with fused AdamW on cuda:0,
    eager or under ``torch.compile``. Its own loop over the task's batches (the workers' loop is
    ``training.train``, measured above), so that the model can be compiled."""
    registry = load_registry()
    task = make_task(registry.models["minilm-l6"], registry.datasets["reviews-sample"], cache)
    device = torch.device("cuda:0")
    model = task.fresh_model(device, 0)
    parameters = sum(p.numel() for p in model.parameters())
    optimizer = build_optimizer({"optimizer": "adamw", "lr": 5e-5}, model.parameters(), device)
    step_model = cast(torch.nn.Module, torch.compile(model)) if compiled else model
    batches: list[TextBatch] = []
    generator = torch.Generator().manual_seed(0)
    while len(batches) < steps + 5:
        batches.extend(task.train_batches(batch_size, generator, device))

    def run(chosen: list[TextBatch]) -> int:
        tokens = 0
        for batch in chosen:
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = task.loss(step_model, batch)
            optimizer.zero_grad(set_to_none=True)
            torch.autograd.backward(loss)
            optimizer.step()
            tokens += int(batch.inputs["input_ids"].numel())
        return tokens

    run(batches[:5])  # warm-up (and compilation)
    torch.cuda.synchronize()
    began = time.perf_counter()
    tokens = run(batches[5 : steps + 5])
    torch.cuda.synchronize()
    seconds = time.perf_counter() - began
    samples = sum(int(b.labels.numel()) for b in batches[5 : steps + 5])
    achieved = 6.0 * parameters * tokens / seconds
    return samples / seconds, achieved / (peak_tflops * 1e12)


def peak_bf16_tflops(override: float | None) -> float | None:
    """The GPU's dense bf16 peak, from ``--peak-tflops`` or the table."""
    if override is not None:
        return override
    name = torch.cuda.get_device_name(0)
    return next((peak for key, peak in PEAK_BF16_TFLOPS.items() if key in name), None)


def check_packing(
    counts: list[int], trials: int, steps: int, directory: Path
) -> dict[int, tuple[float, float]]:
    """For each N, a MiniLM study of ``trials`` trials run by `hps worker --device cuda:0
    --trials-per-device N --once`: trials/hour and GPU-seconds per trial. N = 1 runs first and records
    the task's peak memory, so the larger N start all their processes at once."""
    env = {"HPS_ADMIN_TOKEN": TOKEN, "HPS_DATA_DIR": str(directory), "HPS_PRICE_PER_GPU_HOUR": "1"}
    server = ServerProcess(env, directory / "packing-server.log")
    found: dict[int, tuple[float, float]] = {}
    try:
        url = server.wait_ready()
        with HpsClient(url, TOKEN) as hps:
            for count in counts:
                study = hps.create_study(
                    {
                        "name": f"packing-{count}",
                        "task": {
                            "name": "text-classification",
                            "model": "minilm-l6",
                            "dataset": "reviews-sample",
                            "epochs": 1,
                            "max_steps_per_epoch": steps,
                        },
                        "search_space": {"preset": "adamw", "starts": []},
                        "pruner": {"name": "none"},
                        "budget": {"n_trials": trials, "max_parallel": count},
                    }
                )
                args = [sys.executable, "-m", "hps.cli", "worker", "--api", url, "--token", TOKEN]
                args += ["--device", "cuda:0", "--trials-per-device", str(count), "--once"]
                args += ["--tasks", "text-classification", "--data-dir", str(directory)]
                done = subprocess.run(args, timeout=900, check=False)
                ran = [t for t in hps.trials(study.id) if t.started_at and t.finished_at]
                if done.returncode != 0 or not ran:
                    print(f"N={count}: worker exited {done.returncode}, {len(ran)} trials ran")
                    continue
                starts = [t.started_at for t in ran if t.started_at is not None]
                ends = [t.finished_at for t in ran if t.finished_at is not None]
                span = max(ends) - min(starts)
                gpu_seconds = sum(t.cost.gpu_seconds for t in ran if t.cost) / len(ran)
                found[count] = (len(ran) / span.total_seconds() * 3600.0, gpu_seconds)
    finally:
        server.stop()
    return found


def check_fused() -> bool:
    model = torch.nn.Linear(8, 2).to("cuda:0")
    optimizer = build_optimizer(
        {"optimizer": "adamw", "lr": 1e-3}, model.parameters(), torch.device("cuda:0")
    )
    return bool(optimizer.param_groups[0].get("fused"))


def check_device_all(gpus: list[str], directory: Path) -> dict[str, int]:
    """Run a quadratic study with `hps worker --device all`; count trials per device."""
    env = {"HPS_ADMIN_TOKEN": TOKEN, "HPS_DATA_DIR": str(directory)}
    server = ServerProcess(env, directory / "server.log")
    try:
        url = server.wait_ready()
        with HpsClient(url, TOKEN) as hps:
            study = hps.create_study(
                {
                    "name": "gpu-check",
                    "task": {"name": "quadratic"},
                    "search_space": {"preset": "adam"},
                    "budget": {"n_trials": 4 * len(gpus)},
                }
            )
            worker = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "hps.cli",
                    "worker",
                    "--api",
                    url,
                    "--token",
                    TOKEN,
                    "--device",
                    "all",
                    "--once",
                    "--tasks",
                    "quadratic",
                    "--data-dir",
                    str(directory),
                ],
                timeout=600,
                check=False,
            )
            print(f"--device all exited with {worker.returncode}")
            counts: dict[str, int] = {}
            for trial in hps.trials(study.id):
                device = str(trial.attrs.get("device"))
                counts[device] = counts.get(device, 0) + 1
            return counts
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--compile", action="store_true", help="Also measure MFU under torch.compile.")
    parser.add_argument("--peak-tflops", type=float, default=None, help="The GPU's dense bf16 peak.")
    parser.add_argument("--packing", default="1,2,4", help="Trials per device to compare ('' skips).")
    parser.add_argument("--trials", type=int, default=8, help="Trials of each packing study.")
    args = parser.parse_args()
    gpus = visible_cuda_devices()
    if not gpus:
        print(
            f"gpu_check: no CUDA device is visible to torch {torch.__version__} (CUDA available: "
            f"{torch.cuda.is_available()}); this check needs an NVIDIA GPU, so its figures are pending",
            file=sys.stderr,
        )
        raise SystemExit(2)
    print(f"GPUs: {gpus} ({torch.cuda.get_device_name(0)}), torch {torch.__version__}")
    print(f"fused AdamW on cuda:0: {check_fused()}")
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        measure("fp32", 5, args.batch_size, cache)  # warm-up: kernels, tokenizer, caches
        fp32_rate, fp32_memory, _ = measure("fp32", args.steps, args.batch_size, cache)
        bf16_rate, bf16_memory, used = measure("auto", args.steps, args.batch_size, cache)
        print(f"fp32: {fp32_rate:8.1f} samples/s, peak {fp32_memory:8.1f} MiB")
        print(f"{used}: {bf16_rate:8.1f} samples/s, peak {bf16_memory:8.1f} MiB")
        speed, memory = bf16_rate / fp32_rate, bf16_memory / fp32_memory
        print(f"bf16/fp32: throughput x{speed:.2f}, peak memory x{memory:.2f}")
        peak = peak_bf16_tflops(args.peak_tflops)
        if peak is None:
            print(f"MFU: unknown bf16 peak for {torch.cuda.get_device_name(0)}; pass --peak-tflops")
        else:
            for compiled in (False, True) if args.compile else (False,):
                rate, mfu = model_flops_utilisation(args.steps, args.batch_size, cache, peak, compiled)
                label = "torch.compile" if compiled else "eager"
                print(f"bf16 {label}: {rate:8.1f} samples/s, MFU {mfu:.1%} of {peak:g} TFLOP/s")
        print(f"trials per device with --device all: {check_device_all(gpus, Path(tmp))}")
        counts = [int(n) for n in args.packing.split(",") if n.strip()]
        packed = check_packing(counts, args.trials, args.steps, Path(tmp))
        base = packed.get(1, (0.0, 0.0))[0]
        for count, (per_hour, gpu_seconds) in sorted(packed.items()):
            ratio = f" (x{per_hour / base:.2f} of N=1)" if base else ""
            print(f"N={count}: {per_hour:8.1f} trials/hour{ratio}, {gpu_seconds:.1f} GPU-seconds per trial")


if __name__ == "__main__":
    main()
