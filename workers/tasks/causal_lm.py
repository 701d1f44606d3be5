"""Causal language modelling: a decoder-only transformer (a Hugging Face causal LM such as GPT-2) fine-tuned
with the next-token loss on a text corpus; measured by the mean next-token cross-entropy on validation text
(``val_loss``, nats a token) and its exponential (``val_perplexity``).

The model entry's ``path`` is a Hugging Face model directory on this machine holding a causal LM (its
``config.json`` names, e.g., ``GPT2LMHeadModel``), its tokenizer and safetensors weights; it is read the way
``text-classification`` reads encoders (nothing fetched, no remote code, nothing outside the directory, no
pickles). The tokenizer must have an end-of-text token: it ends every text, and it pads.

The dataset entry's ``path`` is a plain-text file (``.txt``: texts are paragraphs, separated by blank lines)
or a JSONL file (``.jsonl``: one object a line, the text under ``text_column``, default ``text``, and
optionally ``split``: ``train``/``val``/``test``; ``test`` texts are held out, evaluated once at the end of a
complete trial). Without a ``split``, a fixed-seed ``val_fraction`` (default 0.1) of the texts is validation.
How texts become examples, from the dataset's options:

* ``block_size`` (default 64, or the model's context when that is shorter; at most the context): tokens
  an example holds.
* ``packing`` (default ``true``): texts are joined, each ended by the end-of-text token, and cut into
  consecutive blocks of ``block_size`` tokens, so no compute goes to padding. With ``false`` each text is
  its own example, and ``truncation`` decides what happens to a text longer than a block: ``true`` (default)
  keeps its first ``block_size`` tokens, ``false`` splits it into several examples.
* ``padding``: ``longest`` (default) pads each batch to its longest example, ``max_length`` to
  ``block_size``. Padding is masked out of attention and out of the loss and metrics.

The built-ins need no files: the model ``docstrings-gpt`` is a small GPT-2 that hps pretrains once (under a
minute on a CPU, seeded, on one thread) on the Python standard library's docstrings that hps ships
(``python-docstrings.txt``) and caches as a Hugging Face directory, ``cache_dir/docstrings-gpt-v1``, with a
byte-level tokenizer written by hps (the GPT-2 byte alphabet and no merges: one token a byte, nothing to
train or download). The dataset ``debian-descriptions`` is a different domain: Debian's one-line package
descriptions.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import random
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from hps.catalog.builtins import CAUSAL_LM
from hps.catalog.tasks import DatasetEntry, ModelEntry
from hps.workers.tasks.base import Split
from hps.workers.tasks.cache import exclusive
from hps.workers.tasks.files import json_lines
from hps.workers.tasks.options import fraction_option, int_option, str_option
from hps.workers.tasks.text import check_model_directory

DEFAULT_BLOCK_SIZE = 64
DEFAULT_VAL_FRACTION = 0.1
SPLIT_COLUMN = "split"
PADDINGS = ("longest", "max_length")
IGNORE = -100  # the label of a position the loss skips (padding), as transformers expects
_SPLIT_SEED = 0  # fixed, so every worker and every run sees the same split

BUILTIN_MODEL = CAUSAL_LM.default_model  # "docstrings-gpt"
PRETRAIN_CORPUS = "python-docstrings.txt"
# The pretraining recipe. Changing any of it changes the weights: bump RECIPE_VERSION with it.
RECIPE_VERSION = 1
_PRETRAIN_SEED = 0
_PRETRAIN_BLOCK = 64
_PRETRAIN_BATCH = 32
_PRETRAIN_EPOCHS = 1
_PRETRAIN_LR = 5e-3
_CONTEXT, _WIDTH, _LAYERS, _HEADS = 128, 64, 2, 4
END_OF_TEXT = "<|endoftext|>"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Layout:
    """How texts become examples (the dataset's options)."""

    block_size: int | None = None  # None: DEFAULT_BLOCK_SIZE, or the model's context when that is shorter
    packing: bool = True
    truncation: bool = True
    padding: str = "longest"


@dataclass(frozen=True)
class Texts:
    """A validated corpus: its texts and the split of each."""

    texts: list[str]
    splits: list[Split]


@dataclass(frozen=True)
class TokenBatch:
    """Token ids, attention mask and labels (the ids, padding as ``IGNORE``), all [B, T] on one device."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor


def make_task(model: ModelEntry | None, dataset: DatasetEntry | None, cache_dir: Path) -> CausalLMTask:
    """Load (for the built-in model, pretrain once) the model directory and read the corpus; ``ValueError``
    names the file or option and the problem when either is unusable."""
    if model is None:
        raise ValueError("causal-lm needs a model entry")
    if dataset is None or dataset.path is None:
        raise ValueError("causal-lm needs a dataset entry with a path to a .txt or .jsonl file")
    if model.path is None and model.name != BUILTIN_MODEL:
        raise ValueError(f"model {model.name!r} has no path to a Hugging Face model directory")
    # The corpus and its options first: a mistake there is found in a moment, not after a pretraining.
    layout = read_layout(dataset.options)
    texts = read_texts(
        dataset.path,
        text_column=str_option(dataset.options, "text_column", "text"),
        val_fraction=fraction_option(dataset.options, "val_fraction", DEFAULT_VAL_FRACTION),
    )
    model_dir = model.path if model.path is not None else ensure_builtin_model(cache_dir)
    tokenizer, pretrained = load_causal_lm(model_dir)
    return CausalLMTask(pretrained, tokenizer, texts, layout)


def read_layout(options: Mapping[str, Any]) -> Layout:
    """The dataset's ``block_size``, ``packing``, ``truncation`` and ``padding``, each checked."""
    padding = str_option(options, "padding", "longest")
    if padding not in PADDINGS:
        raise ValueError(f"option 'padding' must be one of {', '.join(PADDINGS)}, not {padding!r}")
    return Layout(
        block_size=int_option(options, "block_size", 1) if "block_size" in options else None,
        packing=_bool_option(options, "packing", True),
        truncation=_bool_option(options, "truncation", True),
        padding=padding,
    )


def _bool_option(options: Mapping[str, Any], name: str, default: bool) -> bool:
    value = options.get(name, default)
    if not isinstance(value, bool):
        raise ValueError(f"option {name!r} must be true or false, not {value!r}")
    return value


class CausalLMTask:
    """The pretrained LM (kept on the CPU, never trained) and the corpus cut into examples (in memory)."""

    def __init__(self, pretrained: nn.Module, tokenizer: Any, texts: Texts, layout: Layout) -> None:
        config = cast(Any, pretrained).config
        # GPT-2's configuration calls its context n_positions; most other causal LMs' max_position_embeddings.
        context = int(getattr(config, "n_positions", 0) or config.max_position_embeddings)
        if layout.block_size is not None and layout.block_size > context:
            raise ValueError(
                f"option 'block_size' is {layout.block_size}, more than the model's context of {context} "
                "tokens"
            )
        end = tokenizer.eos_token_id
        if end is None:
            raise ValueError(
                "the model's tokenizer has no end-of-text token (eos_token) to end and pad texts"
            )
        self._pretrained = pretrained
        self._pad = int(end)
        self._layout = layout
        self._block_size = layout.block_size or min(DEFAULT_BLOCK_SIZE, context)
        ids = tokenizer(texts.texts, add_special_tokens=False)["input_ids"]
        self._examples: dict[Split, list[list[int]]] = {}
        for split in ("train", "val", "test"):
            chosen = [
                [*tokens, self._pad] for tokens, name in zip(ids, texts.splits, strict=True) if name == split
            ]
            self._examples[split] = _examples(chosen, layout, self._block_size)
        if not self._examples["train"] or not self._examples["val"]:
            raise ValueError("the corpus has no training or no validation tokens")

    def split_size(self, split: Split) -> int:
        """How many examples (blocks) ``split`` has."""
        return len(self._examples[split])

    def has_test_split(self) -> bool:
        """Whether the corpus holds test texts."""
        return self.split_size("test") > 0

    def fresh_model(self, device: torch.device, seed: int) -> nn.Module:
        """A deep copy of the pretrained LM on ``device``, in training mode. Nothing in it is new (the output
        layer is the pretrained one), so ``seed`` has nothing to draw."""
        return copy.deepcopy(self._pretrained).to(device).train()

    def train_batches(
        self, batch_size: int, generator: torch.Generator, device: torch.device
    ) -> Iterator[TokenBatch]:
        """Every training example once, in an order drawn from ``generator``; the last batch may be
        smaller."""
        examples = self._examples["train"]
        order = torch.randperm(len(examples), generator=generator, device=generator.device).tolist()
        return self._batches([examples[i] for i in order], batch_size, device)

    def loss(self, model: nn.Module, batch: TokenBatch) -> torch.Tensor:
        """The model's mean next-token cross-entropy over the batch's real (not padding) tokens."""
        output = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, labels=batch.labels)
        return cast(torch.Tensor, output.loss)

    def evaluate(
        self, model: nn.Module, split: Split, batch_size: int, device: torch.device
    ) -> dict[str, float]:
        """Mean next-token cross-entropy over every predicted token of the split (not a mean of batch means)
        and its exponential, the perplexity; in eval mode, without gradients."""
        was_training = model.training
        model.eval()
        total, count = 0.0, 0
        try:
            with torch.no_grad():
                for batch in self._batches(self._examples[split], batch_size, device):
                    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
                    targets = batch.labels[:, 1:]
                    total += float(
                        F.cross_entropy(
                            logits[:, :-1].flatten(0, 1).float(),
                            targets.flatten(),
                            ignore_index=IGNORE,
                            reduction="sum",
                        )
                    )
                    count += int((targets != IGNORE).sum())
        finally:
            model.train(was_training)
        loss = total / count
        return {"loss": loss, "perplexity": math.exp(min(loss, 700.0))}  # exp overflows a float past ~709

    def _batches(
        self, examples: list[list[int]], batch_size: int, device: torch.device
    ) -> Iterator[TokenBatch]:
        for start in range(0, len(examples), batch_size):
            yield self._batch(examples[start : start + batch_size], device)

    def _batch(self, examples: list[list[int]], device: torch.device) -> TokenBatch:
        width = self._block_size
        if self._layout.padding == "longest":
            width = max(len(example) for example in examples)
        ids = torch.full((len(examples), width), self._pad, dtype=torch.long)
        mask = torch.zeros((len(examples), width), dtype=torch.long)
        for row, example in enumerate(examples):
            ids[row, : len(example)] = torch.tensor(example, dtype=torch.long)
            mask[row, : len(example)] = 1
        labels = ids.masked_fill(mask == 0, IGNORE)
        return TokenBatch(input_ids=ids.to(device), attention_mask=mask.to(device), labels=labels.to(device))


def _examples(texts: list[list[int]], layout: Layout, size: int) -> list[list[int]]:
    """Token lists (each text's tokens, end-of-text included) cut into examples of at most ``size``
    tokens as ``layout`` says; examples of a single token are dropped (they predict nothing)."""
    if layout.packing:
        stream = [token for tokens in texts for token in tokens]
        pieces = [stream[start : start + size] for start in range(0, len(stream), size)]
    elif layout.truncation:
        pieces = [tokens[:size] for tokens in texts]
    else:
        pieces = [tokens[start : start + size] for tokens in texts for start in range(0, len(tokens), size)]
    return [piece for piece in pieces if len(piece) > 1]


# --- models ------------------------------------------------------------------------------------------


def load_causal_lm(model_dir: Path) -> tuple[Any, nn.Module]:
    """The tokenizer and the causal LM, both read from ``model_dir`` alone (checked first, as
    ``text-classification`` checks its encoders); ``ValueError`` when it is not a causal LM."""
    if not model_dir.is_dir():
        raise ValueError(f"model directory {model_dir} does not exist or is not a directory")
    check_model_directory(model_dir)
    _offline_and_quiet()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(
            str(model_dir), local_files_only=True, trust_remote_code=False
        )
        model = AutoModelForCausalLM.from_pretrained(
            str(model_dir),
            local_files_only=True,
            trust_remote_code=False,
            use_safetensors=True,
            weights_only=True,
        )
    except (OSError, KeyError) as error:
        raise ValueError(
            f"model directory {model_dir} is not a causal LM with its tokenizer: {error}"
        ) from None
    log.info("loaded the causal LM in %s (%s)", model_dir, type(model).__name__)
    return tokenizer, cast(nn.Module, model)


def _offline_and_quiet() -> None:
    """Keep transformers off the network and out of the worker's log (progress bars, coloured tables)."""
    # Read by huggingface_hub when it is first imported: make sure no worker ever reaches for the network.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from transformers.utils import logging as transformers_logging

    transformers_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]


def read_texts(path: Path, text_column: str, val_fraction: float) -> Texts:
    """The texts of a ``.txt`` (paragraphs) or ``.jsonl`` file and their splits; ``ValueError`` names the
    file, the line and the problem."""
    if not path.is_file():
        raise ValueError(f"dataset {path} does not exist or is not a file")
    suffix = path.suffix.lower()
    if suffix == ".txt":
        content = path.read_text(encoding="utf-8")
        texts = [" ".join(block.split()) for block in content.split("\n\n")]
        texts = [text for text in texts if text]
        given: list[Split] | None = None
    elif suffix == ".jsonl":
        texts, given = _read_jsonl(path, text_column)
    else:
        raise ValueError(f"dataset {path}: expected a .txt or .jsonl file")
    if len(texts) < 2:
        raise ValueError(f"dataset {path} needs at least 2 texts (paragraphs or lines), has {len(texts)}")
    splits = given if given is not None else _random_split(len(texts), val_fraction)
    if "train" not in splits or "val" not in splits:
        raise ValueError(f"dataset {path}: the train or the val split is empty")
    return Texts(texts=texts, splits=splits)


def _read_jsonl(path: Path, text_column: str) -> tuple[list[str], list[Split] | None]:
    texts: list[str] = []
    splits: list[Any] = []
    for number, record in json_lines(path):
        text = record.get(text_column)
        if not isinstance(text, str):
            raise ValueError(f"dataset {path}: line {number} has no string {text_column!r}: {record!r:.200}")
        split = record.get(SPLIT_COLUMN)
        if split not in (None, "train", "val", "test"):
            raise ValueError(
                f"dataset {path}: line {number} has split {split!r}; expected train, val or test"
            )
        texts.append(text)
        splits.append(split)
    if all(split is None for split in splits):
        return texts, None
    if any(split is None for split in splits):
        raise ValueError(f"dataset {path}: some lines have a {SPLIT_COLUMN!r} and others do not")
    return texts, cast(list[Split], splits)


def _random_split(count: int, val_fraction: float) -> list[Split]:
    """About ``val_fraction`` of the texts (at least one) to val, chosen with a fixed seed."""
    rows = list(range(count))
    random.Random(_SPLIT_SEED).shuffle(rows)
    val = set(rows[: min(max(round(count * val_fraction), 1), count - 1)])
    return ["val" if row in val else "train" for row in range(count)]


# --- the built-in model: a small GPT-2 pretrained on the Python docstrings ----------------------------


def builtin_model_dir(cache_dir: Path) -> Path:
    """Where the built-in model is cached; the name changes with :data:`RECIPE_VERSION`."""
    return cache_dir / f"{BUILTIN_MODEL}-v{RECIPE_VERSION}"


def ensure_builtin_model(cache_dir: Path) -> Path:
    """The built-in model's directory, pretrained and written there first when missing: made in a staging
    folder under a file lock and renamed into place whole, so that concurrent workers pretrain once and
    never see it half written."""
    target = builtin_model_dir(cache_dir)
    if target.is_dir():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    with exclusive(cache_dir / f"{target.name}.lock"):
        if not target.is_dir():
            staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=cache_dir))
            try:
                write_byte_tokenizer(staging)
                pretrain_builtin_model(staging)
                os.replace(staging, target)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
    return target


def byte_alphabet() -> list[str]:
    """GPT-2's byte-level alphabet: for each byte 0..255, the printable character that stands for it in
    the vocabulary (printable Latin-1 bytes stand for themselves; the others, in order, for U+0100 on)."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    shifted = iter(range(256, 512))
    return [chr(byte) if byte in printable else chr(next(shifted)) for byte in range(256)]


def write_byte_tokenizer(folder: Path) -> None:
    """A GPT-2 tokenizer with the 256 bytes and no merges (one token a byte) and ``<|endoftext|>`` as 256:
    the files GPT-2's own tokenizer reads, written from nothing but this code."""
    vocabulary = {symbol: index for index, symbol in enumerate(byte_alphabet())}
    vocabulary[END_OF_TEXT] = len(vocabulary)
    (folder / "vocab.json").write_text(json.dumps(vocabulary, ensure_ascii=False), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    config = {
        "tokenizer_class": "GPT2Tokenizer",
        "bos_token": END_OF_TEXT,
        "eos_token": END_OF_TEXT,
        "unk_token": END_OF_TEXT,
        "add_prefix_space": False,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")


def pretrain_builtin_model(folder: Path) -> None:
    """Pretrain the small GPT-2 on the docstrings corpus with the fixed recipe and save it in ``folder``
    (which already holds the tokenizer). Deterministic: seeded, on the CPU and on one thread; the process's
    random state and thread count are restored after."""
    _offline_and_quiet()
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    corpus = resources.files("hps.catalog") / "data" / PRETRAIN_CORPUS
    texts = [" ".join(block.split()) for block in corpus.read_text(encoding="utf-8").split("\n\n")]
    ids = tokenizer([text for text in texts if text], add_special_tokens=False)["input_ids"]
    end = int(tokenizer.eos_token_id)
    blocks = _examples([[*tokens, end] for tokens in ids], Layout(), _PRETRAIN_BLOCK)
    data = torch.tensor([block for block in blocks if len(block) == _PRETRAIN_BLOCK], dtype=torch.long)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        bos_token_id=end,
        eos_token_id=end,
        n_positions=_CONTEXT,
        n_embd=_WIDTH,
        n_layer=_LAYERS,
        n_head=_HEADS,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(_PRETRAIN_SEED)
            model = GPT2LMHeadModel(config).train()
            optimizer = torch.optim.AdamW(model.parameters(), lr=_PRETRAIN_LR)
            steps = _PRETRAIN_EPOCHS * math.ceil(len(data) / _PRETRAIN_BATCH)
            schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=_PRETRAIN_LR, total_steps=steps)
            for _ in range(_PRETRAIN_EPOCHS):
                order = torch.randperm(len(data))
                for start in range(0, len(data), _PRETRAIN_BATCH):
                    batch = data[order[start : start + _PRETRAIN_BATCH]]
                    loss = model(input_ids=batch, labels=batch).loss
                    optimizer.zero_grad(set_to_none=True)
                    torch.autograd.backward(loss)
                    optimizer.step()
                    schedule.step()
    finally:
        torch.set_num_threads(threads)
    model.eval().save_pretrained(str(folder), safe_serialization=True)
    log.info(
        "pretrained %s v%d on %d blocks of %s in %.1f s (last batch loss %.3f)",
        BUILTIN_MODEL,
        RECIPE_VERSION,
        len(data),
        PRETRAIN_CORPUS,
        time.perf_counter() - started,
        float(loss.detach()),
    )
