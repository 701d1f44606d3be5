"""VGG in the image-classification task: torchvision's layout and key names (so its state dicts load), a
user's VGG weights file with a new head, the built-in shapes-vgg11-bn hps pretrains, and a real 2-trial study
through a real `hps worker`."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from harness.databases import database
from harness.servers import RunningServer, serving
from harness.studies import run_study_with_workers
from hps.catalog.registry import load_registry
from hps.catalog.tasks import DatasetEntry, ModelEntry
from hps.workers.tasks.image import (
    SHAPES_FOLDER,
    SHAPES_VGG_WEIGHTS,
    ImageClassificationTask,
    build_network,
    ensure_shapes_folder,
    make_task,
)
from hps.workers.tasks.vgg import build_vgg

CPU = torch.device("cpu")
TASK = "image-classification"
BUILTIN = "shapes-vgg11-bn"


def _vgg11_bn_keys() -> list[str]:
    """torchvision's ``vgg11_bn().state_dict()`` keys, written out from its layout: in ``features``, each
    convolution is followed by its batch norm and ReLU, and a max-pool ends each of the five stages."""
    keys = []
    index = 0
    for stage in ((64,), (128,), (256, 256), (512, 512), (512, 512)):
        for _ in stage:
            keys += [f"features.{index}.weight", f"features.{index}.bias"]
            keys += [
                f"features.{index + 1}.{name}" for name in ("weight", "bias", "running_mean", "running_var")
            ]
            keys.append(f"features.{index + 1}.num_batches_tracked")
            index += 3  # conv, batch norm, ReLU
        index += 1  # max-pool
    keys += [f"classifier.{i}.{name}" for i in (0, 3, 6) for name in ("weight", "bias")]
    return keys


def test_vgg_has_torchvisions_key_names_and_parameter_counts() -> None:
    network = build_vgg("vgg11_bn", 1000)
    assert list(network.state_dict()) == _vgg11_bn_keys()
    # torchvision's published sizes: vgg11_bn 132,868,840 and vgg16_bn 138,365,992 parameters.
    assert sum(p.numel() for p in network.parameters()) == 132_868_840
    vgg16 = build_vgg("vgg16_bn", 1000)
    assert sum(p.numel() for p in vgg16.parameters()) == 138_365_992
    assert len(vgg16.state_dict()) == 13 * 2 + 13 * 5 + 3 * 2  # convolutions, batch norms, linear layers
    assert vgg16.state_dict()["features.40.weight"].shape == (512, 512, 3, 3)  # the last convolution
    assert sum(p.numel() for p in build_vgg("vgg11", 1000).parameters()) == 132_863_336  # without batch norm
    with pytest.raises(ValueError, match="no VGG architecture 'vgg12_bn'"):
        build_vgg("vgg12_bn", 10)
    with pytest.raises(ValueError, match="'classifier_width' is for VGG architectures"):
        build_network({"architecture": "resnet18", "classifier_width": 64}, 10)


def _write_colour_images(folder: Path, per_class: int) -> None:
    rng = np.random.default_rng(0)
    for channel, colour in enumerate(("red", "green", "blue")):
        (folder / colour).mkdir(parents=True)
        for index in range(per_class):
            pixels = rng.integers(0, 90, size=(32, 32, 3))
            pixels[..., channel] += 150
            Image.fromarray(pixels.astype(np.uint8)).save(folder / colour / f"{index}.png")


def test_a_users_vgg_state_dict_loads_with_a_new_head(tmp_path: Path) -> None:
    torch.manual_seed(0)
    saved = build_vgg("vgg11_bn", 10, classifier_width=64)
    with torch.no_grad():  # non-default batch-norm statistics, so that loading them shows
        saved.get_buffer("features.1.running_mean").normal_()
    state = {key: value.contiguous() for key, value in saved.state_dict().items()}
    save_file(state, str(tmp_path / "vgg.safetensors"))
    _write_colour_images(tmp_path / "colours", per_class=8)
    model = ModelEntry(
        name="my-vgg",
        task=TASK,
        path=tmp_path / "vgg.safetensors",
        options={"architecture": "vgg11_bn", "classifier_width": 64},
    )
    task = make_task(model, DatasetEntry(name="colours", task=TASK, path=tmp_path / "colours"), tmp_path)
    network, same_seed = task.fresh_model(CPU, seed=3), task.fresh_model(CPU, seed=3)
    loaded = network.state_dict()
    assert all(
        torch.equal(loaded[key], value) for key, value in state.items() if not key.startswith("classifier.6.")
    )
    assert loaded["classifier.6.weight"].shape == (3, 64)  # the saved 10-class head was replaced
    assert torch.equal(loaded["classifier.6.weight"], same_seed.state_dict()["classifier.6.weight"])

    wrong = ModelEntry(
        name="wrong", task=TASK, path=model.path, options={"architecture": "vgg16_bn", "classifier_width": 64}
    )
    with pytest.raises(ValueError, match=r"do not fit VGG: missing: features\.10\.bias"):
        make_task(wrong, DatasetEntry(name="colours", task=TASK, path=tmp_path / "colours"), tmp_path)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


def _builtin_task(cache_dir: Path) -> ImageClassificationTask:
    resolved = load_registry().resolve(TASK, model=BUILTIN)
    return make_task(resolved.model, resolved.dataset, cache_dir)


def test_the_builtin_vgg_is_made_once_and_fine_tunes_above_chance(cache_dir: Path) -> None:
    task = _builtin_task(cache_dir)
    made = (cache_dir / SHAPES_VGG_WEIGHTS).stat().st_mtime_ns
    assert (_builtin_task(cache_dir), (cache_dir / SHAPES_VGG_WEIGHTS).stat().st_mtime_ns)[1] == made
    network = task.fresh_model(CPU, seed=0)
    assert network.get_submodule("classifier.6").weight.shape == (4, 256)
    declared = load_registry().models[BUILTIN].trainable_params
    assert sum(p.numel() for p in network.parameters()) == declared  # what newton's size check reads
    optimizer = torch.optim.AdamW(network.parameters(), lr=3e-4)
    generator = torch.Generator().manual_seed(0)
    for batch in task.train_batches(32, generator, CPU):  # one epoch: 14 steps
        loss = task.loss(network, batch)
        optimizer.zero_grad()
        torch.autograd.backward(loss)
        optimizer.step()
    assert task.evaluate(network, "val", batch_size=128, device=CPU)["accuracy"] > 0.4  # chance: 0.25


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> Iterator[RunningServer]:
    """A server (SQLite) whose workers' cache already holds the shapes and the built-in VGG (made by the test
    above, or here when it runs alone)."""
    directory = tmp_path_factory.mktemp("server")
    _builtin_task(cache_dir)
    ensure_shapes_folder(cache_dir)
    (directory / "cache").mkdir()
    shutil.copy(cache_dir / SHAPES_VGG_WEIGHTS, directory / "cache" / SHAPES_VGG_WEIGHTS)
    shutil.copytree(cache_dir / SHAPES_FOLDER, directory / "cache" / SHAPES_FOLDER)
    with database("sqlite", directory) as url, serving(url, directory) as running:
        yield running


def test_a_vgg_study_runs_two_trials_through_a_worker(server: RunningServer) -> None:
    with server.client() as client:
        models = {model["name"]: model for model in client.get("/v1/models").json()["items"]}
    assert models[BUILTIN]["task"] == TASK and "VGG-11" in models[BUILTIN]["description"]
    study = run_study_with_workers(
        server,
        task={"name": TASK, "model": BUILTIN, "epochs": 2, "max_steps_per_epoch": 3, "batch_size": 32},
        search_space={"preset": "adamw"},
        sampler={"name": "random", "seed": 0},
        pruner={"name": "none"},
        budget={"n_trials": 2},
    )
    assert study["state"] == "completed", study
    assert study["spec"]["task"]["model"] == BUILTIN and study["metric"] == "val_accuracy"
    trials = study["trials"]
    assert [trial["state"] for trial in trials] == ["complete", "complete"], trials
    assert all(0.0 <= trial["value"] <= 1.0 and trial["attrs"]["steps"] == 6 for trial in trials)
