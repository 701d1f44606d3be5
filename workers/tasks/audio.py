"""Audio in, features out: reading WAV files with the standard library, resampling, and the log-mel
spectrogram the speech task's network listens to, computed in plain torch (``torch.stft`` and a mel
filterbank built here), so that no audio library is needed and the same code runs on every device.

The numbers follow the usual speech front end: 16 kHz audio, 25 ms Hann windows every 10 ms, 40 mel bands
between 0 Hz and the Nyquist frequency on the HTK mel scale, natural log of the power with a small floor.
"""

from __future__ import annotations

import wave
from pathlib import Path

import torch

SAMPLE_RATE = 16_000
WINDOW = 400  # 25 ms at 16 kHz
HOP = 160  # 10 ms
MEL_BANDS = 40
LOG_FLOOR = 1e-6  # the log of silence is this, not -inf
_PCM16_FULL_SCALE = 32768.0


def read_wav(path: Path) -> tuple[torch.Tensor, int]:
    """The samples of a 16-bit PCM WAV file as float32 in [-1, 1] (channels averaged to mono) and its
    sample rate. Any other sample width is a ValueError naming the file."""
    try:
        with wave.open(str(path), "rb") as reader:
            width, channels, rate = reader.getsampwidth(), reader.getnchannels(), reader.getframerate()
            frames = reader.readframes(reader.getnframes())
    except (wave.Error, EOFError) as error:
        raise ValueError(f"{path} is not a readable WAV file: {error}") from None
    if width != 2:
        raise ValueError(f"{path} has {8 * width}-bit samples; hps reads 16-bit PCM WAV files")
    if not frames:
        raise ValueError(f"{path} holds no audio")
    # WAV stores little-endian samples; torch's int16 view is native-endian, little on every machine torch
    # supports.
    samples = torch.frombuffer(bytearray(frames), dtype=torch.int16).to(torch.float32) / _PCM16_FULL_SCALE
    return samples.reshape(-1, channels).mean(dim=1), rate


def write_wav(path: Path, samples: torch.Tensor, rate: int) -> None:
    """Write mono float samples in [-1, 1] as a 16-bit PCM WAV file (clipped to the range)."""
    pcm = (samples.clamp(-1.0, 1.0) * (_PCM16_FULL_SCALE - 1)).round().to(torch.int16)
    with wave.open(str(path), "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(pcm.numpy().tobytes())


def resample(samples: torch.Tensor, rate: int, target: int = SAMPLE_RATE) -> torch.Tensor:
    """``samples`` at ``rate`` Hz resampled to ``target`` Hz by band-limited (Fourier) interpolation: the
    spectrum is cut, or padded with zeros, at the lower Nyquist frequency. Exact for a signal without energy
    above it; a whole clip is one transform, which suits clips of seconds."""
    if rate == target:
        return samples
    length = max(1, round(len(samples) * target / rate))
    spectrum = torch.fft.rfft(samples.double())
    keep = min(len(spectrum), length // 2 + 1)
    resized = torch.zeros(length // 2 + 1, dtype=spectrum.dtype)
    resized[:keep] = spectrum[:keep]
    # irfft's normalisation divides by the output length; rescale so that amplitudes are kept.
    resampled: torch.Tensor = torch.fft.irfft(resized, n=length) * (length / len(samples))
    return resampled.to(torch.float32)


def hz_to_mel(hz: torch.Tensor) -> torch.Tensor:
    """The HTK mel scale: 2595 log10(1 + f / 700), so 1000 Hz is about 1000 mel."""
    return 2595.0 * torch.log10(1.0 + hz / 700.0)


def mel_to_hz(mel: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`hz_to_mel`."""
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


def mel_filterbank(bands: int = MEL_BANDS, window: int = WINDOW, rate: int = SAMPLE_RATE) -> torch.Tensor:
    """Triangular filters of shape [bands, window // 2 + 1]: band ``b`` rises from 0 at mel point ``b`` to 1
    at point ``b + 1`` and falls to 0 at point ``b + 2``, the ``bands + 2`` points spaced evenly in mel
    from 0 Hz to the Nyquist frequency. Each filter's peak is 1 (no area normalisation)."""
    bins = torch.linspace(0.0, rate / 2, window // 2 + 1, dtype=torch.float64)
    top = float(hz_to_mel(torch.tensor(rate / 2.0, dtype=torch.float64)))
    points = mel_to_hz(torch.linspace(0.0, top, bands + 2, dtype=torch.float64))
    lower, centre, upper = points[:-2, None], points[1:-1, None], points[2:, None]
    rising = (bins - lower) / (centre - lower)
    falling = (upper - bins) / (upper - centre)
    return torch.clamp(torch.minimum(rising, falling), min=0.0).to(torch.float32)


def frame_count(samples: int) -> int:
    """How many feature frames :func:`log_mel` makes of ``samples`` samples (at least one)."""
    return 1 + max(0, samples - WINDOW) // HOP


class LogMel:
    """The log-mel spectrogram of 16 kHz audio, [frames, bands]: frames every :data:`HOP` samples of a
    :data:`WINDOW`-sample Hann window (no centring: the first frame starts at sample 0; a clip shorter
    than a window is zero-padded to one), power spectrum, :func:`mel_filterbank`, ``log(x + 1e-6)``."""

    def __init__(self, bands: int = MEL_BANDS) -> None:
        self.bands = bands
        self._filters = mel_filterbank(bands)
        self._window = torch.hann_window(WINDOW, periodic=True)

    def __call__(self, samples: torch.Tensor) -> torch.Tensor:
        if len(samples) < WINDOW:
            samples = torch.nn.functional.pad(samples, (0, WINDOW - len(samples)))
        spectrum = torch.stft(
            samples, n_fft=WINDOW, hop_length=HOP, window=self._window, center=False, return_complex=True
        )
        power = spectrum.abs().square()  # [bins, frames]
        return torch.log(self._filters @ power + LOG_FLOOR).T.contiguous()
