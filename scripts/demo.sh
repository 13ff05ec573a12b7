#!/usr/bin/env bash
# Quick start, command 1: the main job end to end (generate -> stitch -> bundle) for
# params/demo.yaml through notebooks/generate.ipynb, headless with papermill.
# Options pass through to `vgkit demo` (e.g. --model wan22, --spec FILE, --out DIR).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

model=auto
args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --model) model="$2"; shift 2 ;;
        --model=*) model="${1#--model=}"; shift ;;
        *) args+=("$1"); shift ;;
    esac
done

# First line of output: which model runs and why (standard library only, before any install).
chosen=$(python3 -m vgkit choose --model "$model")
bash setup.sh
# No `. .venv/vgkit.env` here: vgkit reads its env file itself, so this script, `.venv/bin/vgkit`
# and papermill resolve the same HF cache (vgkit/settings.py).
exec .venv/bin/vgkit demo --model "$chosen" ${args[@]+"${args[@]}"}
