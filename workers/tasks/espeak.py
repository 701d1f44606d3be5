"""The speech task's built-in audio: real synthesized speech, made by Debian's ``espeak-ng`` on the worker's
machine the first time it is needed and cached as WAV files in the layout any user's audio folder has
(``clips/*.wav`` and ``transcripts.csv``), so that the built-in data goes through the same reading code.

Two corpora, sharing neither words nor voices: ``pretrain`` (32 words, 8 voices) is what hps pretrains
its DeepSpeech-style model on, and ``target`` (16 other words, 4 other voices) is what studies fine-tune it
on. Every clip is a two-word phrase; the phrases are fixed lists (no random draws), and espeak-ng's output
for a given text, voice, speed and pitch is the same on every run, so the corpora are the same on every
machine with the same espeak-ng. The folder's name carries :data:`CORPUS_VERSION`: a change to the words,
voices or phrases must bump it.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hps.workers.tasks.audio import SAMPLE_RATE, read_wav, resample, write_wav
from hps.workers.tasks.cache import exclusive

CORPUS_VERSION = 1
CORPUS_FOLDER = f"espeak-speech-v{CORPUS_VERSION}"
INSTALL_HINT = (
    "the speech-recognition task's built-in data is made with espeak-ng, which is not installed on this "
    "worker: install it with `apt-get install espeak-ng` (Debian/Ubuntu; `make setup` does it when run as "
    "root), or register your own audio folder"
)

PRETRAIN_WORDS = (
    "apple", "river", "green", "stone", "house", "light", "water", "music",
    "paper", "table", "chair", "bread", "cloud", "dream", "field", "glass",
    "heart", "horse", "money", "night", "ocean", "plant", "queen", "radio",
    "sugar", "tiger", "voice", "world", "young", "zebra", "black", "quick",
)  # fmt: skip
TARGET_WORDS = (
    "brown", "fox", "jumps", "over", "lazy", "dog", "seven", "eight",
    "north", "south", "happy", "small", "bring", "kite", "snow", "wind",
)  # fmt: skip


@dataclass(frozen=True)
class Voice:
    """One way of speaking: an espeak-ng voice with a variant (``en-us+f2``), words a minute and pitch
    (0-99)."""

    name: str
    speed: int
    pitch: int


PRETRAIN_VOICES = (
    Voice("en-us+m1", 160, 45),
    Voice("en-us+f2", 175, 60),
    Voice("en+m3", 150, 40),
    Voice("en-gb-x-rp+f4", 165, 70),
    Voice("en-029+m2", 180, 50),
    Voice("en-gb-scotland+m4", 155, 35),
    Voice("en-us+f1", 145, 55),
    Voice("en+m5", 170, 30),
)
TARGET_VOICES = (
    Voice("en-gb-x-gbclan+f3", 160, 65),
    Voice("en+m6", 150, 45),
    Voice("en-us+f5", 170, 55),
    Voice("en-gb-x-gbcwmd+m7", 165, 40),
)
PRETRAIN_PHRASES = 48
TARGET_PHRASES = 32
TARGET_TRAIN_PHRASES = 24  # the target's first 24 phrases are its train split, the other 8 its val split


def phrases(words: tuple[str, ...], count: int) -> list[str]:
    """``count`` two-word phrases in which every word comes first and second equally often: phrase ``i``
    pairs word ``i`` with word ``5 i + 3`` (modulo the list), a fixed rule, never a word with itself."""
    size = len(words)
    made = []
    for i in range(count):
        second = (5 * i + 3) % size
        if second == i % size:
            second = (second + 1) % size
        made.append(f"{words[i % size]} {words[second]}")
    return made


def ensure_corpus(cache_dir: Path) -> Path:
    """``cache_dir/espeak-speech-v1`` with ``pretrain/`` and ``target/`` audio folders, synthesized the
    first time (about 25 s of CPU). Made under a file lock and renamed into place whole, so that
    concurrent workers neither synthesize it twice nor see it half written. ``RuntimeError`` saying how
    to install espeak-ng when it is missing."""
    target = cache_dir / CORPUS_FOLDER
    if target.is_dir():
        return target
    if shutil.which("espeak-ng") is None:
        raise RuntimeError(INSTALL_HINT)
    cache_dir.mkdir(parents=True, exist_ok=True)
    with exclusive(cache_dir / f"{CORPUS_FOLDER}.lock"):
        if not target.is_dir():
            staging = Path(tempfile.mkdtemp(prefix=f".{CORPUS_FOLDER}-", dir=cache_dir))
            try:
                _write_corpus(
                    staging / "pretrain", phrases(PRETRAIN_WORDS, PRETRAIN_PHRASES), PRETRAIN_VOICES
                )
                target_phrases = phrases(TARGET_WORDS, TARGET_PHRASES)
                splits = ["train"] * TARGET_TRAIN_PHRASES + ["val"] * (TARGET_PHRASES - TARGET_TRAIN_PHRASES)
                _write_corpus(staging / "target", target_phrases, TARGET_VOICES, splits)
                os.replace(staging, target)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
    return target


def _write_corpus(
    folder: Path, texts: list[str], voices: tuple[Voice, ...], splits: list[str] | None = None
) -> None:
    """Every phrase in every voice as ``folder/clips/NNNN.wav`` (16 kHz mono 16-bit), listed in
    ``folder/transcripts.csv`` (``path,text,split``; the split is the phrase's, ``train`` without
    ``splits``)."""
    (folder / "clips").mkdir(parents=True)
    rows = []
    for p, text in enumerate(texts):
        for v, voice in enumerate(voices):
            name = f"clips/{p:03d}-{v}.wav"
            _synthesize(text, voice, folder / name)
            rows.append((name, text, splits[p] if splits else "train"))
    with (folder / "transcripts.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(("path", "text", "split"))
        writer.writerows(rows)


def _synthesize(text: str, voice: Voice, path: Path) -> None:
    """espeak-ng speaking ``text`` into ``path``, resampled from its 22.05 kHz to 16 kHz."""
    raw = path.with_suffix(".raw.wav")
    command = ["espeak-ng", "-v", voice.name, "-s", str(voice.speed), "-p", str(voice.pitch), "-w", str(raw)]
    done = subprocess.run([*command, text], capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0 or not raw.is_file():
        raise RuntimeError(f"espeak-ng failed on {text!r} with voice {voice.name}: {done.stderr.strip()}")
    samples, rate = read_wav(raw)
    raw.unlink()
    write_wav(path, resample(samples, rate, SAMPLE_RATE), SAMPLE_RATE)
