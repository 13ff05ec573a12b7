"""Download-only stage: fetch a model's files into the HF cache at its pinned revision, verified.

Only what the loader needs is fetched (``ALLOW_PATTERNS``: safetensors weights, configs,
tokenizers); pickle formats (``DENY_PATTERNS``) never are. The steps of ``prefetch_repo``:

1. ask the Hub for the file list with sizes and content hashes (one API call);
2. print the bytes needed, already cached and free on disk; refuse when the disk cannot hold it;
3. under a per-repo lock, delete orphaned ``*.incomplete`` files, then download missing files;
4. hash every new file (sha256 for LFS files, git sha1 for small ones) against the Hub's value,
   re-download a mismatch once, and write vgkit's file record (``vgkit.hub.cache``) so ``--check``
   and ``vgkit run`` can tell, offline, that the snapshot is complete.

Tokens come from ``HF_TOKEN`` or the Hub's own login (``hf auth login``); vgkit never takes one as
a parameter and never writes one anywhere.
"""

from __future__ import annotations

import fcntl
import fnmatch
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from vgkit.errors import ModelUnavailableError, SpecError, VgkitError
from vgkit.hub.cache import (
    CacheStatus,
    check_snapshot,
    file_matches,
    read_file_record,
    repo_cache_dir,
    sweep_incomplete,
    write_file_record,
    write_ref,
)
from vgkit.hub.checkpoints import Checkpoint, required_file
from vgkit.models import adapter, model_names
from vgkit.settings import hub_cache_dir, hub_endpoint, hub_offline

__all__ = [
    "ALLOW_PATTERNS",
    "DENY_PATTERNS",
    "FileResult",
    "PrefetchReport",
    "check_models",
    "checkpoint",
    "checkpoint_names",
    "format_table",
    "prefetch",
    "prefetch_repo",
    "run_prefetch",
    "wanted",
]

ALLOW_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "*.tiktoken", "tokenizer*"]
DENY_PATTERNS = ["*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl", "*.pickle"]
# Room left free beyond the download itself (temp files, logs, the run's own outputs).
DISK_MARGIN_BYTES = 512 * 1024**2

Progress = Callable[[str], None]


def wanted(path: str) -> bool:
    """Whether a repo file is one vgkit downloads: allowed and not a pickle format."""
    name = path.rsplit("/", 1)[-1]
    hit = lambda pats: any(fnmatch.fnmatch(path, p) or fnmatch.fnmatch(name, p) for p in pats)  # noqa: E731
    return hit(ALLOW_PATTERNS) and not hit(DENY_PATTERNS)


def human_bytes(num_bytes: int) -> str:
    value = float(num_bytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


@dataclass(frozen=True)
class RemoteFile:
    """One repo file as the Hub lists it: size and content hash (sha256 for LFS, else git sha1)."""

    path: str
    size: int
    sha256: str | None
    git_sha1: str | None

    def record(self) -> dict[str, object]:
        item: dict[str, object] = {"path": self.path, "size": self.size}
        item |= {"sha256": self.sha256} if self.sha256 else {"git_sha1": self.git_sha1}
        return item


@dataclass
class FileResult:
    """What prefetch did with one file and how its content was checked."""

    path: str
    size: int
    downloaded: bool
    check: str  # "sha256", "git-sha1", "recorded" (verified by an earlier prefetch), "size"
    ok: bool


@dataclass
class PrefetchReport:
    """One model's prefetch (or check): bytes, disk, per-file results."""

    model: str
    repo_id: str
    revision: str
    commit: str | None = None
    bytes_needed: int = 0
    bytes_cached: int = 0
    free_bytes: int = 0
    files: list[FileResult] = field(default_factory=list)
    orphans_removed: int = 0
    num_files: int = 0
    status: str = ""
    complete: bool = False

    @property
    def downloaded(self) -> int:
        return sum(f.downloaded for f in self.files)

    def row(self) -> dict[str, object]:
        """A flat row for the results table (CLI and notebook)."""
        return {
            "model": self.model,
            "repo": f"{self.repo_id}@{(self.commit or self.revision)[:12]}",
            "complete": self.complete,
            "files": self.num_files,
            "size": human_bytes(self.bytes_needed),
            "downloaded": self.downloaded,
            "status": self.status,
        }


def format_table(rows: list[dict[str, object]]) -> str:
    """Rows of equal keys as an aligned plain-text table."""
    if not rows:
        return "(no models)"
    keys = list(rows[0])
    widths = {k: max(len(k), *(len(str(r[k])) for r in rows)) for k in keys}
    lines = ["  ".join(k.ljust(widths[k]) for k in keys)]
    lines += ["  ".join(str(r[k]).ljust(widths[k]) for k in keys) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


# -- the Hub side --------------------------------------------------------------------------------
def _hub_error(exc: BaseException, label: str, repo_id: str, revision: str, endpoint: str) -> VgkitError:
    """Translate a huggingface_hub / network failure into one clear line (never the token)."""
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f"{repo_id}@{revision}" if label == repo_id else f"model {label}: {repo_id}@{revision}"
    if isinstance(exc, GatedRepoError):
        status = exc.response.status_code if exc.response is not None else "401/403"
        return ModelUnavailableError(
            f"{where}: gated repo, access refused (HTTP {status}); fix: accept its licence on the repo page, "
            "then `hf auth login` or set HF_TOKEN to a token with access"
        )
    if isinstance(exc, RevisionNotFoundError):
        return SpecError(f"{where}: revision {revision!r} not found on {endpoint}; fix: pin an existing commit")
    if isinstance(exc, RepositoryNotFoundError):
        return SpecError(
            f"{where}: repo not found on {endpoint} (HTTP 404, or private); fix: check the repo id, "
            "or log in with a token that can see it"
        )
    if isinstance(exc, HfHubHTTPError) and exc.response is not None and exc.response.status_code == 401:
        return ModelUnavailableError(
            f"{where}: the Hub rejected your token (HTTP 401, invalid credentials); "
            "fix: `hf auth login` again or set a valid HF_TOKEN (public repos need none)"
        )
    if isinstance(exc, OfflineModeIsEnabled):
        return ModelUnavailableError(f"{where}: offline mode is on; fix: run prefetch with HF_HUB_OFFLINE unset")
    if isinstance(exc, HfHubHTTPError) and exc.response is not None:
        return ModelUnavailableError(
            f"{where}: the Hub answered HTTP {exc.response.status_code}; fix: retry later or check {endpoint}"
        )
    return ModelUnavailableError(
        f"{where}: cannot reach {endpoint} ({type(exc).__name__}); fix: check the network, or HF_ENDPOINT"
    )


@contextmanager
def _hub_errors(label: str, repo_id: str, revision: str, endpoint: str) -> Iterator[None]:
    try:
        yield
    except VgkitError:
        raise
    except Exception as exc:
        # The client raises its HTTP errors (OSError subclasses) and httpx2 transport errors.
        if isinstance(exc, OSError) or type(exc).__module__.startswith(("httpx", "httpcore")):
            raise _hub_error(exc, label, repo_id, revision, endpoint) from None
        raise


def _remote_files(repo_id: str, revision: str, endpoint: str) -> tuple[str, list[RemoteFile]]:
    """The commit ``revision`` resolves to and every repo file with size and hash."""
    from huggingface_hub import HfApi

    info = HfApi(endpoint=endpoint).model_info(repo_id, revision=revision, files_metadata=True)
    files = [
        RemoteFile(
            path=s.rfilename,
            size=int(s.size or 0),
            sha256=s.lfs.sha256 if s.lfs else None,
            git_sha1=s.blob_id,
        )
        for s in info.siblings or []
    ]
    if info.sha is None:
        raise ModelUnavailableError(f"{repo_id}@{revision}: the Hub gave no commit; fix: retry")
    return info.sha, files


@contextmanager
def _repo_lock(repo_id: str, cache: Path) -> Iterator[None]:
    """One vgkit prefetch per repo and cache at a time (an flock; freed if the holder dies)."""
    locks = cache / ".locks" / repo_cache_dir(repo_id, cache_dir=cache).name
    locks.mkdir(parents=True, exist_ok=True)
    with open(locks / "vgkit-prefetch.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _free_bytes(path: Path) -> int:
    probe = path
    while not probe.exists():
        probe = probe.parent
    return shutil.disk_usage(probe).free


def _cached_ok(snap: Path, item: RemoteFile) -> bool:
    target = snap / item.path
    return target.is_file() and target.stat().st_size == item.size


def _download(repo_id: str, item: RemoteFile, commit: str, cache: Path, endpoint: str) -> None:
    from huggingface_hub import hf_hub_download

    hf_hub_download(repo_id, item.path, revision=commit, cache_dir=cache, endpoint=endpoint)


def _discard(snap: Path, item: RemoteFile) -> None:
    """Delete a bad file: its snapshot link and the blob it points at."""
    link = snap / item.path
    blob = link.resolve()
    link.unlink(missing_ok=True)
    blob.unlink(missing_ok=True)


# -- prefetch ------------------------------------------------------------------------------------
def prefetch_repo(
    repo_id: str,
    revision: str,
    *,
    label: str | None = None,
    verify_all: bool = False,
    cache_dir: Path | None = None,
    progress: Progress = print,
    required: str = "model_index.json",
) -> PrefetchReport:
    """Download the wanted files of ``repo_id`` at ``revision`` into the hub cache and verify them.

    ``required`` is the file the repo must have to be the kind vgkit loads (a diffusers
    ``model_index.json``, or ``config.json`` for the prompt-match CLIP). Files already cached and
    recorded by an earlier prefetch are neither downloaded nor re-hashed (``verify_all=True``
    re-hashes them). Raises ``ModelUnavailableError`` / ``SpecError`` with one
    line for a gated, missing or unreachable repo, a bad token, a full disk, or corrupt content.
    """
    label = label or repo_id
    endpoint = hub_endpoint()
    if hub_offline():
        raise ModelUnavailableError(
            f"model {label}: prefetch needs the network but HF_HUB_OFFLINE is set; fix: unset it for the prefetch"
        )
    cache = cache_dir or hub_cache_dir()
    report = PrefetchReport(label, repo_id, revision)

    # 1. What the Hub has.
    with _hub_errors(label, repo_id, revision, endpoint):
        commit, remote = _remote_files(repo_id, revision, endpoint)
    files = [f for f in remote if wanted(f.path)]
    if not any(f.path == required for f in files):
        kind = " (not diffusers)" if required == "model_index.json" else ""
        raise ModelUnavailableError(f"model {label}: {repo_id}@{commit[:12]} has no {required}{kind}")
    report.commit, report.num_files = commit, len(files)
    snap = repo_cache_dir(repo_id, cache_dir=cache) / "snapshots" / commit
    skipped = len(remote) - len(files)

    # 2. Bytes needed, cached, free; refuse early when the disk cannot hold it.
    report.bytes_needed = sum(f.size for f in files)
    report.bytes_cached = sum(f.size for f in files if _cached_ok(snap, f))
    report.free_bytes = _free_bytes(cache)
    missing_bytes = report.bytes_needed - report.bytes_cached
    progress(
        f"{label}: {repo_id}@{commit[:12]}: {len(files)} files ({skipped} skipped by pattern), "
        f"need {human_bytes(report.bytes_needed)}, cached {human_bytes(report.bytes_cached)}, "
        f"free disk {human_bytes(report.free_bytes)}"
    )
    if missing_bytes + DISK_MARGIN_BYTES > report.free_bytes:
        raise ModelUnavailableError(
            f"model {label}: needs {human_bytes(missing_bytes)} more (+{human_bytes(DISK_MARGIN_BYTES)} margin) "
            f"in {cache} but only {human_bytes(report.free_bytes)} is free; fix: free space or point HF_HUB_CACHE "
            "at a larger disk"
        )

    # 3. Download what is missing, under the repo lock, after sweeping orphans.
    recorded = {str(r["path"]): r for r in read_file_record(repo_id, commit, cache_dir=cache) or []}
    with _repo_lock(repo_id, cache), _quiet_bars():
        report.orphans_removed = len(sweep_incomplete(repo_id, cache_dir=cache))
        if report.orphans_removed:
            progress(f"{label}: removed {report.orphans_removed} orphaned *.incomplete file(s)")
        todo = [f for f in files if not _cached_ok(snap, f)]
        with _hub_errors(label, repo_id, revision, endpoint):
            for i, item in enumerate(todo, 1):
                started = time.monotonic()
                _download(repo_id, item, commit, cache, endpoint)
                rate = item.size / max(time.monotonic() - started, 1e-6) / 1024**2
                progress(f"  [{i}/{len(todo)}] {item.path} {human_bytes(item.size)} ({rate:.1f} MiB/s)")
            write_ref(repo_id, revision, commit, cache_dir=cache)

            # 4. Verify content; re-download a mismatch once.
            fetched = {f.path for f in todo}
            for item in files:
                result = _verify(item, snap, fetched=item.path in fetched, recorded=recorded, verify_all=verify_all)
                if not result.ok:
                    progress(f"  {item.path}: {result.check} mismatch; downloading again")
                    _discard(snap, item)
                    _download(repo_id, item, commit, cache, endpoint)
                    result = _verify(item, snap, fetched=True, recorded={}, verify_all=True)
                    if not result.ok:
                        raise ModelUnavailableError(
                            f"model {label}: {item.path} fails its {result.check} check after a fresh download; "
                            "fix: retry later, or report the repo"
                        )
                report.files.append(result)
                progress(f"  {item.path}: {result.check} {'ok' if result.ok else 'BAD'}")
        report.orphans_removed += len(sweep_incomplete(repo_id, cache_dir=cache))
    write_file_record(repo_id, commit, [f.record() for f in files], cache_dir=cache)
    report.complete = True
    report.status = f"complete, {report.downloaded} downloaded"
    return report


def _verify(
    item: RemoteFile, snap: Path, *, fetched: bool, recorded: dict[str, dict[str, object]], verify_all: bool
) -> FileResult:
    path = snap / item.path
    check = "sha256" if item.sha256 else ("git-sha1" if item.git_sha1 else "size")
    size_ok = path.is_file() and path.stat().st_size == item.size
    if size_ok and not fetched and not verify_all and recorded.get(item.path) == item.record():
        return FileResult(item.path, item.size, False, "recorded", True)
    ok = size_ok and file_matches(path, item.record())
    return FileResult(item.path, item.size, fetched, check, ok)


@contextmanager
def _quiet_bars() -> Iterator[None]:
    """Hub progress bars on a terminal; plain-text lines (vgkit's own) when headless."""
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    headless = not sys.stderr.isatty()
    was_disabled = are_progress_bars_disabled()
    if headless:
        disable_progress_bars()
    try:
        yield
    finally:
        if headless and not was_disabled:
            enable_progress_bars()


def prefetch(
    name: str, *, verify_all: bool = False, cache_dir: Path | None = None, progress: Progress = print
) -> PrefetchReport:
    """Prefetch model ``name`` (a registry name, or ``clip``) at its pinned revision; tiny ones are built."""
    model = checkpoint(name)
    if model.tiny:
        from vgkit.hub.checkpoints import locate_checkpoint

        locate_checkpoint(model, cache_dir=cache_dir)
        report = _report_from_status(model, _status(model, verify=verify_all, cache_dir=cache_dir))
        progress(f"{name}: tiny checkpoint built in the cache ({report.status})")
        return report
    return prefetch_repo(
        model.repo_id,
        model.revision,
        label=name,
        verify_all=verify_all,
        cache_dir=cache_dir,
        progress=progress,
        required=required_file(model),
    )


def checkpoint_names() -> list[str]:
    """Every name prefetch knows: the video models, then the prompt-match scorers."""
    from vgkit.evaluate.clip_score import scorer_names

    return [*model_names(), *scorer_names()]


def checkpoint(name: str) -> Checkpoint:
    """The video model or prompt-match scorer called ``name`` (a ``SpecError`` listing all names)."""
    from vgkit.evaluate.clip_score import scorer_checkpoint, scorer_names

    if name in scorer_names():
        return scorer_checkpoint(name)
    if name in model_names():
        return adapter(name)
    raise SpecError(f"model = {name!r}: unknown model; fix: use one of {', '.join(checkpoint_names())}")


# -- offline check -------------------------------------------------------------------------------
def _status(model: Checkpoint, *, verify: bool, cache_dir: Path | None) -> CacheStatus:
    revision = model.revision
    if model.tiny:
        from vgkit.hub.checkpoints import tiny_commit

        revision = tiny_commit(model)
    return check_snapshot(
        model.repo_id, revision, verify=verify, cache_dir=cache_dir, required_file=required_file(model)
    )


def _report_from_status(model: Checkpoint, status: CacheStatus) -> PrefetchReport:
    report = PrefetchReport(model.name, model.repo_id, model.revision, commit=status.commit)
    report.bytes_cached = report.bytes_needed = status.total_bytes
    report.num_files = status.num_files
    report.complete = status.complete
    report.status = status.describe()
    if model.tiny and status.snapshot is None:
        report.status = "not built (built on first use)"
    return report


def check_models(
    names: list[str] | None = None, *, verify: bool = False, cache_dir: Path | None = None
) -> list[PrefetchReport]:
    """Which models are complete in the cache, with no network: ``HF_HUB_OFFLINE=1`` meanwhile.

    ``verify=True`` hashes every recorded file (finds a corrupt blob of the right size).
    """
    before = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        return [
            _report_from_status(model, _status(model, verify=verify, cache_dir=cache_dir))
            for model in (checkpoint(n) for n in (names or checkpoint_names()))
        ]
    finally:
        if before is None:
            del os.environ["HF_HUB_OFFLINE"]
        else:
            os.environ["HF_HUB_OFFLINE"] = before


def run_prefetch(
    models: list[str] | str, *, check_only: bool = False, verify_all: bool = False, progress: Progress = print
) -> list[dict[str, object]]:
    """Prefetch (or only check) ``models`` ("all", a comma list or a list); return table rows.

    "all" means every real model (the prompt-match CLIP included) for a prefetch and every model
    for a check. Applies the env file
    first (as the CLI does), so the prefetch notebook's Hub client reads the same HF_HOME.
    """
    from vgkit.settings import apply_env_file

    apply_env_file()
    names = [n.strip() for n in models.split(",")] if isinstance(models, str) else list(models)
    names = [n for n in names if n]
    if names == ["all"]:
        names = checkpoint_names() if check_only else [n for n in checkpoint_names() if not checkpoint(n).tiny]
    if not names:
        raise SpecError("models = []: nothing to prefetch; fix: name models (`vgkit models`) or use all")
    if check_only:
        return [r.row() for r in check_models(names, verify=verify_all)]
    return [prefetch(n, verify_all=verify_all, progress=progress).row() for n in names]
