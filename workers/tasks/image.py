"""Image classification: a torchvision-style ResNet or VGG from a local weights file, fine-tuned with a new
head (a ResNet's ``fc``, a VGG's ``classifier.6``) on a folder of images.

The model entry's ``path`` is a state dict in a ``.safetensors`` file or a ``.pt``/``.pth`` file, the
latter read with ``torch.load(weights_only=True)`` so that nothing but tensors is ever unpickled; its
options are ``architecture`` (default ``resnet18``; ``resnet18``/``resnet34`` or any torchvision ResNet when
torchvision is installed, and ``vgg11``/``vgg13``/``vgg16``/``vgg19`` with or without ``_bn``), ``image_size``
(default 32) and, for a VGG, ``classifier_width`` (default 4096, torchvision's). Every key but the head's
(always replaced) must fit the architecture. The dataset entry's ``path`` is a folder
with one subfolder of PNG/JPEG images per class, split 75/25 per class with a fixed seed, unless it has
``train/`` and ``val/`` subfolders laid out the same way. Everything in the folders listed must resolve
inside the dataset's folder (symlinks within it are fine; one leading out of it is refused). Images are
read once with Pillow, converted to RGB, resized to ``image_size`` squared and kept in memory as one uint8
tensor.

The built-ins need no files: the dataset ``shapes`` is drawn once into ``cache_dir/shapes-v1`` and the
models ``shapes-resnet18`` and ``shapes-vgg11-bn`` are pretrained once, on other shapes, into
``cache_dir/shapes-resnet18-v1.safetensors`` and ``cache_dir/shapes-vgg11-bn-v1.safetensors``; file locks
let several workers start together.
"""

from __future__ import annotations

import copy
import math
import os
import pickle
import random
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from PIL import Image, UnidentifiedImageError
from torch import nn

from hps.catalog.builtins import IMAGE_CLASSIFICATION
from hps.catalog.tasks import DatasetEntry, ModelEntry
from hps.workers.tasks.base import Split
from hps.workers.tasks.cache import exclusive, write_safetensors_atomically
from hps.workers.tasks.classification import classification_metrics
from hps.workers.tasks.files import entries_in
from hps.workers.tasks.options import int_option, str_option
from hps.workers.tasks.resnet import build_resnet
from hps.workers.tasks.vgg import HEAD as VGG_HEAD
from hps.workers.tasks.vgg import STAGES, TORCHVISION_CLASSIFIER_WIDTH, VGG, build_vgg, is_vgg

DEFAULT_ARCHITECTURE = "resnet18"
DEFAULT_IMAGE_SIZE = 32
VAL_FRACTION = 0.25
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg"})
_SPLIT_SEED = 0  # fixed, so every worker and every run sees the same split

SHAPES_DATASET = IMAGE_CLASSIFICATION.default_dataset  # "shapes"
SHAPES_MODEL = IMAGE_CLASSIFICATION.default_model  # "shapes-resnet18"
SHAPES_FOLDER = "shapes-v1"
SHAPES_WEIGHTS = "shapes-resnet18-v1.safetensors"
SHAPES_VGG_MODEL = "shapes-vgg11-bn"
SHAPES_VGG_WEIGHTS = "shapes-vgg11-bn-v1.safetensors"
# The built-in VGG's classifier width: 4096 (torchvision's) would put 119 M of its 129 M parameters in
# a classifier that sees one pooled 1x1 map copied 49 times at 32x32 pixels.
SHAPES_VGG_CLASSIFIER_WIDTH = 256
SHAPES_SIZE = 32
SHAPES_PER_CLASS = 150
TARGET_SHAPES = ("circle", "square", "triangle", "cross")
# The pretraining task: other shapes drawn the same way, so the backbone learns edges, corners and
# strokes but has never seen the classes it is fine-tuned on.
SOURCE_SHAPES = ("ring", "diamond", "bar", "saltire")
SOURCE_PER_CLASS = 500
PRETRAIN_EPOCHS = 4
PRETRAIN_BATCH_SIZE = 64
PRETRAIN_LEARNING_RATE = 1e-3
# A VGG-11 costs about four times a ResNet-18 at 32x32 (no strided stem): half the images, the same epochs.
VGG_SOURCE_PER_CLASS = 250
VGG_PRETRAIN_BATCH_SIZE = 32


@dataclass(frozen=True)
class ImageFolderData:
    """A dataset in memory: ``images`` uint8 (N, 3, size, size), ``labels`` class indices, ``is_val``."""

    images: torch.Tensor
    labels: torch.Tensor
    is_val: torch.Tensor
    class_names: list[str]


@dataclass(frozen=True)
class ImageBatch:
    """Normalised float images and class indices, both on one device."""

    images: torch.Tensor
    labels: torch.Tensor


def make_task(
    model: ModelEntry | None, dataset: DatasetEntry | None, cache_dir: Path
) -> ImageClassificationTask:
    """Load (or, for the built-ins, make once) the weights and the images; ``ValueError`` names the file
    and the problem when either is unusable."""
    if model is None or dataset is None:
        raise ValueError("image-classification needs a model entry and a dataset entry")
    image_size = int_option(model.options, "image_size", DEFAULT_IMAGE_SIZE)
    data = read_image_folder(_dataset_folder(dataset, cache_dir), image_size)
    weights = _weights_file(model, cache_dir)
    backbone = build_network(model.options, len(data.class_names))
    load_backbone(backbone, read_state_dict(weights), weights)
    return ImageClassificationTask(backbone, data)


def build_network(options: Mapping[str, object], num_classes: int) -> nn.Module:
    """A randomly initialised network of the model's ``architecture`` (a ResNet or a VGG, torchvision's
    layout) with ``num_classes`` outputs; ``ValueError`` naming the option when it is wrong."""
    architecture = str_option(options, "architecture", DEFAULT_ARCHITECTURE)
    if is_vgg(architecture):
        width = int_option(options, "classifier_width", TORCHVISION_CLASSIFIER_WIDTH)
        return build_vgg(architecture, num_classes, classifier_width=width)
    if "classifier_width" in options:
        raise ValueError(f"option 'classifier_width' is for VGG architectures, not {architecture!r}")
    return build_resnet(architecture, num_classes)


def _dataset_folder(dataset: DatasetEntry, cache_dir: Path) -> Path:
    if dataset.path is not None:
        return dataset.path
    if dataset.name == SHAPES_DATASET:
        return ensure_shapes_folder(cache_dir)
    raise ValueError(f"dataset {dataset.name!r} has no path to an image folder")


def _weights_file(model: ModelEntry, cache_dir: Path) -> Path:
    if model.path is not None:
        return model.path
    if model.name == SHAPES_MODEL:
        return ensure_shapes_weights(cache_dir)
    if model.name == SHAPES_VGG_MODEL:
        return ensure_shapes_vgg_weights(cache_dir)
    raise ValueError(f"model {model.name!r} has no path to a weights file")


class ImageClassificationTask:
    """The pretrained network (kept on the CPU, never trained) and the images (in memory)."""

    def __init__(self, pretrained: nn.Module, data: ImageFolderData) -> None:
        _head(pretrained)  # fail now, not in the first trial, if there is no head to replace
        self._pretrained = pretrained
        self._data = data
        self.class_names = data.class_names
        self._rows: dict[Split, torch.Tensor] = {
            "train": torch.nonzero(~data.is_val).flatten(),
            "val": torch.nonzero(data.is_val).flatten(),
        }

    def split_size(self, split: Split) -> int:
        """How many images ``split`` has."""
        return len(self._rows[split])

    def fresh_model(self, device: torch.device, seed: int) -> nn.Module:
        """A deep copy of the pretrained backbone with its head (``fc`` or ``classifier.6``) drawn anew from
        ``seed`` (PyTorch's default for a linear layer); on ``device``, in training mode."""
        model = copy.deepcopy(self._pretrained)
        _reinitialise_linear(_head(model), seed)
        return model.to(device).train()

    def train_batches(
        self, batch_size: int, generator: torch.Generator, device: torch.device
    ) -> Iterator[ImageBatch]:
        """Every training image once, in an order drawn from ``generator``; a last batch of a single image is
        left out, because batch norm cannot train on one value per channel."""
        rows = self._rows["train"]
        order = torch.randperm(len(rows), generator=generator, device=generator.device).cpu()
        for batch in _batches(self._data, rows[order], batch_size, device):
            if len(batch.labels) > 1:
                yield batch

    def loss(self, model: nn.Module, batch: ImageBatch) -> torch.Tensor:
        """Mean cross-entropy of the model's logits."""
        return F.cross_entropy(model(batch.images), batch.labels)

    def evaluate(
        self, model: nn.Module, split: Split, batch_size: int, device: torch.device
    ) -> dict[str, float]:
        """Accuracy and mean cross-entropy over the whole split (``classification_metrics``)."""
        batches = _batches(self._data, self._rows[split], batch_size, device)
        return classification_metrics(model, lambda: ((model(b.images), b.labels) for b in batches))


def _batches(
    data: ImageFolderData, rows: torch.Tensor, batch_size: int, device: torch.device
) -> Iterator[ImageBatch]:
    for start in range(0, len(rows), batch_size):
        chosen = rows[start : start + batch_size]
        yield ImageBatch(
            images=_normalise(data.images[chosen], device), labels=data.labels[chosen].to(device)
        )


def _normalise(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 pixels to floats in [-1, 1] (mean and std 0.5), converted on ``device``: 4x fewer bytes move."""
    return (images.to(device).float() / 255.0 - 0.5) / 0.5


def head_name(model: nn.Module) -> str:
    """The name of the linear layer a fine-tuning run replaces: a ResNet's ``fc``, a VGG's
    ``classifier.6``."""
    for name in ("fc", VGG_HEAD):
        try:
            if isinstance(model.get_submodule(name), nn.Linear):
                return name
        except AttributeError:
            continue
    raise ValueError(f"{type(model).__name__} has no linear head named 'fc' or {VGG_HEAD!r} to replace")


def _head(model: nn.Module) -> nn.Linear:
    return cast(nn.Linear, model.get_submodule(head_name(model)))


def _reinitialise_linear(layer: nn.Linear, seed: int) -> None:
    """PyTorch's default linear initialisation, U(-1/sqrt(fan_in), 1/sqrt(fan_in)), drawn from ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    bound = 1.0 / math.sqrt(layer.in_features)
    with torch.no_grad():
        layer.weight.uniform_(-bound, bound, generator=generator)
        if layer.bias is not None:
            layer.bias.uniform_(-bound, bound, generator=generator)


# --- weights -----------------------------------------------------------------------------------------


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` file or of a ``.pt``/``.pth`` state dict. A pickle that holds
    anything but tensors (and the containers torch allows with ``weights_only``) is refused unopened:
    ``ValueError``, and none of its code runs."""
    if not path.is_file():
        raise ValueError(f"weights {path} do not exist or are not a file")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return dict(load_file(str(path), device="cpu"))
        except SafetensorError as error:
            raise ValueError(f"weights {path} are not a readable safetensors file: {error}") from None
    if suffix not in (".pt", ".pth"):
        raise ValueError(f"weights {path}: expected a .safetensors, .pt or .pth file")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # torch's own message suggests weights_only=False; hps never does that with an operator's file.
        raise ValueError(
            f"weights {path} hold objects other than tensors; hps will not unpickle them"
        ) from None
    except (RuntimeError, EOFError) as error:
        raise ValueError(f"weights {path} are not a readable torch file: {error}") from None
    if not isinstance(loaded, Mapping) or not all(
        isinstance(key, str) and isinstance(value, torch.Tensor) for key, value in loaded.items()
    ):
        raise ValueError(f"weights {path} are not a state dict (a mapping of parameter names to tensors)")
    return dict(loaded)


def load_backbone(model: nn.Module, state: Mapping[str, torch.Tensor], path: Path) -> None:
    """Copy every tensor of ``state`` except the head's (``fc.*`` or ``classifier.6.*``, which each trial
    replaces) into ``model``. ``ValueError`` naming the keys when any backbone key is missing, unexpected or
    misshapen."""
    expected = model.state_dict()
    head = f"{head_name(model)}."
    backbone = {key: value for key, value in state.items() if not key.startswith(head)}
    missing = sorted(key for key in expected if not key.startswith(head) and key not in backbone)
    unexpected = sorted(key for key in backbone if key not in expected)
    misshapen = sorted(
        key for key in backbone.keys() & expected.keys() if backbone[key].shape != expected[key].shape
    )
    problems = [
        f"{what}: {', '.join(keys[:8])}{' ...' if len(keys) > 8 else ''}"
        for what, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", misshapen))
        if keys
    ]
    if problems:
        raise ValueError(f"weights {path} do not fit {type(model).__name__}: {'; '.join(problems)}")
    # Not strict only because the head's keys were left out on purpose; all others were checked above.
    model.load_state_dict(backbone, strict=False)


# --- image folders -----------------------------------------------------------------------------------


def read_image_folder(root: Path, image_size: int) -> ImageFolderData:
    """All images under ``root`` (``root/<class>/*`` split per class 75/25 with a fixed seed, or
    ``root/train/<class>/*`` and ``root/val/<class>/*``); ``ValueError`` naming the folder or file when
    the layout is wrong or an image cannot be read, and its subclass ``UnsafePath`` when any entry of a
    folder it lists (a class folder, an image, anything else) resolves outside ``root``."""
    if not root.is_dir():
        raise ValueError(f"dataset {root} does not exist or is not a folder")
    if (root / "train").is_dir() and (root / "val").is_dir():
        class_names = _class_folders(root, root / "train")
        train = _class_files(root, root / "train", class_names, each_needs_images=True)
        val = _class_files(root, root / "val", class_names, each_needs_images=False)
        unknown = sorted(set(_class_folders(root, root / "val", minimum=1)) - set(class_names))
        if unknown:
            raise ValueError(f"dataset {root}: val has classes that train lacks: {', '.join(unknown)}")
    else:
        class_names = _class_folders(root, root)
        train, val = _split_per_class(_class_files(root, root, class_names, each_needs_images=True))
    files = train + val
    if not val:
        raise ValueError(f"dataset {root}: the val split is empty")
    pixels = np.stack([_read_image(path, image_size) for path, _ in files])
    return ImageFolderData(
        images=torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous(),
        labels=torch.tensor([label for _, label in files], dtype=torch.long),
        is_val=torch.tensor([False] * len(train) + [True] * len(val)),
        class_names=class_names,
    )


def _class_folders(root: Path, folder: Path, minimum: int = 2) -> list[str]:
    names = [
        entry.name for entry in entries_in(root, folder) if entry.is_dir() and not entry.name.startswith(".")
    ]
    if len(names) < minimum:
        raise ValueError(f"dataset {folder} needs a subfolder per class, and at least {minimum}")
    return names


def _class_files(
    root: Path, folder: Path, class_names: list[str], each_needs_images: bool
) -> list[tuple[Path, int]]:
    """(file, class index) for every image in ``folder/<class>``; with ``each_needs_images``, a class
    without images is an error (a val folder may lack some classes)."""
    files = []
    for label, name in enumerate(class_names):
        found = _images_in(root, folder / name)
        if not found and each_needs_images:
            raise ValueError(f"dataset {folder / name} holds no PNG or JPEG images")
        files += [(path, label) for path in found]
    return files


def _images_in(root: Path, folder: Path) -> list[Path]:
    """The PNG and JPEG files directly in ``folder``, sorted by name; none when ``folder`` is missing.
    ``UnsafePath`` when ``folder`` or anything in it resolves outside ``root``."""
    if not folder.is_dir():
        return []
    return [
        path for path in entries_in(root, folder) if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES
    ]


def _split_per_class(files: list[tuple[Path, int]]) -> tuple[list[tuple[Path, int]], list[tuple[Path, int]]]:
    """A quarter of each class (at least one image, when it has two) to val, chosen with a fixed seed."""
    rng = random.Random(_SPLIT_SEED)
    train, val = [], []
    for label in sorted({label for _, label in files}):
        members = [item for item in files if item[1] == label]
        rng.shuffle(members)
        count = min(max(round(len(members) * VAL_FRACTION), 1), len(members) - 1)
        val += members[:count]
        train += members[count:]
    return train, val


def _read_image(path: Path, size: int) -> NDArray[np.uint8]:
    try:
        with Image.open(path) as image:
            rgb = image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError) as error:
        raise ValueError(f"dataset image {path} cannot be read: {error}") from None
    return np.asarray(rgb, dtype=np.uint8)


# --- built-ins: the shapes dataset and the shapes-pretrained ResNet-18 -------------------------------


def ensure_shapes_folder(cache_dir: Path) -> Path:
    """``cache_dir/shapes-v1``: 150 PNGs (32x32) of each of circle, square, triangle and cross, drawn the
    first time with a fixed seed. Made under a file lock and renamed into place whole, so concurrent
    workers neither draw it twice nor see it half written."""
    target = cache_dir / SHAPES_FOLDER
    if target.is_dir():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    with exclusive(cache_dir / f"{SHAPES_FOLDER}.lock"):
        if not target.is_dir():
            staging = Path(tempfile.mkdtemp(prefix=f".{SHAPES_FOLDER}-", dir=cache_dir))
            try:
                _write_shapes(staging)
                os.replace(staging, target)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
    return target


def ensure_shapes_weights(cache_dir: Path) -> Path:
    """``cache_dir/shapes-resnet18-v1.safetensors``: a ResNet-18 pretrained the first time (seconds on a
    CPU) to tell apart four shapes that the ``shapes`` dataset does not contain. Locked and atomic like
    :func:`ensure_shapes_folder`."""
    return _ensure_weights(cache_dir / SHAPES_WEIGHTS, pretrain_shapes_resnet)


def ensure_shapes_vgg_weights(cache_dir: Path) -> Path:
    """``cache_dir/shapes-vgg11-bn-v1.safetensors``: a VGG-11 with batch norm (torchvision's layout, a
    256-wide classifier) pretrained the first time on the same other shapes; locked and atomic the same
    way."""
    return _ensure_weights(cache_dir / SHAPES_VGG_WEIGHTS, pretrain_shapes_vgg)


def _ensure_weights(target: Path, pretrain: Callable[[], nn.Module]) -> Path:
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with exclusive(target.with_name(f"{target.name}.lock")):
        if not target.is_file():
            state = {key: value.contiguous() for key, value in pretrain().state_dict().items()}
            write_safetensors_atomically(target, state)
    return target


def _write_shapes(folder: Path) -> None:
    rng = np.random.default_rng(1)
    for kind in TARGET_SHAPES:
        (folder / kind).mkdir()
        for index in range(SHAPES_PER_CLASS):
            Image.fromarray(draw_shape(kind, rng, SHAPES_SIZE)).save(folder / kind / f"{index:04d}.png")


def pretrain_shapes_resnet() -> nn.Module:
    """A ResNet-18 trained from a fixed seed on :data:`SOURCE_SHAPES` (drawn in memory, never saved):
    2,000 images for 4 epochs, about 20 s on two CPU cores, reaching ~90% on fresh source images."""
    return _pretrain_on_source_shapes(
        lambda: build_resnet("resnet18", len(SOURCE_SHAPES)),
        SOURCE_PER_CLASS,
        PRETRAIN_BATCH_SIZE,
        anneal=False,
    )


def pretrain_shapes_vgg() -> nn.Module:
    """A VGG-11 with batch norm trained on 1,000 source-shape images for 4 epochs (about 80 s of one CPU
    core), reaching ~75% on fresh source images. Unlike the ResNet's recipe: batches of 32, the learning rate
    annealed to 0 (cosine), and no dropout while pretraining (a VGG from scratch fits too slowly with it in
    so few steps; dropout has no weights, so the saved layout is torchvision's all the same)."""
    return _pretrain_on_source_shapes(
        lambda: VGG(
            STAGES["vgg11"],
            batch_norm=True,
            num_classes=len(SOURCE_SHAPES),
            classifier_width=SHAPES_VGG_CLASSIFIER_WIDTH,
            dropout=0.0,
        ),
        VGG_SOURCE_PER_CLASS,
        VGG_PRETRAIN_BATCH_SIZE,
        anneal=True,
    )


def _pretrain_on_source_shapes(
    build: Callable[[], nn.Module], per_class: int, batch_size: int, anneal: bool
) -> nn.Module:
    rng = np.random.default_rng(2)
    pixels = np.stack(
        [draw_shape(kind, rng, SHAPES_SIZE) for kind in SOURCE_SHAPES for _ in range(per_class)]
    )
    images = torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous()
    labels = torch.arange(len(SOURCE_SHAPES)).repeat_interleave(per_class)
    cpu = torch.device("cpu")
    # Fork the global generator so that pretraining neither depends on nor disturbs the caller's seeds.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = build().train()
        optimizer = torch.optim.Adam(model.parameters(), lr=PRETRAIN_LEARNING_RATE)
        steps = PRETRAIN_EPOCHS * math.ceil(len(labels) / batch_size)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps) if anneal else None
        for _ in range(PRETRAIN_EPOCHS):
            order = torch.randperm(len(labels))
            for start in range(0, len(labels), batch_size):
                chosen = order[start : start + batch_size]
                loss = F.cross_entropy(model(_normalise(images[chosen], cpu)), labels[chosen])
                optimizer.zero_grad()
                torch.autograd.backward(loss)  # Tensor.backward is untyped in torch's stubs
                optimizer.step()
                if schedule is not None:
                    schedule.step()
    return model


def draw_shape(kind: str, rng: np.random.Generator, size: int) -> NDArray[np.uint8]:
    """A ``size`` x ``size`` RGB image of one shape of ``kind`` (one of :data:`TARGET_SHAPES` or
    :data:`SOURCE_SHAPES`), at a random place, size and colour on a random plain background, with noise."""
    radius = rng.uniform(0.2, 0.4) * size
    centre_y, centre_x = rng.uniform(radius, size - radius, size=2)
    y, x = np.mgrid[0:size, 0:size] + 0.5
    mask = _shape_mask(kind, y - centre_y, x - centre_x, radius, rng)
    background = rng.integers(0, 256, size=3)
    # Every channel is 80..175 away from the background's (modulo 256), so the shape always stands out.
    foreground = (background + rng.integers(80, 176, size=3)) % 256
    image = np.where(mask[..., None], foreground, background) + rng.normal(0.0, 12.0, size=(size, size, 3))
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def _shape_mask(
    kind: str, dy: NDArray[np.float64], dx: NDArray[np.float64], radius: float, rng: np.random.Generator
) -> NDArray[np.bool_]:
    """Which pixels the shape covers, given each pixel's offset from the shape's centre."""
    stroke = max(1.5, 0.25 * radius)  # half the width of a line
    ady, adx = np.abs(dy), np.abs(dx)
    distance = np.hypot(dx, dy)
    if kind == "circle":
        return distance <= radius
    if kind == "square":
        return np.maximum(adx, ady) <= 0.8 * radius
    if kind == "triangle":
        return (dy >= -radius) & (dy <= 0.8 * radius) & (adx <= 0.55 * (dy + radius))
    if kind == "cross":
        return ((adx <= stroke) & (ady <= radius)) | ((ady <= stroke) & (adx <= radius))
    if kind == "ring":
        return (distance <= radius) & (distance >= radius - 2 * stroke)
    if kind == "diamond":
        return adx + ady <= radius
    if kind == "bar":
        long, short = (adx, ady) if rng.integers(2) == 0 else (ady, adx)
        return (long <= radius) & (short <= stroke)
    if kind == "saltire":
        on_diagonal = (np.abs(dx - dy) <= 1.4 * stroke) | (np.abs(dx + dy) <= 1.4 * stroke)
        return on_diagonal & (np.maximum(adx, ady) <= 0.75 * radius)
    raise ValueError(f"no shape called {kind!r}")
