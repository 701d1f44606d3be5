"""The workers' cache of things tasks make once per machine (pretrained weights, generated datasets):
many worker processes may want the same file at once, so one of them makes it under a lock, and the file
only ever appears whole."""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from safetensors.torch import save_file


@contextmanager
def exclusive(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``lock_path`` (created if missing) for the block; the lock file
    stays for the next process."""
    with lock_path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def write_safetensors_atomically(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Write ``tensors`` to a temporary file beside ``path`` and rename it into place, so that no reader
    ever sees a half-written file; the temporary file is removed when anything fails."""
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(descriptor)
    try:
        save_file(tensors, temporary)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
