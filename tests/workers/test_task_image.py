"""The image-classification task with real ResNets, weights files and PNG/JPEG folders the tests make,
plus the built-in shapes dataset and the ResNet-18 hps pretrains for it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from hps.catalog.builtins import builtin_datasets, builtin_models
from hps.catalog.tasks import DatasetEntry, ModelEntry
from hps.workers.tasks.image import (
    SHAPES_FOLDER,
    SHAPES_WEIGHTS,
    ImageClassificationTask,
    make_task,
    read_image_folder,
)
from hps.workers.tasks.resnet import build_resnet

ROOT = Path(__file__).resolve().parents[2]
CPU = torch.device("cpu")
TASK = "image-classification"
COLOURS = ("red", "green", "blue")


def _write_colour_images(folder: Path, per_class: int, seed: int) -> None:
    """``folder/<colour>/``: 40x40 noisy images dominated by that channel, alternately PNG and JPEG."""
    rng = np.random.default_rng(seed)
    for channel, colour in enumerate(COLOURS):
        (folder / colour).mkdir(parents=True)
        for index in range(per_class):
            pixels = rng.integers(0, 90, size=(40, 40, 3))
            pixels[..., channel] += 150
            suffix = "png" if index % 2 == 0 else "jpg"
            Image.fromarray(pixels.astype(np.uint8)).save(folder / colour / f"{index}.{suffix}")


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("colours")
    _write_colour_images(folder, per_class=12, seed=0)
    return folder


@pytest.fixture(scope="module")
def saved_state(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, torch.Tensor], Path, Path]:
    """A ResNet-18 state dict with a 10-class head, saved as safetensors and with ``torch.save``."""
    folder = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    network = build_resnet("resnet18", 10)
    with torch.no_grad():  # make the batch-norm statistics non-default, so that loading them shows
        for name, buffer in network.named_buffers():
            if name.endswith("running_mean"):
                buffer.normal_()
    state = {key: value.clone() for key, value in network.state_dict().items()}
    save_file(state, str(folder / "net.safetensors"))
    torch.save(state, folder / "net.pt")
    return state, folder / "net.safetensors", folder / "net.pt"


def _task(weights: Path, folder: Path, cache_dir: Path) -> ImageClassificationTask:
    model = ModelEntry(name="my-resnet", task=TASK, path=weights, options={"architecture": "resnet18"})
    return make_task(model, DatasetEntry(name="colours", task=TASK, path=folder), cache_dir)


def _train(task: ImageClassificationTask, model: torch.nn.Module, epochs: int, lr: float) -> None:
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        for step, batch in enumerate(task.train_batches(32, generator, CPU)):
            if step == 30:
                break
            loss = task.loss(model, batch)
            optimizer.zero_grad()
            torch.autograd.backward(loss)
            optimizer.step()


def test_our_resnets_have_torchvisions_parameters_and_key_names() -> None:
    # torchvision's resnet18/resnet34 with 1000 classes have exactly these many parameters.
    for architecture, parameters, keys in (("resnet18", 11_689_512, 122), ("resnet34", 21_797_672, 218)):
        state = build_resnet(architecture, 1000).state_dict()
        assert (
            sum(
                value.numel() for key, value in state.items() if "running" not in key and "batches" not in key
            )
            == parameters
        )
        assert len(state) == keys
    names = set(build_resnet("resnet18", 7).state_dict())
    assert {
        "conv1.weight",
        "bn1.running_var",
        "layer1.0.conv2.weight",
        "layer2.0.downsample.0.weight",
        "layer2.0.downsample.1.num_batches_tracked",
        "layer4.1.bn2.bias",
        "fc.weight",
        "fc.bias",
    } <= names
    assert "layer1.0.downsample.0.weight" not in names


@pytest.mark.parametrize("file_format", ["safetensors", "pt"])
def test_both_weight_formats_load_the_backbone_with_a_new_head(
    file_format: str,
    saved_state: tuple[dict[str, torch.Tensor], Path, Path],
    image_folder: Path,
    tmp_path: Path,
) -> None:
    state, safetensors_path, pt_path = saved_state
    task = _task(safetensors_path if file_format == "safetensors" else pt_path, image_folder, tmp_path)
    assert task.class_names == sorted(COLOURS)
    assert (task.split_size("train"), task.split_size("val")) == (27, 9)
    model, same_seed, other_seed = (task.fresh_model(CPU, seed) for seed in (4, 4, 5))
    loaded = model.state_dict()
    assert all(torch.equal(loaded[key], value) for key, value in state.items() if not key.startswith("fc."))
    assert loaded["fc.weight"].shape == (3, 512)  # the saved 10-class head was replaced
    assert torch.equal(loaded["fc.weight"], same_seed.state_dict()["fc.weight"])
    assert not torch.equal(loaded["fc.weight"], other_seed.state_dict()["fc.weight"])
    assert model is not same_seed and model.training


def test_a_few_training_steps_reduce_the_loss(
    saved_state: tuple[dict[str, torch.Tensor], Path, Path], image_folder: Path, tmp_path: Path
) -> None:
    task = _task(saved_state[1], image_folder, tmp_path)
    model = task.fresh_model(CPU, seed=0)
    batch = next(iter(task.train_batches(16, torch.Generator().manual_seed(0), CPU)))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(8):
        loss = task.loss(model, batch)
        losses.append(float(loss.detach()))
        optimizer.zero_grad()
        torch.autograd.backward(loss)
        optimizer.step()
    assert losses[-1] < losses[0] * 0.5
    metrics = task.evaluate(model, "val", batch_size=8, device=CPU)
    assert set(metrics) == {"accuracy", "loss"} and model.training


class _Payload:
    """Unpickling this runs code: it creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (exec, (f"open({str(self.marker)!r}, 'w').close()",))


def test_a_pickle_that_runs_code_is_refused_without_running_it(image_folder: Path, tmp_path: Path) -> None:
    # First show that the payload is live: a plain unpickling does create its marker.
    control = tmp_path / "control-marker"
    torch.save({"conv1.weight": _Payload(control)}, tmp_path / "control.pt")
    torch.load(tmp_path / "control.pt", weights_only=False)
    assert control.exists()

    marker = tmp_path / "marker"
    torch.save({"conv1.weight": _Payload(marker)}, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="will not unpickle"):
        _task(tmp_path / "evil.pt", image_folder, tmp_path)
    assert not marker.exists()


def test_weights_that_do_not_fit_the_backbone_name_the_keys(
    saved_state: tuple[dict[str, torch.Tensor], Path, Path], image_folder: Path, tmp_path: Path
) -> None:
    state = dict(saved_state[0])
    del state["layer3.1.conv2.weight"]
    state["extra.weight"] = torch.zeros(1)
    save_file(state, str(tmp_path / "partial.safetensors"))
    with pytest.raises(ValueError, match=r"missing: layer3\.1\.conv2\.weight; unexpected: extra\.weight"):
        _task(tmp_path / "partial.safetensors", image_folder, tmp_path)
    (tmp_path / "weights.bin").write_bytes(b"")
    with pytest.raises(ValueError, match=r"expected a \.safetensors, \.pt or \.pth file"):
        _task(tmp_path / "weights.bin", image_folder, tmp_path)


def test_a_folder_with_train_and_val_subfolders_keeps_that_split(tmp_path: Path) -> None:
    _write_colour_images(tmp_path / "train", per_class=4, seed=1)
    _write_colour_images(tmp_path / "val", per_class=2, seed=2)
    data = read_image_folder(tmp_path, image_size=16)
    assert data.images.shape == (18, 3, 16, 16) and data.images.dtype == torch.uint8
    assert int(data.is_val.sum()) == 6 and data.class_names == sorted(COLOURS)


def test_concurrent_workers_draw_the_shapes_folder_once(tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from hps.workers.tasks.image import ensure_shapes_folder; "
        "ensure_shapes_folder(Path(sys.argv[1]))"
    )
    workers = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], cwd=ROOT) for _ in range(3)]
    assert [worker.wait(timeout=120) for worker in workers] == [0, 0, 0]
    assert sorted(entry.name for entry in tmp_path.iterdir()) == [SHAPES_FOLDER, f"{SHAPES_FOLDER}.lock"]
    assert len(list((tmp_path / SHAPES_FOLDER).glob("*/*.png"))) == 600


def test_the_builtin_shapes_model_is_made_once_and_fine_tunes_above_chance(tmp_path: Path) -> None:
    model = next(entry for entry in builtin_models() if entry.name == "shapes-resnet18")
    dataset = next(entry for entry in builtin_datasets() if entry.name == "shapes")
    task = make_task(model, dataset, tmp_path)
    made = {path: path.stat().st_mtime_ns for path in (tmp_path / SHAPES_WEIGHTS, tmp_path / SHAPES_FOLDER)}
    assert sorted(task.class_names) == ["circle", "cross", "square", "triangle"]

    again = make_task(model, dataset, tmp_path)
    assert {path: path.stat().st_mtime_ns for path in made} == made  # reused, not made again
    assert again.split_size("val") == task.split_size("val") == 152

    network = task.fresh_model(CPU, seed=0)
    _train(task, network, epochs=2, lr=3e-4)
    assert task.evaluate(network, "val", batch_size=128, device=CPU)["accuracy"] > 0.4  # chance: 0.25
