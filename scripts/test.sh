#!/usr/bin/env bash
# Quick start, command 2: the full test suite (lint, types, tests). .ci/run calls exactly this.
# Extra arguments go to pytest (e.g. -k stitch, -x).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash setup.sh
# headless Chromium for the HTML report render test (tests/test_report.py skips without it)
if [ "$(id -u)" = 0 ] && ! command -v chromium >/dev/null; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; fi
echo "== ruff"
.venv/bin/ruff check vgkit tests benchmarks
.venv/bin/ruff format --check vgkit tests benchmarks
echo "== mypy"
.venv/bin/mypy
echo "== pytest"
.venv/bin/python -m pytest "$@"
