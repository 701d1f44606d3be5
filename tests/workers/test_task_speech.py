"""The speech-recognition task: the built-in espeak-ng corpus and the DeepSpeech-style network hps pretrains
on it (made once per cache), fine-tuning that lowers the error rates, an operator's own audio folder and
weights through the registry, clear refusals, and a real 2-trial study through a real `hps worker`."""

from __future__ import annotations

import shutil
import wave
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from harness.api import assert_error, unique
from harness.databases import sqlite_url
from harness.servers import RunningServer, serving
from harness.workers import start_worker
from hps.catalog.registry import load_registry
from hps.catalog.tasks import DatasetEntry, ModelEntry
from hps.workers.tasks.audio import read_wav, resample, write_wav
from hps.workers.tasks.espeak import CORPUS_FOLDER, PRETRAIN_WORDS, TARGET_WORDS, ensure_corpus
from hps.workers.tasks.files import UnsafePath
from hps.workers.tasks.speech import SpeechTask, make_task, pretrain, read_audio_folder, weights_path

CPU = torch.device("cpu")
TASK = "speech-recognition"


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache holding the built-in corpus and pretrained network, made once for this module (about a
    minute and a half of CPU)."""
    cache = tmp_path_factory.mktemp("speech-cache")
    make_task(None, None, cache)
    return cache


@pytest.fixture(scope="module")
def task(shared_cache: Path) -> SpeechTask:
    return make_task(None, None, shared_cache)


def _fine_tune(task: SpeechTask, epochs: int, lr: float) -> tuple[float, float]:
    """val_cer before and after ``epochs`` of Adam from the pretrained network."""
    model = task.fresh_model(CPU, seed=0)
    before = task.evaluate(model, "val", 32, CPU)["cer"]
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        for batch in task.train_batches(16, generator, CPU):
            optimizer.zero_grad()
            torch.autograd.backward(task.loss(model, batch))
            optimizer.step()
    return before, task.evaluate(model, "val", 32, CPU)["cer"]


def test_the_builtins_are_made_once_and_share_neither_words_nor_voices(
    shared_cache: Path, task: SpeechTask
) -> None:
    made = {
        path: path.stat().st_mtime_ns for path in (shared_cache / CORPUS_FOLDER, weights_path(shared_cache))
    }
    again = make_task(None, None, shared_cache)
    assert {path: path.stat().st_mtime_ns for path in made} == made  # reused, not made again
    assert (again.split_size("train"), again.split_size("val"), again.has_test_split()) == (96, 32, False)
    corpus = shared_cache / CORPUS_FOLDER
    target_rows = (corpus / "target" / "transcripts.csv").read_text().splitlines()
    assert target_rows[0] == "path,text,split" and len(target_rows) == 1 + 128
    heard = {word for row in target_rows[1:] for word in row.split(",")[1].split()}
    assert heard == set(TARGET_WORDS) and not heard & set(PRETRAIN_WORDS)
    samples, rate = read_wav(corpus / "target" / "clips" / "000-0.wav")
    assert rate == 16_000 and 0.3 < len(samples) / rate < 3.0 and float(samples.abs().max()) > 0.05


def test_the_pretraining_recipe_is_deterministic_and_leaves_the_process_as_it_was(shared_cache: Path) -> None:
    # The recipe on a sixth of the corpus, twice: the same weights, bit for bit.
    clips = read_audio_folder(shared_cache / CORPUS_FOLDER / "pretrain", ("train",))["train"][::6]
    torch.manual_seed(123)
    threads = torch.get_num_threads()
    first, second = pretrain(clips), pretrain(clips)
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)
    assert torch.get_num_threads() == threads
    after = torch.rand(3)
    torch.manual_seed(123)
    assert torch.equal(after, torch.rand(3))  # the global random state is as the seed left it


def test_fine_tuning_the_pretrained_network_lowers_the_character_error_rate(task: SpeechTask) -> None:
    model = task.fresh_model(CPU, seed=0)
    assert model is not task.fresh_model(CPU, seed=0) and model.training
    before, after = _fine_tune(task, epochs=3, lr=1e-3)
    assert after < before - 0.1, (before, after)
    metrics = task.evaluate(model, "val", 8, CPU)
    assert set(metrics) == {"cer", "wer", "loss"} and 0 <= metrics["wer"] <= 1.0 and model.training


def _write_user_folder(root: Path, corpus: Path, rows: int, with_split: bool) -> None:
    """``root/clips/*.wav`` at 8 kHz in stereo (both channels the same) from the corpus, with upper-case
    transcripts in ``root/transcripts.csv``."""
    (root / "clips").mkdir(parents=True)
    lines = ["path,text,split" if with_split else "path,text"]
    source = (corpus / "target" / "transcripts.csv").read_text().splitlines()[1 : rows + 1]
    for number, row in enumerate(source):
        path, text, _ = row.split(",")
        samples, rate = read_wav(corpus / "target" / path)
        eight_khz = resample(samples, rate, 8000)
        write_wav(root / "mono.wav", eight_khz, 8000)
        with wave.open(str(root / "mono.wav"), "rb") as reader:
            frames = reader.readframes(reader.getnframes())
        stereo = b"".join(frames[i : i + 2] * 2 for i in range(0, len(frames), 2))
        with wave.open(str(root / "clips" / f"{number}.wav"), "wb") as writer:
            writer.setnchannels(2)
            writer.setsampwidth(2)
            writer.setframerate(8000)
            writer.writeframes(stereo)
        split = ",test" if number % 4 == 3 else ",train"
        lines.append(f"clips/{number}.wav,{text.upper()}" + (split if with_split else ""))
    (root / "mono.wav").unlink()
    (root / "transcripts.csv").write_text("\n".join(lines) + "\n")


def test_an_operators_audio_folder_and_weights_load_through_the_registry(
    shared_cache: Path, task: SpeechTask, tmp_path: Path
) -> None:
    _write_user_folder(tmp_path / "my-audio", shared_cache / CORPUS_FOLDER, rows=20, with_split=False)
    state = task.fresh_model(CPU, 0).state_dict()
    save_file({key: value.contiguous() for key, value in state.items()}, str(tmp_path / "ds.safetensors"))
    (tmp_path / "registry.yaml").write_text(
        "models:\n  my-ds: {task: speech-recognition, path: ds.safetensors}\n"
        "datasets:\n  my-audio: {task: speech-recognition, path: my-audio}\n"
    )
    resolved = load_registry(tmp_path / "registry.yaml").resolve(TASK, model="my-ds", dataset="my-audio")
    mine = make_task(resolved.model, resolved.dataset, tmp_path / "empty-cache")
    assert not (tmp_path / "empty-cache").exists()  # no built-in was needed, so nothing was made
    # Without a split column every fifth row is validation.
    assert (mine.split_size("train"), mine.split_size("val"), mine.has_test_split()) == (16, 4, False)
    loaded = mine.fresh_model(CPU, 0).state_dict()
    assert all(torch.equal(loaded[key], value) for key, value in state.items())
    metrics = mine.evaluate(mine.fresh_model(CPU, 0), "val", 4, CPU)
    assert set(metrics) == {"cer", "wer", "loss"} and metrics["cer"] < 1.0  # downmixed, resampled speech

    _write_user_folder(tmp_path / "split-audio", shared_cache / CORPUS_FOLDER, rows=8, with_split=True)
    entry = DatasetEntry(name="split-audio", task=TASK, path=tmp_path / "split-audio")
    with pytest.raises(ValueError, match="the val split is empty"):  # the split column says train, test
        make_task(resolved.model, entry, tmp_path / "empty-cache")
    (tmp_path / "split-audio" / "transcripts.csv").write_text(
        (tmp_path / "split-audio" / "transcripts.csv").read_text().replace(",train\n", ",val\n", 2)
    )
    split_task = make_task(resolved.model, entry, tmp_path / "empty-cache")
    assert (split_task.split_size("val"), split_task.split_size("test"), split_task.has_test_split()) == (
        2,
        2,
        True,
    )


def test_bad_folders_and_weights_are_refused_by_name(
    shared_cache: Path, task: SpeechTask, tmp_path: Path
) -> None:
    model = ModelEntry(name="mine", task=TASK, path=tmp_path / "ds.safetensors", options={"hidden": 64})
    save_file({k: v.contiguous() for k, v in task.fresh_model(CPU, 0).state_dict().items()}, str(model.path))
    folder = tmp_path / "audio"
    _write_user_folder(folder, shared_cache / CORPUS_FOLDER, rows=5, with_split=False)
    dataset = DatasetEntry(name="audio", task=TASK, path=folder)
    with pytest.raises(ValueError, match=r"ds\.safetensors does not fit .*hidden=64"):
        make_task(model, dataset, tmp_path)
    listing = folder / "transcripts.csv"
    good = listing.read_text()
    shutil.copy(folder / "clips" / "0.wav", tmp_path / "elsewhere.wav")
    (folder / "clips" / "link.wav").symlink_to(tmp_path / "elsewhere.wav")  # a symlink leading out
    for bad, message in (
        (good.replace("clips/2.wav", "../outside.wav"), "not inside"),
        (good.replace("clips/2.wav", "clips/link.wav"), "not inside"),
        (good.replace("clips/2.wav", "clips/missing.wav"), r"row 3: .*missing\.wav is not a file"),
        (good.replace("clips/2.wav,", "clips/2.wav,no digits 2"), r"row 3: transcript .* has '2'"),
        (good.replace("path,text", "file,text"), "needs the columns path and text"),
    ):
        listing.write_text(bad)
        with pytest.raises(ValueError, match=message) as raised:
            make_task(None, dataset, shared_cache)
        assert message != "not inside" or isinstance(raised.value, UnsafePath)
    listing.unlink()
    with pytest.raises(ValueError, match=r"has no transcripts\.csv"):
        make_task(None, dataset, shared_cache)


def test_without_espeak_ng_the_builtins_say_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "no-programs-here"))
    with pytest.raises(RuntimeError, match=r"espeak-ng.*apt-get install espeak-ng"):
        ensure_corpus(tmp_path / "cache")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    with serving(sqlite_url(tmp_path), tmp_path) as running:
        yield running


def test_a_two_trial_study_runs_through_a_real_worker(server: RunningServer, shared_cache: Path) -> None:
    with server.client() as client:
        listed = {task["name"]: task for task in client.get("/v1/tasks").json()["items"]}
    speech = listed[TASK]
    assert speech["metrics"] == {"val_cer": "minimize", "val_wer": "minimize", "val_loss": "minimize"}
    assert speech["default_metric"] == "val_cer" and "adam" in speech["optimizers"]
    assert speech["defaults"] == {
        "model": "espeak-deepspeech",
        "dataset": "espeak-phrases",
        "epochs": 6,
        "batch_size": 16,
        "max_steps_per_epoch": None,
    }

    newton = {"params": {"optimizer": {"type": "categorical", "choices": ["adam", "newton"]}}}
    with server.client() as client:
        refused = client.post(
            "/v1/studies", json={"name": unique(), "task": {"name": TASK}, "search_space": newton}
        )
    error = assert_error(refused, 422, "invalid", "search_space.params.optimizer")
    assert "676,029" in error["detail"] and "max_newton_params" in error["detail"]  # too large for a Hessian

    # The worker's cache starts with what this module made already, so the trials are all it runs.
    cache = server.data_dir / "cache"
    shutil.copytree(shared_cache, cache, ignore=shutil.ignore_patterns("*.lock"))
    body = {
        "name": unique("speech"),
        "task": {"name": TASK, "epochs": 2},
        "search_space": {"preset": "adam"},
        "sampler": {"name": "random", "seed": 0},
        "pruner": {"name": "none"},
        "budget": {"n_trials": 2},
    }
    with server.client() as client:
        made = client.post("/v1/studies", json=body)
        assert made.status_code == 201, made.text
        study = made.json()
    assert (study["metric"], study["direction"]) == ("val_cer", "minimize")
    worker = start_worker(server, "speech")
    try:
        assert worker.wait(timeout=400) == 0, worker.output()
    finally:
        worker.stop()
    with server.client() as client:
        trials = client.get(f"/v1/studies/{study['id']}/trials").json()["items"]
        finished = client.get(f"/v1/studies/{study['id']}").json()
    assert finished["state"] == "completed", finished
    assert [t["state"] for t in trials] == ["complete", "complete"], trials
    for trial in trials:
        curve = trial["attrs"]["learning_curve"]
        assert [point["epoch"] for point in curve] == [0, 1, 2]
        assert all(point["val_cer"] >= 0 for point in curve) and trial["value"] == curve[-1]["val_cer"]
        assert {"val_wer", "val_loss"} <= set(curve[-1])
    print("seconds per trial:", [round(t["attrs"]["wall_time_s"], 1) for t in trials])
