"""Download-only stage: a model's files into the HF cache at its pinned revision, verified.

Downloads go through huggingface_hub's ``snapshot_download``: parallel workers, the pinned
revision, only what the loader needs (``ALLOW_PATTERNS``), never a pickle format
(``DENY_PATTERNS``). vgkit adds the disk-space check, the orphan sweep, content hashes against the
Hub's values and its file record (``vgkit.hub.cache``), so ``--check`` and ``vgkit run`` can tell,
offline, that a snapshot is complete. Tokens come from ``HF_TOKEN`` or ``hf auth login``; vgkit
never takes one as a parameter and never writes one anywhere.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vgkit.errors import ModelUnavailableError, SpecError, VgkitError
from vgkit.hub import cache
from vgkit.hub.checkpoints import Checkpoint, checkpoint_status, locate_checkpoint, required_file
from vgkit.hub.results import FileResult, PrefetchReport, human_bytes
from vgkit.models import adapter, model_names
from vgkit.settings import hub_cache_dir, hub_endpoint, offline_hub

__all__ = [
    "ALLOW_PATTERNS",
    "DENY_PATTERNS",
    "check_models",
    "checkpoint",
    "checkpoint_names",
    "prefetch",
    "prefetch_repo",
    "run_prefetch",
    "wanted",
]

ALLOW_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "*.tiktoken", "tokenizer*", "*/tokenizer*"]
DENY_PATTERNS = ["*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl", "*.pickle"]
DISK_MARGIN_BYTES = 512 * 1024**2  # room left beyond the download (temp files, logs, run outputs)
MAX_WORKERS = 8  # files downloaded at once

Progress = Callable[[str], None]


def wanted(path: str) -> bool:
    """Whether vgkit downloads a repo file, matched as ``snapshot_download`` matches its patterns."""
    from huggingface_hub.utils import filter_repo_objects

    return any(filter_repo_objects([path], allow_patterns=ALLOW_PATTERNS, ignore_patterns=DENY_PATTERNS))


# -- the Hub side --------------------------------------------------------------------------------
def _hub_error(exc: BaseException, where: str, revision: str) -> VgkitError:
    """Translate a huggingface_hub / network failure into one clear line (never the token)."""
    from huggingface_hub import errors

    endpoint = hub_endpoint()
    if isinstance(exc, errors.DryRunError) and exc.__cause__ is not None:
        exc = exc.__cause__  # the dry run wraps what the Hub answered
    status = exc.response.status_code if isinstance(exc, errors.HfHubHTTPError) and exc.response is not None else None
    if isinstance(exc, errors.GatedRepoError):
        return ModelUnavailableError(
            f"{where}: gated repo, access refused (HTTP {status or '401/403'}); fix: accept its licence on the "
            "repo page, then `hf auth login` or set HF_TOKEN to a token with access"
        )
    if isinstance(exc, errors.RevisionNotFoundError):
        return SpecError(f"{where}: revision {revision!r} not found on {endpoint}; fix: pin an existing commit")
    if isinstance(exc, errors.RepositoryNotFoundError):
        return SpecError(
            f"{where}: repo not found on {endpoint} (HTTP 404, or private); fix: check the repo id, "
            "or log in with a token that can see it"
        )
    if status == 401:
        return ModelUnavailableError(
            f"{where}: the Hub rejected your token (HTTP 401, invalid credentials); "
            "fix: `hf auth login` again or set a valid HF_TOKEN (public repos need none)"
        )
    if isinstance(exc, errors.OfflineModeIsEnabled):
        return ModelUnavailableError(f"{where}: prefetch needs the network but HF_HUB_OFFLINE is set; fix: unset it")
    if status is not None:
        return ModelUnavailableError(f"{where}: the Hub answered HTTP {status}; fix: retry later or check {endpoint}")
    return ModelUnavailableError(
        f"{where}: cannot reach {endpoint} ({type(exc).__name__}); fix: check the network, or HF_ENDPOINT"
    )


def _snapshot(repo_id: str, revision: str, where: str, bars: type, *, dry_run: bool = False) -> Any:
    """``snapshot_download`` of vgkit's files, ``MAX_WORKERS`` at a time, as library ``vgkit``. The
    client's HTTP errors (OSError subclasses) and httpx transport errors become one line."""
    from huggingface_hub import snapshot_download

    from vgkit import __version__

    try:
        return snapshot_download(
            repo_id,
            revision=revision,
            cache_dir=hub_cache_dir(),
            endpoint=hub_endpoint(),
            allow_patterns=ALLOW_PATTERNS,
            ignore_patterns=DENY_PATTERNS,
            max_workers=MAX_WORKERS,
            tqdm_class=bars,
            library_name="vgkit",
            library_version=__version__,
            dry_run=dry_run,
        )
    except Exception as exc:
        if not isinstance(exc, OSError) and not type(exc).__module__.startswith(("httpx", "httpcore")):
            raise
        raise _hub_error(exc, where, revision) from None


def _bars(progress: Progress, snap: Path, todo: dict[str, int]) -> type:
    """A bar class for ``snapshot_download``: the Hub's bars on a terminal, and a plain line per file
    as it lands (what headless logs keep)."""
    from huggingface_hub.utils import tqdm as hub_tqdm

    pending, started = dict(todo), time.monotonic()

    class FileLines(hub_tqdm):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.counts_files = kwargs.get("unit", "it") != "B"  # the bar of files done, not bytes
            super().__init__(*args, **{"disable": None, **kwargs})  # None: shown on a terminal only

        def update(self, n: float | None = 1) -> bool | None:
            landed = [p for p in pending if (snap / p).exists()] if self.counts_files else []
            for path in landed:
                size = pending.pop(path)
                rate = (sum(todo.values()) - sum(pending.values())) / max(time.monotonic() - started, 1e-6) / 1024**2
                progress(f"  [{len(todo) - len(pending)}/{len(todo)}] {path} {human_bytes(size)} ({rate:.1f} MiB/s)")
            return super().update(n)

    return FileLines


def _expected(snap: Path, sizes: dict[str, int]) -> dict[str, cache.FileRecord]:
    """Each file's record: its size and the hash its blob is named after. huggingface_hub names a
    blob by its etag, which the Hub sets to the sha256 for LFS files and the git sha1 for the rest."""
    expected: dict[str, cache.FileRecord] = {}
    for path, size in sizes.items():
        etag = (snap / path).resolve().name
        kind = {64: "sha256", 40: "git_sha1"}.get(len(etag))  # any other etag: its size is all we check
        expected[path] = {"path": path, "size": size} | ({kind: etag} if kind else {})
    return expected


def _bad_files(snap: Path, files: list[cache.FileRecord], verify: bool | set[str]) -> list[str]:
    return [path for paths in cache.find_problems(snap, files, verify=verify).values() for path in paths]


# -- prefetch ------------------------------------------------------------------------------------
def prefetch_repo(
    repo_id: str,
    revision: str,
    *,
    label: str | None = None,
    verify_all: bool = False,
    progress: Progress = print,
    required: str = "model_index.json",
) -> PrefetchReport:
    """Download the wanted files of ``repo_id`` at ``revision`` into the hub cache and verify them.

    ``required`` marks the kind of repo vgkit loads (``model_index.json``, or ``config.json`` for
    the prompt-match CLIP). Files an earlier prefetch recorded are neither downloaded nor re-hashed
    unless ``verify_all``. Raises ``ModelUnavailableError`` / ``SpecError`` with one line for a
    gated, missing or unreachable repo, a bad token, a full disk, or corrupt content.
    """
    label, hub_cache = label or repo_id, hub_cache_dir()
    where = f"{repo_id}@{revision}" if label == repo_id else f"model {label}: {repo_id}@{revision}"
    # 1. What the Hub has: the commit, and each file's size and whether it is cached (writes refs/ only).
    plan = _snapshot(repo_id, revision, where, _bars(progress, hub_cache, {}), dry_run=True)
    if not any(f.filename == required for f in plan):
        kind = " (not diffusers)" if required == "model_index.json" else ""
        raise ModelUnavailableError(f"model {label}: {repo_id}@{revision} has no {required}{kind}")
    commit, sizes = plan[0].commit_hash, {f.filename: f.file_size or 0 for f in plan}
    todo = {f.filename: f.file_size or 0 for f in plan if f.will_download}
    report = PrefetchReport(label, repo_id, revision, commit, sum(sizes.values()), num_files=len(plan))

    # 2. Bytes needed, cached, free; refuse early when the disk cannot hold it.
    hub_cache.mkdir(parents=True, exist_ok=True)
    report.bytes_cached, free = report.bytes_needed - sum(todo.values()), shutil.disk_usage(hub_cache).free
    progress(
        f"{label}: {repo_id}@{commit[:12]}: {len(plan)} files, need {human_bytes(report.bytes_needed)}, "
        f"cached {human_bytes(report.bytes_cached)}, free disk {human_bytes(free)}"
    )
    if sum(todo.values()) + DISK_MARGIN_BYTES > free:
        raise ModelUnavailableError(
            f"model {label}: needs {human_bytes(sum(todo.values()))} more (+{human_bytes(DISK_MARGIN_BYTES)} margin) "
            f"in {hub_cache} but only {human_bytes(free)} is free; fix: free space or point HF_HUB_CACHE "
            "at a larger disk"
        )

    # 3. Download what is missing after sweeping orphans (huggingface_hub locks each blob it writes).
    report.orphans_removed = len(cache.sweep_incomplete(repo_id))
    if report.orphans_removed:
        progress(f"{label}: removed {report.orphans_removed} orphaned *.incomplete file(s)")
    snap = cache.repo_cache_dir(repo_id) / "snapshots" / commit
    _snapshot(repo_id, commit, where, _bars(progress, snap, todo))

    # 4. Hash new files (all with verify_all; recorded ones are checked by size); fetch bad ones again.
    expected, recorded = _expected(snap, sizes), cache.read_file_record(repo_id, commit) or []
    hashed = {p for p, item in expected.items() if verify_all or p in todo or item not in recorded}
    if bad := _bad_files(snap, [*expected.values()], hashed):
        progress(f"  {', '.join(bad)}: wrong size or content; downloading again")
        for path in bad:
            (snap / path).resolve().unlink(missing_ok=True)
            (snap / path).unlink(missing_ok=True)
        _snapshot(repo_id, commit, where, _bars(progress, snap, {p: sizes[p] for p in bad}))
        if still := _bad_files(snap, [expected[p] for p in bad], True):
            raise ModelUnavailableError(
                f"model {label}: {still[0]} fails its {_check(expected[still[0]])} check after a fresh download; "
                "fix: retry later, or report the repo"
            )
    for path, item in expected.items():
        report.files.append(FileResult(path, sizes[path], path in todo or path in bad, _check(item, path in hashed)))
        progress(f"  {path}: {report.files[-1].check} ok")
    report.orphans_removed += len(cache.sweep_incomplete(repo_id))
    cache.write_file_record(repo_id, commit, list(expected.values()))
    report.complete, report.status = True, f"complete, {report.downloaded} downloaded"
    return report


def _check(item: cache.FileRecord, hashed: bool = True) -> str:
    """The check a file passed: its hash (as the record names it), its size, or an earlier prefetch's."""
    if not hashed:
        return "recorded"
    return "sha256" if "sha256" in item else "git-sha1" if "git_sha1" in item else "size"


def prefetch(name: str, *, verify_all: bool = False, progress: Progress = print) -> PrefetchReport:
    """Prefetch model ``name`` (a registry name, or ``clip``) at its pinned revision; tiny ones are built."""
    model = checkpoint(name)
    if not model.tiny:
        required = required_file(model)
        return prefetch_repo(
            model.repo_id, model.revision, label=name, verify_all=verify_all, progress=progress, required=required
        )
    locate_checkpoint(model)
    report = _report(model, verify=verify_all)
    progress(f"{name}: tiny checkpoint built in the cache ({report.status})")
    return report


def checkpoint_names() -> list[str]:
    """Every name prefetch knows: the video models, then the prompt-match scorers."""
    from vgkit.evaluate.clip_score import scorer_names

    return [*model_names(), *scorer_names()]


def checkpoint(name: str) -> Checkpoint:
    """The video model or prompt-match scorer called ``name`` (a ``SpecError`` listing all names)."""
    from vgkit.evaluate.clip_score import scorer_checkpoint, scorer_names

    if name not in checkpoint_names():
        raise SpecError(f"model = {name!r}: unknown model; fix: use one of {', '.join(checkpoint_names())}")
    return scorer_checkpoint(name) if name in scorer_names() else adapter(name)


# -- offline check -------------------------------------------------------------------------------
def _report(model: Checkpoint, *, verify: bool) -> PrefetchReport:
    """A model's check: what its cached snapshot and vgkit's record say."""
    status = checkpoint_status(model, verify=verify)
    size = sum(int(str(item["size"])) for item in status.files or [])
    report = PrefetchReport(model.name, model.repo_id, model.revision, status.commit, size, size)
    report.num_files, report.complete, report.status = len(status.files or []), status.complete, status.describe()
    if model.tiny and status.snapshot is None:
        report.status = "not built (built on first use)"
    return report


def check_models(names: list[str] | None = None, *, verify: bool = False) -> list[PrefetchReport]:
    """Which models are complete in the cache, with no network (offline for the Hub meanwhile).
    ``verify=True`` hashes every recorded file (finds a corrupt blob of the right size)."""
    with offline_hub():
        return [_report(checkpoint(n), verify=verify) for n in names or checkpoint_names()]


def run_prefetch(
    models: list[str] | str, *, check_only: bool = False, verify_all: bool = False, progress: Progress = print
) -> list[dict[str, object]]:
    """Prefetch (or only check) ``models`` ("all", a comma list or a list); return table rows.

    "all" means every real model (the prompt-match CLIP included) for a prefetch and every model
    for a check. Applies the env file first (as the CLI does), so the prefetch notebook's Hub
    client reads the same HF_HOME.
    """
    from vgkit.settings import apply_env_file

    apply_env_file()
    names = [n.strip() for n in (models.split(",") if isinstance(models, str) else models) if n.strip()]
    if names == ["all"]:
        names = [n for n in checkpoint_names() if check_only or not checkpoint(n).tiny]
    if not names:
        raise SpecError("models = []: nothing to prefetch; fix: name models (`vgkit models`) or use all")
    if check_only:
        return [r.row() for r in check_models(names, verify=verify_all)]
    return [prefetch(n, verify_all=verify_all, progress=progress).row() for n in names]
