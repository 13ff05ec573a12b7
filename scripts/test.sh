#!/usr/bin/env bash
# Quick start, command 2: the full test suite (lint, types, tests). .ci/run calls exactly this.
# Extra arguments go to pytest (e.g. -k stitch, -x).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash setup.sh
# the remote tests need a real sshd + rsync; install them once when root (else those tests skip)
if [ "$(id -u)" = 0 ] && { [ ! -x /usr/sbin/sshd ] || ! command -v rsync >/dev/null; } && command -v apt-get >/dev/null; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server rsync >/dev/null; fi
echo "== ruff"
.venv/bin/ruff check vgkit tests benchmarks
.venv/bin/ruff format --check vgkit tests benchmarks
echo "== mypy"
.venv/bin/mypy
echo "== pytest"
.venv/bin/python -m pytest "$@"
