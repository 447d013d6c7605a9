"""The frozen part's evaluation outputs, shared on disk by every run of a study.

Under the published recipe the frozen part never changes during fine-tuning, so every trial
that starts from the same weights and evaluates the same frames the same way computes the same
encodings. `SharedFeatureCache` keeps them in one folder (`studies/<study>/eval_cache/`):

- An entry is a folder named by `evaluation_key` (weights content hash, model config, the
  clips' frames with their sizes and mtimes, labels, evaluation chunking and transform,
  precision, memory format, device type, torch version): anything that changes an output
  changes the key, so an entry is never stale, only unused.
- A writer fills a private temporary folder and publishes it with one `os.replace`: readers
  only ever see complete entries, and when two writers race on one key the first rename wins
  and the second discards its copy (same content).
- Readers hold a shared `flock` on the key's lock file while they read; eviction takes it
  exclusively without waiting and skips entries in use, so no file disappears mid-read.
- The folder is bounded (`max_bytes`): after each write, the least recently used entries
  (the manifest's mtime, touched on every read) go until the total fits.
- Training windows (`vtd.train.features`) are single files under `windows/`, written with one
  `os.replace` and read whole; a reader that opened one keeps it even if it is evicted. They
  are written only while they fit, never evicting: a grid study's later trials read the early
  epochs instead of every trial evicting what the next one needs.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import logging
import os
import pickle
import shutil
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import torch

from vtd.data import Clip
from vtd.evaluate.cache import EncodedChunk, _as_plain, _from_plain

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
WINDOWS = "windows"
# A temporary folder left this long by a writer is taken for the leftover of a killed process.
STALE_TMP_SECONDS = 3600.0


def frozen_hash(model: torch.nn.Module, frozen: Sequence[torch.nn.Parameter]) -> str:
    """SHA-256 of the frozen part as it is in memory: `frozen` parameters and every buffer,
    by name and content. The same for a fresh initialisation from the same seed as for the
    weights file it was saved to, and for two copies of one file."""
    frozen_ids = {id(parameter) for parameter in frozen}
    digest = hashlib.sha256()
    named = [(n, p) for n, p in model.named_parameters() if id(p) in frozen_ids]
    for name, tensor in [*named, *model.named_buffers()]:
        value = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}|{value.dtype}|{tuple(value.shape)}\n".encode())
        digest.update(value.reshape(-1).view(torch.uint8).numpy())  # its buffer, no copy
    return digest.hexdigest()


def clips_fingerprint(clips: Sequence[Clip]) -> str:
    """A hash of what evaluation reads of `clips`: every frame's path, size and mtime, and
    the labels (boxes, gaze) and image size the chunks are built from."""
    digest = hashlib.sha256()
    for clip in clips:
        digest.update(f"{clip.key}|{clip.source}|{clip.image_size}|{len(clip)}\n".encode())
        digest.update(clip.boxes.tobytes())
        digest.update(clip.gaze.tobytes())
        for frame in clip.frames:
            stat = frame.stat()
            digest.update(f"{frame.resolve()}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


@functools.cache
def code_fingerprint() -> str:
    """A hash of the code that makes the frozen part's inputs and outputs (`vtd.model`,
    `vtd.data`): an entry written before an upgrade that changed them is never read after."""
    package = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for source in sorted([*package.glob("model/*.py"), *package.glob("data/**/*.py")]):
        digest.update(source.relative_to(package).as_posix().encode() + b"\0")
        digest.update(source.read_bytes())
    return digest.hexdigest()


def evaluation_key(**parts: object) -> str:
    """One hex key for every setting that changes the frozen part's outputs, with the torch
    version and the code that computes them."""
    text = json.dumps(
        {**parts, "torch": torch.__version__, "code": code_fingerprint()},
        sort_keys=True,
        default=str,
        separators=(",", ":"),
    )
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class SharedFeatureCache:
    """Entries of encoded evaluation chunks under `folder`, at most `max_bytes` in all."""

    def __init__(self, folder: Path, max_bytes: int) -> None:
        self.folder = folder
        self.max_bytes = max_bytes

    def _entry(self, key: str) -> Path:
        return self.folder / key

    @contextmanager
    def _lock(self, key: str, mode: int) -> Iterator[bool]:
        self.folder.mkdir(parents=True, exist_ok=True)
        with (self.folder / f"{key}.lock").open("a") as handle:
            try:
                fcntl.flock(handle, mode)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def read(self, key: str) -> Iterator[EncodedChunk] | None:
        """The entry's chunks in order, or None when there is no complete entry for `key`.

        The entry is locked (shared) from here until the iterator ends or is closed."""
        self.folder.mkdir(parents=True, exist_ok=True)
        handle = (self.folder / f"{key}.lock").open("a")
        fcntl.flock(handle, fcntl.LOCK_SH)
        manifest_path = self._entry(key) / MANIFEST
        try:
            manifest = json.loads(manifest_path.read_text())
            os.utime(manifest_path)  # recently used
        except FileNotFoundError:  # never written, or evicted
            handle.close()
            return None
        return self._chunks(handle, self._entry(key), manifest["chunks"])

    @staticmethod
    def _chunks(handle: IO[str], entry: Path, names: list[str]) -> Iterator[EncodedChunk]:
        try:
            for name in names:
                yield _from_plain(torch.load(entry / name, map_location="cpu", weights_only=True))
        finally:
            handle.close()  # releases the lock

    def writer(self, key: str) -> CacheWriter:
        return CacheWriter(self, key)

    def entries(self) -> list[tuple[Path, int, float]]:
        """(entry, bytes, last use) of every complete entry: evaluation folders and
        training-window files."""
        found = []
        for manifest in self.folder.glob(f"*/{MANIFEST}"):
            try:
                size = int(json.loads(manifest.read_text())["bytes"])
                used = manifest.stat().st_mtime
            except (FileNotFoundError, ValueError, KeyError):
                continue
            found.append((manifest.parent, size, used))
        for window in self.folder.glob(f"{WINDOWS}/*.pt"):
            try:
                stat = window.stat()
            except FileNotFoundError:
                continue
            found.append((window, stat.st_size, stat.st_mtime))
        return found

    def read_window(self, key: str) -> dict[str, torch.Tensor] | None:
        """A training window's tensors, or None when it was never written or was evicted."""
        path = self.folder / WINDOWS / f"{key}.pt"
        try:
            with path.open("rb") as handle:  # once open, eviction cannot take it away
                tensors = torch.load(handle, map_location="cpu", weights_only=True)
            os.utime(path)  # recently used
        except FileNotFoundError:
            return None
        except (OSError, RuntimeError, pickle.UnpicklingError) as error:  # damaged: encode again
            logger.warning("feature cache: %s unreadable (%s); encoding instead", path, error)
            return None
        return tensors

    def write_windows(self, windows: Mapping[str, dict[str, torch.Tensor]]) -> int:
        """Publish training windows ({key: tensors}) while they fit in the bound, never
        evicting; returns how many were written. The folder is measured once per call."""
        folder = self.folder / WINDOWS
        folder.mkdir(parents=True, exist_ok=True)
        total = sum(size for _, size, _ in self.entries())
        written = 0
        for key, tensors in windows.items():
            tmp = self.folder / f".tmp-{key}-{os.getpid()}-{uuid.uuid4().hex[:8]}.pt"
            try:
                torch.save(tensors, tmp)
                size = tmp.stat().st_size
                if total + size > self.max_bytes:
                    tmp.unlink()
                    continue
                tmp.replace(folder / f"{key}.pt")  # the same content if another was first
            except OSError as error:  # a full disk costs the sharing, not the run
                logger.warning("feature cache: training window not shared: %s", error)
                tmp.unlink(missing_ok=True)
                continue
            total += size
            written += 1
        return written

    def evict(self, keep: str | None = None) -> None:
        """Drop least recently used entries (not `keep`, not in use) until the total fits,
        and temporary folders that killed writers left behind."""
        now = time.time()
        for tmp in self.folder.glob(".tmp-*"):
            try:
                if now - tmp.stat().st_mtime > STALE_TMP_SECONDS:
                    if tmp.is_dir():
                        shutil.rmtree(tmp, ignore_errors=True)
                    else:
                        tmp.unlink()
            except FileNotFoundError:
                continue
        entries = sorted(self.entries(), key=lambda entry: entry[2])
        total = sum(size for _, size, _ in entries)
        for folder, size, _ in entries:
            if total <= self.max_bytes:
                break
            if folder.name == keep:
                continue
            if folder.is_file():  # a training window: readers read it whole, once open
                folder.unlink(missing_ok=True)
                total -= size
                continue
            with self._lock(folder.name, fcntl.LOCK_EX | fcntl.LOCK_NB) as locked:
                if not locked:
                    continue  # a reader is on it
                trash = self.folder / f".tmp-evicted-{uuid.uuid4().hex}"
                try:
                    folder.replace(trash)
                except FileNotFoundError:
                    continue
            shutil.rmtree(trash, ignore_errors=True)
            total -= size
            logger.info("evaluation cache: dropped %s (%.1f MB)", folder.name, size / 2**20)


class CacheWriter:
    """Chunks written to a private folder, published as `key` by `commit`."""

    def __init__(self, cache: SharedFeatureCache, key: str) -> None:
        self.cache = cache
        self.key = key
        cache.folder.mkdir(parents=True, exist_ok=True)
        self._tmp = cache.folder / f".tmp-{key}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._tmp.mkdir()
        self._names: list[str] = []
        self._bytes = 0

    def add(self, chunk: EncodedChunk) -> None:
        name = f"{len(self._names):06d}.pt"
        path = self._tmp / name
        torch.save(_as_plain(chunk.to("cpu")), path)
        self._names.append(name)
        self._bytes += path.stat().st_size
        if self._bytes > self.cache.max_bytes:
            raise CacheTooSmall(self._bytes)

    def commit(self) -> None:
        """Publish the entry, then bring the cache back within its bound."""
        (self._tmp / MANIFEST).write_text(json.dumps({"chunks": self._names, "bytes": self._bytes}))
        try:
            self._tmp.replace(self.cache._entry(self.key))
        except OSError:  # another writer published the same key first: same content
            shutil.rmtree(self._tmp, ignore_errors=True)
        self.cache.evict(keep=self.key)

    def abort(self) -> None:
        shutil.rmtree(self._tmp, ignore_errors=True)


class CacheTooSmall(Exception):  # noqa: N818 - a condition the caller handles
    """One split's encodings are larger than the whole cache."""


__all__ = [
    "CacheTooSmall",
    "CacheWriter",
    "SharedFeatureCache",
    "clips_fingerprint",
    "evaluation_key",
    "frozen_hash",
]
