"""Files a reader may see at any moment: one atomic writer for every file minbert writes.

Every file minbert writes (checkpoints, histories, result JSONs, predictions, released
notebooks, grades, downloaded CSVs, saved encoders) goes through `atomic_file` or
`replace_dir`: the data go to a temporary name in the same folder, are flushed to disk
(fsync), and are renamed into place. A reader, or a run killed half-way, sees the old file
or the new one, never a half-written one.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_file(path):
    """Yield a temporary path beside `path`; on success it is fsynced and renamed to `path`,
    on an exception it is deleted (so a check of the finished file may raise inside)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; the files are for others to read too
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_bytes(path, data: bytes | None = None, *, writer=None) -> Path:
    """Write `data`, or call `writer(binary file)` (e.g. lambda f: torch.save(state, f))."""
    with atomic_file(path) as tmp, open(tmp, "wb") as f:
        writer(f) if writer is not None else f.write(data)
    return Path(path)


def write_text(path, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def write_json(path, obj) -> Path:
    return write_text(path, json.dumps(obj, indent=2) + "\n")


def replace_dir(tmp, folder) -> Path:
    """Put the finished folder `tmp` in place of `folder` (two renames; the old one, if any,
    is removed afterwards): a reader never sees a half-written folder."""
    tmp, folder = Path(tmp), Path(folder)
    old = folder.with_name(f".{folder.name}.old{os.getpid()}")
    if folder.exists():
        os.replace(folder, old)
    os.replace(tmp, folder)
    shutil.rmtree(old, ignore_errors=True)
    return folder
