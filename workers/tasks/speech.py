"""Speech recognition: a DeepSpeech-style network (:mod:`hps.workers.tasks.deepspeech`) fine-tuned with
CTC on an audio folder, scored by greedy decoding as character and word error rates.

An audio folder holds WAV files (16-bit PCM; mono, or channels averaged; any sample rate, resampled to
16 kHz) and ``transcripts.csv`` with a header and the columns ``path`` (relative to the folder, e.g.
``clips/0001.wav``), ``text`` (letters, spaces and apostrophes; case is ignored) and, optionally,
``split`` (``train``, ``val`` or ``test``). Without ``split``, every fifth row (the 5th, 10th, ...) is
``val`` and the rest ``train``. Every path must resolve inside the folder. Features are computed once, when
the task is built, and kept in memory.

A model entry's ``path`` is a ``.safetensors`` state dict of :class:`DeepSpeech`, whose sizes are the
options ``channels``, ``hidden`` and ``layers``; the whole network is fine-tuned (the output layer spells
the same characters, so nothing is replaced). The built-ins need no files: ``espeak-phrases`` is the target
corpus of :mod:`hps.workers.tasks.espeak` and ``espeak-deepspeech`` is pretrained once on its pretrain
corpus (other words, other voices) into ``cache_dir/espeak-deepspeech-v1.safetensors``, deterministically
and under a file lock, like ``digits-cnn``.
"""

from __future__ import annotations

import copy
import csv
import logging
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from hps.catalog.tasks import DatasetEntry, ModelEntry
from hps.workers.tasks.audio import SAMPLE_RATE, LogMel, read_wav, resample
from hps.workers.tasks.base import Split
from hps.workers.tasks.cache import exclusive, write_safetensors_atomically
from hps.workers.tasks.deepspeech import DeepSpeech, Shape
from hps.workers.tasks.espeak import ensure_corpus
from hps.workers.tasks.files import inside
from hps.workers.tasks.options import int_option
from hps.workers.tasks.transcripts import encode, error_rates, greedy_decode, normalise

MODEL_NAME = "espeak-deepspeech"
DATASET_NAME = "espeak-phrases"
RECIPE_VERSION = 1
TRANSCRIPTS = "transcripts.csv"
SPLITS: tuple[Split, ...] = ("train", "val", "test")
_VAL_EVERY = 5  # without a split column, rows 5, 10, 15, ... are validation

# The pretraining recipe. Changing any of it changes the weights: bump RECIPE_VERSION with it.
_PRETRAIN_SEED = 0
_PRETRAIN_EPOCHS = 12
_PRETRAIN_BATCH_SIZE = 16
_PRETRAIN_LR = 2e-3

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Utterance:
    """One clip: its normalised log-mel ``features`` [frames, bands], its ``text`` and that text as CTC
    ``target`` indices."""

    features: torch.Tensor
    text: str
    target: torch.Tensor


@dataclass(frozen=True)
class SpeechBatch:
    """Padded ``features`` [batch, frames, bands] and their ``lengths``; the ``targets`` of all utterances
    one after another with their ``target_lengths``; the ``texts`` they spell."""

    features: torch.Tensor
    lengths: torch.Tensor
    targets: torch.Tensor
    target_lengths: torch.Tensor
    texts: tuple[str, ...]


def features_of(samples: torch.Tensor, rate: int, log_mel: LogMel) -> torch.Tensor:
    """The network's input for a clip: the log-mel spectrogram of the audio at 16 kHz, each band normalised
    to zero mean and unit variance over the clip (so loudness and microphone gain do not matter)."""
    spectrogram = log_mel(resample(samples, rate, SAMPLE_RATE))
    mean = spectrogram.mean(dim=0, keepdim=True)
    std = spectrogram.std(dim=0, unbiased=False, keepdim=True)
    return (spectrogram - mean) / (std + 1e-5)


def read_audio_folder(
    root: Path, required: tuple[Split, ...] = ("train", "val")
) -> dict[Split, list[Utterance]]:
    """The clips of an audio folder by split (see the module's docstring), in the order of
    ``transcripts.csv``. ``ValueError`` naming the folder, the row or the file when anything is wrong, and
    its subclass ``UnsafePath`` when a path leads outside the folder; the ``required`` splits must not be
    empty."""
    listing = inside(root, Path(TRANSCRIPTS))
    if not listing.is_file():
        raise ValueError(f"dataset {root} has no {TRANSCRIPTS} (columns path,text and optionally split)")
    with listing.open(newline="") as handle:
        reader = csv.DictReader(handle)
        columns = set(reader.fieldnames or ())
        if not {"path", "text"} <= columns:
            raise ValueError(f"{listing} needs the columns path and text; it has {sorted(columns)}")
        rows = list(reader)
    log_mel = LogMel()
    splits: dict[Split, list[Utterance]] = {split: [] for split in SPLITS}
    for number, row in enumerate(rows, start=1):
        where = f"{listing} row {number}"
        split = row.get("split") or ("val" if number % _VAL_EVERY == 0 else "train")
        if split not in SPLITS:
            raise ValueError(f"{where}: split must be train, val or test, not {split!r}")
        try:
            text = normalise(row["text"] or "")
        except ValueError as error:
            raise ValueError(f"{where}: {error}") from None
        clip = inside(root, Path(row["path"] or ""))
        if not clip.is_file():
            raise ValueError(f"{where}: {clip} is not a file")
        samples, rate = read_wav(clip)
        splits[split].append(Utterance(features_of(samples, rate, log_mel), text, encode(text)))
    for needed in required:
        if not splits[needed]:
            raise ValueError(f"dataset {root}: the {needed} split is empty")
    return splits


def collate(utterances: list[Utterance], device: torch.device) -> SpeechBatch:
    """Pad the features of ``utterances`` into one batch (zeros after each clip's end) on ``device``."""
    lengths = torch.tensor([len(u.features) for u in utterances])
    features = torch.zeros(len(utterances), int(lengths.max()), utterances[0].features.shape[1])
    for row, utterance in enumerate(utterances):
        features[row, : len(utterance.features)] = utterance.features
    return SpeechBatch(
        features=features.to(device),
        lengths=lengths.to(device),
        targets=torch.cat([u.target for u in utterances]).to(device),
        target_lengths=torch.tensor([len(u.target) for u in utterances]).to(device),
        texts=tuple(u.text for u in utterances),
    )


def ctc_loss(model: nn.Module, batch: SpeechBatch) -> torch.Tensor:
    """The mean over the batch of each utterance's CTC loss divided by its target length."""
    log_probs, out_lengths = model(batch.features, batch.lengths)
    return per_character_ctc(log_probs, out_lengths, batch).mean()


def per_character_ctc(log_probs: torch.Tensor, out_lengths: torch.Tensor, batch: SpeechBatch) -> torch.Tensor:
    """Each utterance's CTC loss of the network's outputs divided by its target length, [batch]. An
    utterance too short for its transcript counts 0 (not inf), as CTC cannot align it at all."""
    losses = F.ctc_loss(
        log_probs.float(),
        batch.targets,
        out_lengths,
        batch.target_lengths,
        blank=0,
        reduction="none",
        zero_infinity=True,
    )
    return losses / batch.target_lengths.clamp(min=1)


class SpeechTask:
    """The pretrained network (kept on the CPU, never trained) and the dataset's splits (in memory)."""

    def __init__(self, pretrained: DeepSpeech, splits: Mapping[Split, list[Utterance]]) -> None:
        self._pretrained = pretrained
        self._splits = splits

    def has_test_split(self) -> bool:
        """Whether the dataset holds test clips."""
        return bool(self._splits["test"])

    def split_size(self, split: Split) -> int:
        """How many clips the split holds."""
        return len(self._splits[split])

    def fresh_model(self, device: torch.device, seed: int) -> nn.Module:
        """A deep copy of the pretrained network on ``device``, in training mode. Nothing is drawn at
        random (the output layer is kept), so ``seed`` changes nothing here."""
        return copy.deepcopy(self._pretrained).to(device).train()

    def train_batches(
        self, batch_size: int, generator: torch.Generator, device: torch.device
    ) -> Iterator[SpeechBatch]:
        """Every training clip once, padded into batches on ``device``, in an order drawn from
        ``generator``; the last batch may be smaller."""
        clips = self._splits["train"]
        order = torch.randperm(len(clips), generator=generator, device=generator.device).tolist()
        for start in range(0, len(order), batch_size):
            yield collate([clips[i] for i in order[start : start + batch_size]], device)

    def loss(self, model: nn.Module, batch: SpeechBatch) -> torch.Tensor:
        """The mean per-character CTC loss of the batch."""
        return ctc_loss(model, batch)

    def evaluate(
        self, model: nn.Module, split: Split, batch_size: int, device: torch.device
    ) -> dict[str, float]:
        """Character and word error rates of greedy decoding over the whole split (``cer``, ``wer``) and the
        mean per-character CTC loss (``loss``), in eval mode without gradients; the model's mode is
        restored."""
        clips = self._splits[split]
        was_training = model.training
        model.eval()
        hypotheses: list[str] = []
        total_loss = 0.0
        try:
            with torch.no_grad():
                for start in range(0, len(clips), batch_size):
                    batch = collate(clips[start : start + batch_size], device)
                    log_probs, out_lengths = model(batch.features, batch.lengths)
                    hypotheses += greedy_decode(log_probs, out_lengths)
                    total_loss += float(per_character_ctc(log_probs, out_lengths, batch).sum())
        finally:
            model.train(was_training)
        cer, wer = error_rates([clip.text for clip in clips], hypotheses)
        return {"cer": cer, "wer": wer, "loss": total_loss / len(clips)}


def make_task(model: ModelEntry | None, dataset: DatasetEntry | None, cache_dir: Path) -> SpeechTask:
    """The speech task for a registered model and audio folder, or the built-ins (None means them). The
    built-ins are made in ``cache_dir`` when it lacks them, which needs espeak-ng; an operator's own model
    and folder need neither."""
    if dataset is None or (dataset.name == DATASET_NAME and dataset.path is None):
        splits = read_audio_folder(ensure_corpus(cache_dir) / "target")
    elif dataset.path is None:
        raise ValueError(f"dataset {dataset.name!r} has no path: register its audio folder")
    else:
        splits = read_audio_folder(dataset.path)
    if model is None or (model.name == MODEL_NAME and model.path is None):
        with torch.random.fork_rng(devices=[]):  # its random initialisation is overwritten at once
            network = DeepSpeech()
        network.load_state_dict(pretrained_state(cache_dir))
    else:
        network = load_network(model)
    return SpeechTask(network, splits)


def load_network(model: ModelEntry) -> DeepSpeech:
    """A :class:`DeepSpeech` of the sizes in the model's options with the weights of its safetensors file;
    ``ValueError`` naming the file and, when the weights do not fit, the keys."""
    if model.path is None or model.path.suffix != ".safetensors":
        raise ValueError(f"model {model.name!r} needs a path to a .safetensors file, not {model.path}")
    options = model.options
    shape = Shape(
        channels=int_option(options, "channels", Shape.channels),
        hidden=int_option(options, "hidden", Shape.hidden),
        layers=int_option(options, "layers", Shape.layers),
    )
    try:
        state = load_file(model.path)
    except (OSError, SafetensorError) as error:
        raise ValueError(
            f"cannot read the weights of model {model.name!r} at {model.path}: {error}"
        ) from None
    with torch.random.fork_rng(devices=[]):  # its random initialisation is overwritten at once
        network = DeepSpeech(shape)
    expected = set(network.state_dict())
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise ValueError(
            f"{model.path} does not fit a DeepSpeech of {shape}: missing: {', '.join(missing) or 'none'}; "
            f"unexpected: {', '.join(unexpected) or 'none'}"
        )
    try:
        network.load_state_dict(state)
    except RuntimeError as error:  # right keys, wrong shapes: other channels/hidden/layers options
        raise ValueError(f"{model.path} does not fit a DeepSpeech of {shape}: {error}") from None
    return network


def weights_path(cache_dir: Path) -> Path:
    """Where the pretrained network is cached; the name changes with :data:`RECIPE_VERSION`."""
    return cache_dir / f"{MODEL_NAME}-v{RECIPE_VERSION}.safetensors"


def pretrained_state(cache_dir: Path) -> dict[str, torch.Tensor]:
    """The pretrained network's state dict from the cache; pretrained on the espeak-ng pretrain corpus (made
    first if missing) and cached when the cache has none. Safe to call from many processes at once: one of
    them trains."""
    path = weights_path(cache_dir)
    if not path.exists():
        cache_dir.mkdir(parents=True, exist_ok=True)
        with exclusive(path.with_name(path.name + ".lock")):
            if not path.exists():
                write_safetensors_atomically(path, pretrain(_pretraining_clips(cache_dir)))
    return load_file(path)


def _pretraining_clips(cache_dir: Path) -> list[Utterance]:
    return read_audio_folder(ensure_corpus(cache_dir) / "pretrain", required=("train",))["train"]


def pretrain(clips: list[Utterance]) -> dict[str, torch.Tensor]:
    """Train a :class:`DeepSpeech` on ``clips`` with the fixed recipe and return its state dict.

    Deterministic: seeded, on the CPU and on one thread; the process's random state and thread count are
    restored after."""
    started = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(_PRETRAIN_SEED)
            network = DeepSpeech()
            optimizer = torch.optim.Adam(network.parameters(), lr=_PRETRAIN_LR)
            cpu = torch.device("cpu")
            for _ in range(_PRETRAIN_EPOCHS):
                order = torch.randperm(len(clips)).tolist()
                for start in range(0, len(order), _PRETRAIN_BATCH_SIZE):
                    batch = collate([clips[i] for i in order[start : start + _PRETRAIN_BATCH_SIZE]], cpu)
                    optimizer.zero_grad(set_to_none=True)
                    torch.autograd.backward(ctc_loss(network, batch))
                    optimizer.step()
    finally:
        torch.set_num_threads(threads)
    logger.info("pretrained %s v%d in %.1f s", MODEL_NAME, RECIPE_VERSION, time.perf_counter() - started)
    return {key: value.contiguous() for key, value in network.state_dict().items()}
