"""Text on the speech task's side: the characters its network spells with, turning transcripts into CTC
targets and CTC outputs back into text (greedy decoding), and scoring the result as character and word
error rates from edit distances computed here."""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch

BLANK = 0  # CTC's blank is class 0; the characters follow it
ALPHABET = " 'abcdefghijklmnopqrstuvwxyz"
CLASSES = len(ALPHABET) + 1
_INDEX = {character: index + 1 for index, character in enumerate(ALPHABET)}
_SPACES = re.compile(r"\s+")


def normalise(text: str) -> str:
    """Lower case with runs of white space made one space and none at the ends; ValueError naming the
    first character outside :data:`ALPHABET` (letters, space and apostrophe)."""
    cleaned = _SPACES.sub(" ", text.lower()).strip()
    for character in cleaned:
        if character not in _INDEX:
            raise ValueError(
                f"transcript {text!r} has {character!r}: transcripts are letters a-z, spaces and apostrophes"
            )
    if not cleaned:
        raise ValueError("a transcript is empty")
    return cleaned


def encode(text: str) -> torch.Tensor:
    """The class indices of a normalised transcript (no blanks), as int64."""
    return torch.tensor([_INDEX[character] for character in text], dtype=torch.long)


def greedy_decode(log_probs: torch.Tensor, lengths: torch.Tensor) -> list[str]:
    """Best-path CTC decoding of ``log_probs`` [frames, batch, classes] with valid ``lengths`` [batch]:
    the most likely class per frame, repeats merged, then blanks dropped."""
    best = log_probs.argmax(dim=-1).T.cpu()  # [batch, frames]
    texts = []
    for row, length in zip(best, lengths.tolist(), strict=True):
        path = row[:length].tolist()
        kept = [c for i, c in enumerate(path) if c != BLANK and (i == 0 or c != path[i - 1])]
        texts.append("".join(ALPHABET[c - 1] for c in kept))
    return texts


def edit_distance(reference: Sequence[str], hypothesis: Sequence[str]) -> int:
    """The Levenshtein distance: the fewest insertions, deletions and substitutions that turn
    ``reference`` into ``hypothesis`` (sequences of characters or of words)."""
    previous = list(range(len(hypothesis) + 1))
    for i, wanted in enumerate(reference, start=1):
        current = [i]
        for j, given in enumerate(hypothesis, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (wanted != given)))
        previous = current
    return previous[-1]


def error_rates(references: Sequence[str], hypotheses: Sequence[str]) -> tuple[float, float]:
    """Character and word error rates of a whole split: the summed edit distances over the summed reference
    lengths (in characters, spaces included, and in words), as speech recognition reports them."""
    char_errors = sum(edit_distance(r, h) for r, h in zip(references, hypotheses, strict=True))
    word_errors = sum(
        edit_distance(r.split(), h.split()) for r, h in zip(references, hypotheses, strict=True)
    )
    chars = sum(len(r) for r in references)
    words = sum(len(r.split()) for r in references)
    return char_errors / chars, word_errors / words
