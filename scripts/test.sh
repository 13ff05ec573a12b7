#!/usr/bin/env bash
# Quick start, command 2: the full test suite (lint, types, tests). .ci/run calls exactly this.
# Extra arguments go to pytest (e.g. -k stitch, -x).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash setup.sh
# System tools some tests need (they skip without them): sshd + rsync for the remote tests,
# headless Chromium for the report render and browser tests (tests/test_browser.py drives it over the
# DevTools protocol with websocket-client). Installed once, only when running as root.
missing=()
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
command -v rsync >/dev/null || missing+=(rsync)
command -v chromium >/dev/null || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "== apt-get install ${missing[*]}"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; } \
        || echo "warning: could not install ${missing[*]}; the tests that need them will skip"
fi
echo "== ruff"
.venv/bin/ruff check vgkit tests benchmarks scripts
.venv/bin/ruff format --check vgkit tests benchmarks scripts
echo "== mypy"
.venv/bin/mypy
echo "== pytest"
.venv/bin/python -m pytest "$@"
