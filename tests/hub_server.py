"""A small stand-in for the Hugging Face Hub on 127.0.0.1, for tests with the real client.

It speaks the endpoints huggingface_hub 2.4 uses to list and download a model repo (FACTS.md):

    GET  /api/models/{repo}/revision/{rev}[?blobs=True]     repo info: sha, siblings
    GET  /api/models/{repo}/tree/{rev}[?recursive=...]      file list with sizes and lfs oids
    HEAD /{repo}/resolve/{rev}/{path}                      X-Repo-Commit, ETag, Content-Length;
                                                           LFS files: 302 + X-Linked-Etag/-Size
    GET  /{repo}/resolve/{rev}/{path}                      small files' bytes (Range: 206)
    GET  /lfs/{sha256}                                     LFS files' bytes (Range: 206), on a
                                                           second port like the Hub's CDN host

Errors use the Hub's headers: 404 + ``X-Error-Code: RepoNotFound|RevisionNotFound|EntryNotFound``,
401/403 + ``X-Error-Code: GatedRepo``, 401 + ``X-Error-Message: Invalid credentials ...``.
Every request is logged in ``requests`` as ``(method, path)`` so tests can count downloads, and its
headers in ``headers`` (same order) so tests can tell which client call made it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

__all__ = ["HubRepo", "HubServer"]

LFS_SUFFIXES = (".safetensors",)


@functools.lru_cache(maxsize=256)
def git_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@functools.lru_cache(maxsize=256)
def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _url(httpd: ThreadingHTTPServer) -> str:
    host, port = httpd.server_address[:2]
    return f"http://{host!s}:{port}"


def _sibling(path: str, entry: dict[str, Any]) -> dict[str, Any]:
    """A ``siblings`` item of the revision endpoint with ``blobs=True`` (lfs keys differ from tree)."""
    item: dict[str, Any] = {"rfilename": path, "size": entry["size"], "blobId": entry["oid"]}
    if "lfs" in entry:
        item["lfs"] = {"size": entry["size"], "sha256": entry["lfs"]["oid"], "pointerSize": 134}
    return item


@dataclass
class HubRepo:
    """One model repo at one commit: ``files`` maps repo paths to bytes."""

    repo_id: str
    files: dict[str, bytes]
    commit: str = "0123456789abcdef0123456789abcdef01234567"
    gated: bool = False
    claimed_sizes: dict[str, int] = field(default_factory=dict)  # sizes the API lies about

    @classmethod
    def from_dir(cls, repo_id: str, root: Path, **kwargs: object) -> HubRepo:
        files = {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
        return cls(repo_id, files, **kwargs)  # type: ignore[arg-type]

    def is_lfs(self, path: str) -> bool:
        return path.endswith(LFS_SUFFIXES)

    def entry(self, path: str) -> dict[str, Any]:
        data = self.files[path]
        size = self.claimed_sizes.get(path, len(data))
        item: dict[str, Any] = {"type": "file", "path": path, "oid": git_sha1(data), "size": size}
        if self.is_lfs(path):
            item["lfs"] = {"oid": sha256(data), "size": size, "pointerSize": 134}
        return item


@dataclass
class HubServer:
    """Serve ``repos`` on an ephemeral port; use as a context manager. ``url`` is the endpoint."""

    repos: list[HubRepo]
    valid_tokens: set[str] = field(default_factory=set)
    drop_after_bytes: dict[str, int] = field(default_factory=dict)  # path -> bytes sent, then hang up
    stall_after_bytes: dict[str, int] = field(default_factory=dict)  # path -> bytes sent, then hang
    requests: list[tuple[str, str]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)  # each request's headers, lower-case names
    auth_headers: list[str] = field(default_factory=list)
    ranges: list[str] = field(default_factory=list)  # Range headers received

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self.release = threading.Event()  # set to end stalled responses
        self.stalled = threading.Event()  # set when a response starts stalling
        # The Hub and its CDN: the client follows a redirect only within one origin, so LFS
        # files must redirect to another one, as huggingface.co redirects to its CDN.
        self._servers = [ThreadingHTTPServer(("127.0.0.1", 0), _handler(self)) for _ in range(2)]
        for httpd in self._servers:
            httpd.daemon_threads = True

    @property
    def url(self) -> str:
        return _url(self._servers[0])

    @property
    def cdn_url(self) -> str:
        return _url(self._servers[1])

    def downloads(self) -> list[str]:
        """Paths of every GET that returned file bytes (resolve or lfs)."""
        return [p for m, p in self.requests if m == "GET" and ("/resolve/" in p or p.startswith("/lfs/"))]

    def __enter__(self) -> HubServer:
        for httpd in self._servers:
            threading.Thread(target=httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        for httpd in self._servers:
            httpd.shutdown()
            httpd.server_close()

    def log(self, method: str, path: str, headers: dict[str, str]) -> None:
        with self._lock:
            self.requests.append((method, path))
            self.headers.append(headers)
            if "authorization" in headers:
                self.auth_headers.append(headers["authorization"])

    def repo(self, repo_id: str) -> HubRepo | None:
        return next((r for r in self.repos if r.repo_id == repo_id), None)

    def lfs_blob(self, digest: str) -> tuple[str, bytes] | None:
        for repo in self.repos:
            for path, data in repo.files.items():
                if repo.is_lfs(path) and sha256(data) == digest:
                    return path, data
        return None


def _handler(server: HubServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

        def do_HEAD(self) -> None:
            self._route(head=True)

        def do_GET(self) -> None:
            self._route(head=False)

        # -- helpers --------------------------------------------------------------------------
        def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _error(self, status: int, code: str | None = None, message: str | None = None) -> None:
            headers = {"Content-Type": "application/json"}
            if code:
                headers["X-Error-Code"] = code
            if message:
                headers["X-Error-Message"] = message
            self._send(status, json.dumps({"error": message or code or "error"}).encode(), headers)

        def _json(self, data: object) -> None:
            self._send(200, json.dumps(data).encode(), {"Content-Type": "application/json"})

        def _bytes(self, data: bytes, path: str, headers: dict[str, str]) -> None:
            start, status = 0, 200
            rng = self.headers.get("Range")
            if rng:
                server.ranges.append(rng)
            if rng and rng.startswith("bytes="):
                start = int(rng[6:].split("-")[0] or 0)
                status = 206
                headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
            body = data[start:]
            get = self.command == "GET"
            drop = server.drop_after_bytes.pop(path, None) if get else None
            stall = server.stall_after_bytes.pop(path, None) if get else None
            if drop is None and stall is None:
                self._send(status, body, headers)
                return
            # Promise the whole body, send part of it, then hang (until released) or hang up.
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: drop if drop is not None else stall])
            self.wfile.flush()
            if stall is not None:
                server.stalled.set()
                server.release.wait()
            self.close_connection = True
            self.connection.shutdown(2)

        def _auth_error(self, repo: HubRepo) -> bool:
            auth = self.headers.get("Authorization")
            token = auth.removeprefix("Bearer ").strip() if auth else None
            if token is not None and token not in server.valid_tokens:
                self._error(401, message="Invalid credentials in Authorization header")
                return True
            if repo.gated:
                if token is None:
                    self._error(401, "GatedRepo", "Access to this repo is restricted: log in")
                else:
                    self._error(403, "GatedRepo", "Access to this repo is restricted: ask for access")
                return True
            return False

        # -- routes ---------------------------------------------------------------------------
        def _route(self, *, head: bool) -> None:
            split = urlsplit(self.path)
            path = unquote(split.path)
            server.log(self.command, path, {k.lower(): v for k, v in self.headers.items()})
            if path.startswith("/lfs/"):
                found = server.lfs_blob(path.removeprefix("/lfs/"))
                if found is None:
                    self._error(404, "EntryNotFound")
                    return
                self._bytes(found[1], found[0], {"ETag": f'"{path.removeprefix("/lfs/")}"'})
                return
            parts = path.strip("/").split("/")
            if parts[:2] == ["api", "models"] and len(parts) >= 6 and parts[4] in ("revision", "tree"):
                repo_id, kind, rev, rest = "/".join(parts[2:4]), parts[4], parts[5], "/".join(parts[6:])
            elif len(parts) >= 5 and parts[2] == "resolve":
                repo_id, kind, rev, rest = "/".join(parts[:2]), "resolve", parts[3], "/".join(parts[4:])
            else:
                self._error(404, message="no such route")
                return
            repo = server.repo(repo_id)
            if repo is None:
                self._error(404, "RepoNotFound", "Repository not found")
                return
            if self._auth_error(repo):
                return
            if rev not in ("main", repo.commit):
                self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
                return
            if kind == "revision":
                siblings = [{"rfilename": p} for p in repo.files]
                if "blobs=" in split.query:
                    siblings = [_sibling(p, repo.entry(p)) for p in repo.files]
                self._json(
                    {"id": repo_id, "modelId": repo_id, "sha": repo.commit, "siblings": siblings, "private": False}
                )
            elif kind == "tree":
                self._json([repo.entry(p) for p in repo.files if p.startswith(rest)])
            elif rest not in repo.files:
                self._error(404, "EntryNotFound", f"{rest} does not exist")
            else:
                self._resolve(repo, rest)

        def _resolve(self, repo: HubRepo, path: str) -> None:
            entry = repo.entry(path)
            headers = {"X-Repo-Commit": repo.commit, "ETag": f'"{entry["oid"]}"'}
            if "lfs" in entry:
                sha = str(entry["lfs"]["oid"])
                headers |= {
                    "Location": f"{server.cdn_url}/lfs/{sha}",
                    "X-Linked-Etag": f'"{sha}"',
                    "X-Linked-Size": str(entry["size"]),
                }
                self._send(302, b"", headers)
                return
            self._bytes(repo.files[path], path, headers)

    return Handler
