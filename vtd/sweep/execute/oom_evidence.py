"""Evidence that the kernel's out-of-memory killer ended a trial process.

A trial killed by SIGKILL that its worker did not send was either killed by someone else
or by the kernel's OOM killer. Three sources tell them apart, each optional:

- the cgroup's `memory.events` (cgroup v2): its `oom_kill` counter grew while the trial ran;
- the kernel log (`/dev/kmsg`, readable only with privileges on most systems): a line
  "Killed process <pid>" / "oom-kill ... pid=<pid>" for the trial's process;
- the trial's last resident-memory sample within 5% of the memory limit (the cgroup's
  `memory.max`, else the machine's total memory).

`EvidenceSources.of_this_machine()` finds them for the worker's own cgroup; a sweep file's
`oom_evidence` section (`vtd.sweep.plan.sections.OomEvidenceConfig`) can name other files and a
limit, which is how tests give evidence without an OOM kill.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

from vtd.sweep.store.record import MB

if TYPE_CHECKING:  # an annotation only
    from vtd.sweep.plan.config import Sweep

NEAR_LIMIT = 0.95
_CGROUP_ROOT = Path("/sys/fs/cgroup")
_KMSG = Path("/dev/kmsg")


def _cgroup_dir() -> Path | None:
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("0::"):  # cgroup v2: one unified hierarchy
            folder = _CGROUP_ROOT / line[3:].lstrip("/")
            return folder if folder.is_dir() else None
    return None


def _read_limit(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return None if text == "max" or not text.isdigit() else int(text)


@dataclass(frozen=True)
class EvidenceSources:
    """Where to look: an events file, a kernel log, and the memory limit in bytes."""

    memory_events: Path | None = None
    kernel_log: Path | None = None
    memory_limit_bytes: int | None = None

    @classmethod
    def of_this_machine(cls) -> EvidenceSources:
        folder = _cgroup_dir()
        events = folder / "memory.events" if folder is not None else None
        limits = [psutil.virtual_memory().total]
        if folder is not None:
            cgroup_limit = _read_limit(folder / "memory.max")
            if cgroup_limit is not None:
                limits.append(cgroup_limit)
        return cls(
            memory_events=events if events is not None and events.is_file() else None,
            kernel_log=_KMSG if os.access(_KMSG, os.R_OK) else None,
            memory_limit_bytes=min(limits),
        )


def oom_kill_count(path: Path | None) -> int | None:
    """The `oom_kill` counter of a cgroup v2 `memory.events` file (None: unreadable)."""
    if path is None:
        return None
    try:
        for line in path.read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
    except (OSError, ValueError):
        return None
    return None


def _read_kernel_log(path: Path) -> str:
    # /dev/kmsg blocks at its end: read records without blocking until there are none.
    try:
        handle = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return ""
    chunks: list[bytes] = []
    try:
        while True:
            try:
                chunk = os.read(handle, 8192)
            except OSError as error:
                if error.errno in (errno.EAGAIN, errno.EPIPE):
                    if error.errno == errno.EPIPE:
                        continue  # records overwritten while reading: go on
                    break
                raise
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        with contextlib.suppress(OSError):
            os.close(handle)
    return b"".join(chunks).decode("utf-8", errors="replace")


def kernel_log_names(path: Path | None, pid: int) -> bool:
    """Whether the kernel log says the OOM killer killed process `pid`."""
    if path is None:
        return False
    pattern = re.compile(rf"(Killed process {pid}\b|oom-kill:.*\bpid={pid}\b)")
    return pattern.search(_read_kernel_log(path)) is not None


class OomWatch:
    """Opened when a trial process starts; asked, after it died of SIGKILL, for evidence."""

    def __init__(self, sources: EvidenceSources) -> None:
        self.sources = sources
        self.kills_before = oom_kill_count(sources.memory_events)

    def evidence(self, pid: int, last_rss_bytes: float) -> str | None:
        """Why we think the kernel killed `pid` for memory, in words; None without evidence."""
        after = oom_kill_count(self.sources.memory_events)
        if self.kills_before is not None and after is not None and after > self.kills_before:
            return f"the cgroup's oom_kill count rose from {self.kills_before} to {after}"
        if kernel_log_names(self.sources.kernel_log, pid):
            return f"the kernel log names process {pid}"
        limit = self.sources.memory_limit_bytes
        if limit and last_rss_bytes >= NEAR_LIMIT * limit:
            return "its last resident memory was within 5% of the limit"
        return None


def evidence_sources(sweep: Sweep) -> EvidenceSources | None:
    """The sweep file's `oom_evidence` (fields left out are not consulted); None: this
    machine's own cgroup, kernel log and memory."""
    config = sweep.file.oom_evidence
    if config is None:
        return None

    def beside_file(path: Path | None) -> Path | None:
        return None if path is None else sweep.folder / path

    return EvidenceSources(
        memory_events=beside_file(config.memory_events),
        kernel_log=beside_file(config.kernel_log),
        memory_limit_bytes=None if config.memory_limit_mb is None else config.memory_limit_mb * MB,
    )
