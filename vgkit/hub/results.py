"""What a prefetch or an offline check found: per-model reports and the table the CLI and the
prefetch notebook print."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["FileResult", "PrefetchReport", "format_table", "human_bytes"]


def human_bytes(num_bytes: int) -> str:
    value = float(num_bytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


@dataclass
class FileResult:
    """What prefetch did with one file and how its content was checked."""

    path: str
    size: int
    downloaded: bool
    check: str  # "sha256", "git-sha1", "size", or "recorded" (hashed by an earlier prefetch; size checked)
    ok: bool = True  # a file that stays bad raises instead


@dataclass
class PrefetchReport:
    """One model's prefetch (or check): bytes, per-file results."""

    model: str
    repo_id: str
    revision: str
    commit: str | None = None
    bytes_needed: int = 0
    bytes_cached: int = 0
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
    widths = {k: max(len(k), *(len(str(r[k])) for r in rows)) for k in rows[0]}
    header: dict[str, object] = {k: k for k in widths}
    return "\n".join("  ".join(str(r[k]).ljust(w) for k, w in widths.items()).rstrip() for r in [header, *rows])
