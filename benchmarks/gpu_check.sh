#!/usr/bin/env bash
# The whole GPU path on a fresh GPU machine with no network, in one go, printing one table:
#   1. setup.sh from carried-in wheels (VGKIT_WHEELS=DIR: the pins, and the torch build for the
#      host's driver, e.g. torch-2.13.0+cu128-*.whl), which chooses the build and proves it
#      with a bf16 matmul on each GPU;
#   2. vgkit doctor;
#   3. a full-size Wan 2.2 checkpoint with random weights, written offline into a fresh HF cache
#      (benchmarks/full_random_checkpoint.py);
#   4. one full-size random-weight transformer step of each model under each of its GPU presets
#      (benchmarks/bench_models.py --size full --steps 1);
#   5. a 2-clip `vgkit run --model wan22` at full size (1280x704, 121 frames per clip) on those
#      random weights, with STEPS denoising steps per clip (default 8) to stay inside 10 minutes.
# Budget: under 10 minutes on one H100/H200 class GPU (not yet measured: no GPU was available
# when this was written). Everything goes under WORK (default: a new temp folder).
#
#   VGKIT_WHEELS=/path/to/wheels bash benchmarks/gpu_check.sh
#   bash benchmarks/gpu_check.sh --dry-run     # CPU: checks the spec, the configs and the commands
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

DRY_RUN=0
[ "${1:-}" = "--dry-run" ] && DRY_RUN=1
WORK=${WORK:-$(mktemp -d -t vgkit-gpu-check-XXXXXX)}
STEPS=${STEPS:-8}
export HF_HUB_CACHE="$WORK/hub" HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 PYTHONPATH=$PWD
mkdir -p "$HF_HUB_CACHE"
ROWS=()

row() { ROWS+=("$(printf '%-40s %8s  %-6s %s' "$1" "$2" "$3" "$4")"); }

# stage NAME NOTE COMMAND...: run it, time it, keep its output in WORK/NAME.log, add a table row.
stage() {
    local name=$1 note=$2 started status
    shift 2
    echo "== $name: $*"
    started=$(date +%s.%N)
    if "$@" > "$WORK/$name.log" 2>&1; then status=ok; else status="exit $?"; fi
    tail -n 25 "$WORK/$name.log"
    row "$name" "$(printf '%.1f' "$(echo "$(date +%s.%N) - $started" | bc)")" "$status" "$note"
}

SPEC="$WORK/two-clips.yaml"
cat > "$SPEC" <<YAML
# gpu_check: two 5 s clips of Wan 2.2 at its native size; random weights, so the video is noise.
name: gpu-check
model: wan22
reference_image: $PWD/params/images/lighthouse.png
seed: 1
globals:
  style: photorealistic
  era_location: rocky coast
  lighting: bright day
  lens: 35mm
  aspect: "16:9"
negative_prompt: blur
allow_any_length: true
overrides:
  steps: $STEPS
shots:
  - {subject: a sailing boat, action: drifts, environment: open sea, camera: static, duration_s: 5}
  - {subject: the lighthouse, action: glows, environment: cliff top, camera: push-in, duration_s: 5}
YAML

if [ "$DRY_RUN" = 1 ]; then
    PY=${PYTHON:-.venv/bin/python}
    stage spec-check "vgkit check --gpu h100 (plans, loads nothing)" \
        env VGKIT_FORCE_CPU=1 "$PY" -m vgkit check "$SPEC" --model wan22 --gpu h100
    stage random-checkpoint "meta device: configs and classes" \
        "$PY" benchmarks/full_random_checkpoint.py --hub-cache "$HF_HUB_CACHE" --dry-run
    stage bench-models-help "bench_models.py parses" "$PY" benchmarks/bench_models.py --help
    echo
    echo "gpu_check --dry-run (no GPU: the GPU stages are listed, not run)"
    for planned in "setup.sh (VGKIT_WHEELS=DIR)" "vgkit doctor" "full_random_checkpoint.py" \
        "bench_models.py --size full --steps 1" "vgkit run two-clips.yaml --model wan22"; do
        row "$planned" "-" "skip" "needs the GPU machine"
    done
else
    : "${VGKIT_WHEELS:?set VGKIT_WHEELS to the folder of carried-in wheels (no network here)}"
    export VGKIT_WHEELS
    PY=.venv/bin/python
    stage setup "torch build for this driver + GPU proof" bash setup.sh
    grep -h "torch build\|GPU proof" "$WORK/setup.log" | sed 's/^/   /'
    stage doctor "must end 'doctor: ready'" "$PY" -m vgkit doctor
    stage random-checkpoint "full-size Wan 2.2, random weights" \
        "$PY" benchmarks/full_random_checkpoint.py --hub-cache "$HF_HUB_CACHE"
    stage bench-models "one transformer step per model/preset" \
        "$PY" benchmarks/bench_models.py --size full --steps 1
    stage run-wan22-2-clips "1280x704x121f, $STEPS steps/clip" \
        "$PY" -m vgkit run "$SPEC" --model wan22 --out "$WORK/run"
    "$PY" -m vgkit verify "$WORK/run" > "$WORK/verify.log" 2>&1 && row verify "-" ok "every hash of the run" \
        || row verify "-" fail "see $WORK/verify.log"
fi

echo
echo "gpu_check on $(hostname) at $(date -u +%FT%TZ); logs in $WORK"
printf '%-40s %8s  %-6s %s\n' stage seconds status note
for r in "${ROWS[@]}"; do echo "$r"; done
grep -h "step s\|^wan22\|^cogvideox15\|^hunyuan-i2v" "$WORK/bench-models.log" 2>/dev/null || true
! printf '%s\n' "${ROWS[@]}" | grep -q " exit \| fail "
