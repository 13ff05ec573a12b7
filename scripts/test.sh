#!/usr/bin/env bash
# The test suite.
#   bash scripts/test.sh            quick start command 2 and CI (.ci/run): set-up, ruff, mypy, then
#                                   every test on xdist workers (VGKIT_TEST_WORKERS, default 2)
#   bash scripts/test.sh --fast     the inner loop: every test without a costly marker
#                                   (tests/conftest.py) on the same workers; more pytest arguments may follow
#   bash scripts/test.sh ARGS...    ARGS straight to pytest (e.g. tests/test_spec.py -x -k stitch)
# With arguments there is no lint, and set-up runs only when `bash setup.sh --check` says .venv was
# not made for these pins.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

FAST_MARKERS="not (slow or e2e or notebook or browser or sshd or ray or subprocess or pipeline)"
WORKERS=${VGKIT_TEST_WORKERS:-2}

# System tools some tests need (they skip without them): sshd + rsync for the remote tests,
# headless Chromium for the report render and browser tests (tests/test_browser.py drives it over the
# DevTools protocol with websocket-client). Installed once, only when running as root.
install_system_tools() {
    local missing=()
    [ -x /usr/sbin/sshd ] || missing+=(openssh-server)
    command -v rsync >/dev/null || missing+=(rsync)
    command -v chromium >/dev/null || missing+=(chromium)
    if [ ${#missing[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "== apt-get install ${missing[*]}"
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; } \
            || echo "warning: could not install ${missing[*]}; the tests that need them will skip"
    fi
}

if [ $# -gt 0 ]; then
    if ! bash setup.sh --check >/dev/null 2>&1; then
        bash setup.sh
        install_system_tools
    fi
    if [ "$1" = --fast ]; then
        shift
        set -- -n "$WORKERS" -m "$FAST_MARKERS" "$@"
    fi
    echo "== pytest $*"
    exec .venv/bin/python -m pytest "$@"
fi

bash setup.sh
install_system_tools
echo "== ruff"
.venv/bin/ruff check vgkit tests benchmarks scripts
.venv/bin/ruff format --check vgkit tests benchmarks scripts
echo "== mypy"
.venv/bin/mypy
echo "== pytest -n $WORKERS (every test)"
exec .venv/bin/python -m pytest -n "$WORKERS"
