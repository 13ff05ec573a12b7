"""Bring one run's bundle back: resumable rsync, sha256 against the remote, every artifact hash.

The first transfer resumes a broken one (``--partial --append-verify``); when the local sha256
differs from the one computed on the host, the next attempt re-checks every block
(``--checksum``). The bundle is then extracted as any untrusted bundle is
(``vgkit.finish.bundle.extract_bundle``: members checked against its index, size limits, ``tarfile``'s
``data`` filter) and each artifact in its ``manifest.json`` is re-hashed.

A fetch never deletes or replaces a local folder: when ``<dest>/<name>`` exists it refuses before
downloading anything, naming ``--force``, which fetches beside it (``<name>.fetched-<UTC time>``).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from vgkit.errors import ArtifactError, SpecError
from vgkit.records.artifacts import sha256_file
from vgkit.records.schema import read_manifest
from vgkit.remote.ssh import SshTarget, remote_path, run_ssh

__all__ = ["FetchResult", "fetch_bundle", "local_names", "verify_run_dir"]


@dataclass(frozen=True)
class FetchResult:
    bundle: Path
    run_dir: Path
    sha256: str
    artifacts_verified: int
    attempts: int


def remote_sha256(target: SshTarget, path: str, *, retry_s: float = 60.0) -> str:
    done = run_ssh(target, f"sha256sum {remote_path(path)}", retry_s=retry_s)
    if done.returncode != 0:
        raise ArtifactError(
            f"{target.host}:{path}: no bundle to fetch; fix: wait until `vgkit remote status` says it ended with exit 0"
        )
    return done.stdout.decode().split()[0]


def verify_run_dir(run_dir: Path) -> int:
    """Re-hash every artifact listed in ``manifest.json``; return how many matched."""
    if not (run_dir / "manifest.json").is_file():
        raise ArtifactError(f"{run_dir}: manifest.json is missing from the bundle; fix: re-run `vgkit remote fetch`")
    artifacts = read_manifest(run_dir).artifacts
    for record in artifacts:
        path = run_dir / record.path
        actual = sha256_file(path) if path.is_file() else "missing"
        if actual != record.sha256:
            raise ArtifactError(
                f"{path}: sha256 {actual} != manifest {record.sha256}; fix: re-run `vgkit remote fetch`"
            )
    return len(artifacts)


def local_names(dest_dir: Path, name: str, *, force: bool) -> tuple[Path, Path]:
    """Where the bundle and the run folder go: ``<name>.tar.gz`` and ``<name>``, or, when that folder
    exists and ``force`` is set, ``<name>.fetched-<UTC time>`` beside it; refused without ``force``."""
    run_dir = dest_dir / name
    if not (run_dir.exists() or run_dir.is_symlink()):
        return dest_dir / f"{name}.tar.gz", run_dir
    if not force:
        raise SpecError(
            f"{run_dir}: already exists, and a fetch never replaces a local folder; fix: move it away, "
            "fetch into another --out, or pass --force to fetch beside it"
        )
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    beside = f"{name}.fetched-{stamp}"
    n = 1
    while (dest_dir / beside).exists() or (dest_dir / f"{beside}.tar.gz").exists():
        n += 1
        beside = f"{name}.fetched-{stamp}-{n}"
    return dest_dir / f"{beside}.tar.gz", dest_dir / beside


def _extract(bundle: Path, run_dir: Path, name: str) -> int:
    """Extract into a temp dir beside ``run_dir`` (checked against the bundle's index, as any bundle
    is: ``vgkit.finish.bundle.extract_bundle``), verify, then rename it to ``run_dir`` (which must not
    exist); return how many artifacts were verified."""
    from vgkit.finish.bundle import extract_bundle

    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=run_dir.parent))
    try:
        extracted = extract_bundle(bundle, staging)
        if extracted.name != name:
            raise SpecError(f"{bundle}: holds run {extracted.name!r}, not {name!r}; nothing replaced")
        verified = verify_run_dir(extracted)
        if run_dir.exists() or run_dir.is_symlink():
            raise SpecError(f"{run_dir}: appeared while fetching; nothing replaced; fix: re-run the fetch")
        extracted.rename(run_dir)
        return verified
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def fetch_bundle(
    target: SshTarget, name: str, dest_dir: Path, *, attempts: int = 3, force: bool = False
) -> FetchResult:
    """Download ``runs/<name>.tar.gz`` into ``dest_dir``, verify it, extract it and verify that.

    Refuses (``SpecError``) when ``dest_dir/<name>`` exists, unless ``force``: then both land
    beside it (``local_names``).
    """
    dest_dir.mkdir(parents=True, exist_ok=True)
    local, run_dir = local_names(dest_dir, name, force=force)
    remote_bundle = f"{target.code_dir}/runs/{name}.tar.gz"
    expected = remote_sha256(target, remote_bundle)
    actual = "none"
    for attempt in range(1, attempts + 1):
        mode = ["--partial", "--append-verify"] if attempt == 1 else ["--partial", "--checksum"]
        done = subprocess.run(
            target.rsync_argv("-t", *mode, target.remote(remote_bundle), str(local)), capture_output=True, check=False
        )
        actual = sha256_file(local) if local.is_file() else "none"
        if done.returncode == 0 and actual == expected:
            return FetchResult(local, run_dir, actual, _extract(local, run_dir, name), attempt)
    raise ArtifactError(
        f"{local}: sha256 {actual} != remote {expected} after {attempts} attempts; "
        "fix: check the local disk, then re-run `vgkit remote fetch`"
    )
