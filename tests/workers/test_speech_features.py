"""The speech task's arithmetic against values worked out by hand: WAV reading and writing, band-limited
resampling, the mel scale and filterbank, the log-mel spectrogram of a pure tone, CTC greedy decoding, and
character and word error rates."""

from __future__ import annotations

import math
import wave
from pathlib import Path

import pytest
import torch

from hps.workers.tasks.audio import (
    HOP,
    LOG_FLOOR,
    MEL_BANDS,
    SAMPLE_RATE,
    WINDOW,
    LogMel,
    frame_count,
    hz_to_mel,
    mel_filterbank,
    mel_to_hz,
    read_wav,
    resample,
    write_wav,
)
from hps.workers.tasks.transcripts import (
    ALPHABET,
    BLANK,
    CLASSES,
    edit_distance,
    encode,
    error_rates,
    greedy_decode,
    normalise,
)


def _sine(frequency: float, seconds: float, rate: int, amplitude: float = 1.0) -> torch.Tensor:
    t = torch.arange(round(seconds * rate), dtype=torch.float64) / rate
    return (amplitude * torch.sin(2 * math.pi * frequency * t)).to(torch.float32)


def test_the_htk_mel_scale_has_1000_hz_at_1000_mel_and_inverts() -> None:
    assert float(hz_to_mel(torch.tensor(1000.0))) == pytest.approx(999.99, abs=0.01)  # 2595 log10(17/7)
    assert float(hz_to_mel(torch.tensor(0.0))) == 0.0
    assert float(hz_to_mel(torch.tensor(8000.0))) == pytest.approx(2840.02, abs=0.01)  # 2595 log10(1 + 80/7)
    hz = torch.tensor([0.0, 300.0, 4321.0, 8000.0])
    assert torch.allclose(mel_to_hz(hz_to_mel(hz)), hz, atol=1e-3)


def test_the_filterbank_is_triangles_between_evenly_spaced_mel_points() -> None:
    filters = mel_filterbank()
    assert filters.shape == (MEL_BANDS, WINDOW // 2 + 1) == (40, 201)
    assert float(filters.min()) == 0.0 and float(filters.max()) <= 1.0
    # Band b peaks at mel point b + 1; points are 2840.02 / 41 mel apart. Bins are 40 Hz apart.
    spacing = 2840.0239 / 41
    for band in (0, 10, 39):
        centre = float(mel_to_hz(torch.tensor((band + 1) * spacing)))
        peak = int(filters[band].argmax())
        assert abs(peak * 40.0 - centre) <= 20.0, (band, peak, centre)
    # The first bin (0 Hz) and the last (8000 Hz) are the lowest and highest points, where every filter is
    # zero (up to the round-off of converting 8000 Hz to mel and back).
    assert float(filters[:, 0].sum()) == 0.0 and float(filters[:, -1].max()) < 1e-9


def test_frames_every_10_ms_of_a_25_ms_window() -> None:
    assert (WINDOW, HOP, SAMPLE_RATE) == (400, 160, 16_000)
    assert frame_count(16_000) == 98  # 1 + (16000 - 400) // 160
    assert frame_count(400) == 1 and frame_count(100) == 1
    log_mel = LogMel()
    assert log_mel(torch.zeros(16_000)).shape == (98, 40)
    assert log_mel(torch.zeros(100)).shape == (1, 40)  # shorter than a window: padded to one frame
    assert torch.allclose(log_mel(torch.zeros(1000)), torch.full((4, 40), math.log(LOG_FLOOR)))


def test_a_tone_on_a_bin_gives_the_hann_windows_known_power() -> None:
    # 1000 Hz is bin 25 exactly (16000 / 400 = 40 Hz a bin). A unit sine under a periodic Hann window of
    # 400 samples has |X[25]| = (1/2)(400/2) = 100 and, from the window's side lobes, |X[24]| = |X[26]| = 50;
    # every other bin is 0. So each frame's mel energies are filters @ that power spectrum.
    power = torch.zeros(WINDOW // 2 + 1)
    power[24], power[25], power[26] = 2500.0, 10000.0, 2500.0
    expected = torch.log(mel_filterbank() @ power + LOG_FLOOR)
    features = LogMel()(_sine(1000.0, 0.5, SAMPLE_RATE))
    assert features.shape == (frame_count(8000), 40)
    for frame in (0, 10, len(features) - 1):
        loud = expected > 0  # the bands the tone reaches; elsewhere round-off sits near the floor
        assert torch.allclose(features[frame][loud], expected[loud], atol=1e-3)
        assert torch.all(features[frame][~loud] < 0)
    assert int(features[0].argmax()) == int(expected.argmax())


def test_resampling_a_tone_gives_the_same_tone_at_the_new_rate() -> None:
    # 440 Hz for half a second is a whole number of periods, so the Fourier resampling is exact.
    resampled = resample(_sine(440.0, 0.5, 22_050, amplitude=0.5), 22_050, SAMPLE_RATE)
    assert resampled.shape == (8000,)
    assert torch.allclose(resampled, _sine(440.0, 0.5, SAMPLE_RATE, amplitude=0.5), atol=1e-4)
    upsampled = resample(_sine(300.0, 0.5, 8000), 8000, SAMPLE_RATE)
    assert torch.allclose(upsampled, _sine(300.0, 0.5, SAMPLE_RATE), atol=1e-4)
    same = _sine(100.0, 0.1, SAMPLE_RATE)
    assert resample(same, SAMPLE_RATE) is same


def test_wav_files_round_trip_and_stereo_is_averaged(tmp_path: Path) -> None:
    tone = _sine(440.0, 0.25, 8000, amplitude=0.5)
    write_wav(tmp_path / "mono.wav", tone, 8000)
    samples, rate = read_wav(tmp_path / "mono.wav")
    assert rate == 8000 and torch.allclose(samples, tone, atol=1 / 32768)

    with wave.open(str(tmp_path / "stereo.wav"), "wb") as writer:
        writer.setnchannels(2)
        writer.setsampwidth(2)
        writer.setframerate(16_000)
        writer.writeframes(torch.tensor([1000, 3000, -2000, 0], dtype=torch.int16).numpy().tobytes())
    samples, rate = read_wav(tmp_path / "stereo.wav")
    assert rate == 16_000 and samples.tolist() == [2000 / 32768, -1000 / 32768]


def test_unreadable_or_8_bit_wav_files_are_refused_by_name(tmp_path: Path) -> None:
    with wave.open(str(tmp_path / "eight.wav"), "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(1)
        writer.setframerate(8000)
        writer.writeframes(bytes(100))
    with pytest.raises(ValueError, match=r"eight\.wav has 8-bit samples; hps reads 16-bit PCM"):
        read_wav(tmp_path / "eight.wav")
    (tmp_path / "text.wav").write_text("not audio")
    with pytest.raises(ValueError, match=r"text\.wav is not a readable WAV file"):
        read_wav(tmp_path / "text.wav")


def test_edit_distances_of_known_pairs() -> None:
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance("flaw", "lawn") == 2
    assert edit_distance("", "abc") == edit_distance("abc", "") == 3
    assert edit_distance("same", "same") == 0
    assert edit_distance(["the", "quick", "fox"], ["the", "fox", "jumps"]) == 2


def test_error_rates_pool_edits_over_the_split() -> None:
    # "brown fox" -> "brown fax": 1 character, 1 word; "lazy dog" -> "lazy": 4 characters, 1 word.
    cer, wer = error_rates(["brown fox", "lazy dog"], ["brown fax", "lazy"])
    assert cer == pytest.approx(5 / 17) and wer == pytest.approx(2 / 4)
    assert error_rates(["a b"], ["a b"]) == (0.0, 0.0)
    assert error_rates(["ab"], ["xyzw"]) == (2.0, 1.0)  # rates can pass 1: insertions count too


def test_greedy_decoding_merges_repeats_then_drops_blanks() -> None:
    a, b = encode("a").item(), encode("b").item()
    paths = [[a, a, BLANK, a, b, b, BLANK], [BLANK, BLANK, b, BLANK, b, a, a]]
    log_probs = torch.full((7, 2, CLASSES), -10.0)
    for batch, path in enumerate(paths):
        for frame, label in enumerate(path):
            log_probs[frame, batch, label] = 0.0
    assert greedy_decode(log_probs, torch.tensor([7, 7])) == ["aab", "bba"]
    assert greedy_decode(log_probs, torch.tensor([3, 4])) == ["a", "b"]  # frames past the length ignored


def test_transcripts_are_normalised_and_encoded_after_the_blank() -> None:
    assert ALPHABET[0] == " " and CLASSES == 29 and BLANK == 0
    assert normalise("  Don't\tSTOP  now ") == "don't stop now"
    assert encode("a b").tolist() == [3, 1, 4]
    with pytest.raises(ValueError, match=r"has '!': transcripts are letters a-z"):
        normalise("stop!")
    with pytest.raises(ValueError, match="empty"):
        normalise("   ")
