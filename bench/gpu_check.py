"""GPU check: the text task on CUDA with bf16 autocast and fused AdamW, and `hps worker --device all`.

Run on a machine with NVIDIA GPUs (the `device` tool lends one to some sessions):

    python bench/gpu_check.py [--steps 60] [--batch-size 32]

Prints samples/s and peak GPU memory of the text-classification task (MiniLM-L6 on reviews-sample) in
bf16 against fp32 measured in the same run, checks that AdamW runs fused, then starts a server and
`hps worker --device all --once` and checks that every visible GPU ran trials.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

# The test harness (server processes) is reused from tests/, which is not installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from harness.processes import ServerProcess
from hps.catalog.registry import load_registry
from hps.client.http import HpsClient
from hps.workers.devices import peak_memory_mb, reset_peak_memory, visible_cuda_devices
from hps.workers.optimizers import build_optimizer
from hps.workers.tasks.text import make_task
from hps.workers.training import Decision, TrainingPlan, train

TOKEN = "gpu-check"


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
    args = parser.parse_args()
    gpus = visible_cuda_devices()
    if not gpus:
        raise SystemExit("no CUDA device is visible: this check needs a GPU")
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
        print(f"trials per device with --device all: {check_device_all(gpus, Path(tmp))}")


if __name__ == "__main__":
    main()
