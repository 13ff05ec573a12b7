"""Run a job on a rented GPU host over plain SSH: push, set up, run detached, watch, kill, fetch.

ssh.py     the host (``user@host``, port, key) and the real ssh/rsync command lines
host.py    push, setup (setup.sh there makes ``.venv``), require_ready (code + that python)
jobs.py    prefetch, start_run (spec checked here, its deadline; ``setsid -f`` + pgid file +
           remote ``timeout``), job_status, read_log, kill_job, follow (Ctrl-C or a long
           disconnect kills the job)
fetch.py   fetch_bundle: resumable rsync, remote sha256, artifact hashes after extraction
agent.py   the remote side, sent over SSH as text
cli.py     ``vgkit remote ...`` subcommands
"""

from __future__ import annotations

__all__: list[str] = []
