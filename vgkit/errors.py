"""Every error vgkit raises on purpose, and the exit code the CLI gives each.

    VgkitError                      base; ``exit_code`` is what ``vgkit`` exits with
    ├── SpecError (ValueError)      bad input in a spec or on the command line        exit 2
    │   ├── UnsafeLockError           lock folder/file not this user's own (vgkit/supervise/lock.py) exit 2
    │   └── InfeasiblePlanError       the plan's projected time or memory breaks a      exit 2
    │                                 deadline or the card (vgkit.cost; --force runs it)
    ├── ModelUnavailableError       weights or checkpoint missing or malformed        exit 3
    │       (FileNotFoundError)
    ├── GenerationError             the pipeline failed on a clip                     exit 4
    │       (RuntimeError)
    ├── ArtifactError (RuntimeError) a written or bundled artifact fails its check    exit 5
    ├── GuardrailError (TimeoutError) a clip or run deadline was passed                exit 6
    │   ├── DeviceBusyError           another job holds the GPU (vgkit/supervise/lock.py)          exit 6
    │   └── RunDirBusyError           another run works in this run folder (vgkit/records/rundir.py) exit 6
    ├── RemoteConnectionError         an SSH host stayed unreachable past the limit      exit 7
    │       (ConnectionError)
    ├── RemoteSetupError              the host has no pushed code or no set-up .venv,    exit 8
    │       (RuntimeError)            or its setup.sh failed
    ├── RemoteCommandError            a command on a reachable SSH host failed (push,    exit 10
    │       (RuntimeError)            rsync, start, kill)
    └── WorkerKilledError             a run's worker process was killed by a signal      exit 9
            (RuntimeError)            other than the watchdog's (SIGKILL: most likely
                                      the kernel's OOM killer)

User mistakes (SpecError, ModelUnavailableError) print as one line with no traceback. Each message
names the field or thing, the value, and the fix.

Every error also carries, as fields, what went wrong in the failure vocabulary of
``vgkit.records.failures``: ``kind`` (the class's default unless the raiser says), ``clip_index`` and
``phase`` (None where it is not about one clip or phase).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ArtifactError",
    "GenerationError",
    "GuardrailError",
    "InfeasiblePlanError",
    "ModelUnavailableError",
    "RemoteCommandError",
    "RemoteConnectionError",
    "RemoteSetupError",
    "SpecError",
    "VgkitError",
    "WorkerKilledError",
]


class VgkitError(Exception):
    """Base class: a failure vgkit explains itself. A subclass sets its exit code and default kind
    on its class line: ``class SpecError(VgkitError, ValueError, exit_code=2)``."""

    exit_code = 1
    kind = "other"  # a vgkit.records.failures kind

    def __init_subclass__(cls, *, exit_code: int | None = None, kind: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if exit_code is not None:
            cls.exit_code = exit_code
        if kind is not None:
            cls.kind = kind

    def __init__(
        self, message: str = "", *, kind: str | None = None, clip_index: int | None = None, phase: str | None = None
    ) -> None:
        super().__init__(message)
        if kind is not None:
            self.kind = kind
        self.clip_index = clip_index
        self.phase = phase


class SpecError(VgkitError, ValueError, exit_code=2):
    """A spec, parameter or CLI value is wrong. The message says which, what it was, and the fix."""


class InfeasiblePlanError(SpecError, kind="infeasible"):
    """The plan cannot finish inside its deadlines or fit the card, by projection (vgkit.cost)."""


class ModelUnavailableError(VgkitError, FileNotFoundError, exit_code=3, kind="layout"):
    """A model's checkpoint is not in the local cache or does not have the expected layout."""


class GenerationError(VgkitError, RuntimeError, exit_code=4):
    """The pipeline raised while making a clip; finished clips stay intact."""


class ArtifactError(VgkitError, RuntimeError, exit_code=5):
    """A written artifact does not match what was meant (frame count, hash, layout)."""


class GuardrailError(VgkitError, TimeoutError, exit_code=6, kind="timeout"):
    """A cost guardrail (clip or run deadline) stopped the run."""


class RemoteConnectionError(VgkitError, ConnectionError, exit_code=7):
    """The SSH host could not be reached for longer than the allowed time."""


class RemoteSetupError(VgkitError, RuntimeError, exit_code=8):
    """The SSH host is not ready: no pushed code, no ``.venv`` from setup.sh, or setup.sh failed."""


class RemoteCommandError(VgkitError, RuntimeError, exit_code=10):
    """A command on a reachable SSH host failed (a push, an rsync, starting or killing a job): not
    a generation failure; the message holds the command's stderr."""


class WorkerKilledError(VgkitError, RuntimeError, exit_code=9):
    """The worker that generates a run's clips died from a signal nobody in vgkit sent (SIGKILL
    from the kernel's OOM killer, most often); finished clips stay intact."""
