"""One generation job per device: an OS-level ``fcntl.flock`` lock file per GPU.

The lock file (``<lock dir>/<device>.lock``, see ``settings.lock_dir``) holds a JSON record of
the holder (pid, command, run directory, start time) so a refused run can name it. The kernel
frees the lock the moment the holding process (and every process that inherited its file
descriptor) is gone, so a crashed or killed run never leaves a stale lock.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from vgkit.errors import GuardrailError
from vgkit.settings import lock_dir, visible_gpu

__all__ = ["DeviceBusyError", "DeviceLock", "acquire_device_lock", "device_lock_name"]

Progress = Callable[[str], None]


class DeviceBusyError(GuardrailError):
    """Another run holds this device's lock (exit 6, like every guardrail)."""


def device_lock_name(device: str) -> str:
    """``cuda-<first visible GPU>`` for a CUDA run, else the device name (``cpu``)."""
    return f"cuda-{visible_gpu()}" if device.startswith("cuda") else device


class DeviceLock:
    """A held device lock; release it with ``release()`` or by leaving the ``with`` block."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self.fd = fd

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # closing the last descriptor of the open file frees the flock
            self.fd = -1

    def __enter__(self) -> DeviceLock:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def _holder(fd: int) -> str:
    try:
        raw = os.pread(fd, 65536, 0).decode(errors="replace")
        record = json.loads(raw)
    except (OSError, json.JSONDecodeError):
        return "an unknown process (its record is being written)"
    return (
        f"pid {record.get('pid')} on {record.get('host')} since {record.get('since')} "
        f"(run dir {record.get('run_dir')}; command: {record.get('command')})"
    )


def acquire_device_lock(
    name: str,
    *,
    run_dir: Path,
    wait: bool = False,
    poll_s: float = 1.0,
    progress: Progress = print,
    directory: Path | None = None,
) -> DeviceLock:
    """Take the lock for device ``name``; refuse at once (``DeviceBusyError``) or, with ``wait``,
    poll until the holder is gone. A worker child started with ``pass_fds=(lock.fd,)`` shares the lock."""
    directory = lock_dir() if directory is None else directory
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    announced = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            holder = _holder(fd)
            if not wait:
                os.close(fd)
                raise DeviceBusyError(
                    f"device {name}: already running a job: {holder}; lock file {path}; fix: wait for it to "
                    "finish, stop it, or pass --wait-for-gpu to queue behind it"
                ) from None
            if not announced:
                progress(f"device {name}: busy with {holder}; waiting for it (--wait-for-gpu)")
                announced = True
            time.sleep(poll_s)
    record = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "since": datetime.now(UTC).isoformat(timespec="seconds"),
        "run_dir": str(Path(run_dir).resolve()),
        "command": " ".join(sys.argv),
    }
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(record).encode(), 0)
    return DeviceLock(path, fd)
