"""A small DeepSpeech-2-style network: two strided 2-D convolutions over the log-mel spectrogram (time and
frequency), bidirectional GRU layers over time, and a per-frame linear layer to the CTC classes (blank and
the characters of :mod:`hps.workers.tasks.transcripts`).

It is small on purpose (about 0.5 M parameters with the defaults), so that the built-in speech task trains
in seconds on a CPU; the same class, with larger options, loads an operator's own weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from hps.workers.tasks.audio import MEL_BANDS
from hps.workers.tasks.transcripts import CLASSES

_CLIP = 20.0  # DeepSpeech 2's clipped ReLU, min(max(x, 0), 20)


@dataclass(frozen=True)
class Shape:
    """The network's sizes: ``channels`` of both convolutions, ``hidden`` units per GRU direction and
    ``layers`` of GRU."""

    channels: int = 32
    hidden: int = 128
    layers: int = 2


class DeepSpeech(nn.Module):
    """Takes normalised log-mel features [batch, frames, bands] and their valid ``lengths`` [batch];
    returns CTC log-probabilities [frames', batch, classes] and their lengths, where frames' is about half
    the frames (the first convolution has stride 2 in time)."""

    def __init__(self, shape: Shape = Shape(), bands: int = MEL_BANDS) -> None:
        super().__init__()
        c = shape.channels
        self.conv = nn.Sequential(
            nn.Conv2d(1, c, kernel_size=5, stride=2, padding=2, bias=False),  # time / 2, bands / 2
            nn.BatchNorm2d(c),
            nn.Hardtanh(0.0, _CLIP),
            nn.Conv2d(c, c, kernel_size=5, stride=(1, 2), padding=2, bias=False),  # bands / 2 again
            nn.BatchNorm2d(c),
            nn.Hardtanh(0.0, _CLIP),
        )
        reduced_bands = _halved(_halved(bands))
        self.rnn = nn.GRU(
            c * reduced_bands, shape.hidden, num_layers=shape.layers, batch_first=True, bidirectional=True
        )
        self.head = nn.Linear(2 * shape.hidden, CLASSES)

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.conv(features.unsqueeze(1))  # [batch, channels, frames', bands']
        x = x.permute(0, 2, 1, 3).flatten(2)  # [batch, frames', channels * bands']
        out_lengths = _halved_lengths(lengths)
        # The recurrent part and the CTC outputs stay in float32 under bf16 autocast: cuDNN's GRU has no
        # bf16 kernels, and CTC's log-probabilities want the precision.
        with torch.autocast(x.device.type, enabled=False):
            packed = pack_padded_sequence(
                x.float(), out_lengths.cpu(), batch_first=True, enforce_sorted=False
            )
            hidden, _ = pad_packed_sequence(self.rnn(packed)[0], batch_first=True, total_length=x.shape[1])
            logits = self.head(hidden)
        return logits.log_softmax(dim=-1).transpose(0, 1), out_lengths


def _halved(size: int) -> int:
    """What a kernel-5, padding-2, stride-2 convolution leaves of ``size``."""
    return (size - 1) // 2 + 1


def _halved_lengths(lengths: torch.Tensor) -> torch.Tensor:
    return torch.div(lengths - 1, 2, rounding_mode="floor") + 1
