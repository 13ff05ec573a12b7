"""One generation job per device: an OS-level ``fcntl.flock`` lock file per GPU.

The lock file (``<lock dir>/<device>.lock``, see ``settings.lock_dir``) holds a JSON record of
the holder (pid, command, run directory, start time) so a refused run can name it. The kernel
frees the lock the moment the holding process (and every process that inherited its file
descriptor) is gone, so a crashed or killed run never leaves a stale lock.

The default lock folder can be a predictable path under ``/tmp``, where another user may have put
something first, so nothing there is trusted: the folder is created 0700 and must be a real folder
(not a symbolic link) owned by this user and writable by no one else; the lock file is opened
relative to that folder without following a symbolic link, created 0600, and must be a plain file
of this user's with one link before it is truncated. Anything else is refused
(``UnsafeLockError``, exit 2) and left untouched.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import socket
import stat
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from vgkit.errors import GuardrailError, SpecError
from vgkit.settings import lock_dir, visible_gpu

__all__ = ["DeviceBusyError", "DeviceLock", "UnsafeLockError", "acquire_device_lock", "device_lock_name"]

Progress = Callable[[str], None]


class DeviceBusyError(GuardrailError):
    """Another run holds this device's lock (exit 6, like every guardrail)."""


class UnsafeLockError(SpecError):
    """The lock folder or file is not this user's own private one (exit 2); nothing there was changed."""


def device_lock_name(device: str) -> str:
    """``cuda-<first visible GPU>`` for a CUDA run, else the device name (``cpu``); characters other
    than letters, digits, ``.``, ``_`` and ``-`` (a MIG id's ``/``) become ``_``."""
    name = f"cuda-{visible_gpu()}" if device.startswith("cuda") else device
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


@dataclass(eq=False)
class DeviceLock:
    """A held device lock; release it with ``release()`` or by leaving the ``with`` block."""

    path: Path
    fd: int

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


_FIX_DIR = "remove it, or set VGKIT_LOCK_DIR to a folder of your own"


def _private_dir(directory: Path) -> int:
    """A descriptor on ``directory`` (created 0700 when missing), refused unless it is a real folder
    owned by this user that no one else can write."""
    where = f"lock folder '{directory}'"
    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            directory.mkdir(mode=0o700)
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):  # O_NOFOLLOW | O_DIRECTORY on a link gives either
            what = "is a symbolic link" if directory.is_symlink() else "is not a folder"
        else:
            what = f"cannot be opened ({exc.strerror})"
        raise UnsafeLockError(f"{where} {what}; fix: {_FIX_DIR}") from None
    info = os.fstat(fd)
    problem = None
    if info.st_uid != os.geteuid():
        problem = f"belongs to uid {info.st_uid}, not to this user (uid {os.geteuid()})"
    elif info.st_mode & 0o022:
        problem = f"is writable by other users (mode {stat.S_IMODE(info.st_mode):o})"
    if problem is not None:
        os.close(fd)
        raise UnsafeLockError(f"{where} {problem}; fix: {_FIX_DIR}")
    return fd


def _open_lock_file(directory: Path, name: str) -> int:
    """The lock file, opened in the checked folder without following a link, refused unless it is
    this user's plain file with a single link (so truncating it can only touch our own record)."""
    path = directory / name
    dir_fd = _private_dir(directory)
    try:
        fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o600, dir_fd=dir_fd)
    except OSError as exc:
        what = "is a symbolic link" if exc.errno == errno.ELOOP else f"cannot be opened ({exc.strerror})"
        raise UnsafeLockError(f"lock file '{path}' {what}; fix: remove it") from None
    finally:
        os.close(dir_fd)
    info = os.fstat(fd)
    problem = None
    if not stat.S_ISREG(info.st_mode):
        problem = "is not a plain file"
    elif info.st_uid != os.geteuid():
        problem = f"belongs to uid {info.st_uid}, not to this user"
    elif info.st_nlink != 1:
        problem = f"has {info.st_nlink} hard links (another name points at the same file)"
    if problem is not None:
        os.close(fd)
        raise UnsafeLockError(f"lock file '{path}' {problem}; nothing was written to it; fix: remove it")
    return fd


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
    poll until the holder is gone. A worker child started with ``pass_fds=(lock.fd,)`` shares the lock.
    An unsafe lock folder or file (see the module docstring) raises ``UnsafeLockError``."""
    directory = lock_dir() if directory is None else directory
    path = directory / f"{name}.lock"
    fd = _open_lock_file(directory, path.name)
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
    os.ftruncate(fd, 0)  # our own plain file (checked above), now held
    os.pwrite(fd, json.dumps(record).encode(), 0)
    return DeviceLock(path, fd)
