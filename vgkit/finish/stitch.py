"""Deterministic stitch of a run's clips into ``final/final_stitched.mp4``.

Driven by ``plan.json``: every clip it lists must have an ``ok`` log, its clip and its last frame
(``read_logs`` names what is missing, in one line); files of clips beyond the plan are not read.
Recipe (fixed, recorded in the manifest): clips in index order; every chained clip (i > 0) loses
its first frame, which repeats the previous clip's last frame; every stream is retimed to integer
frame indices (time base ``1/fps``, pts = frame number); then either a hard cut (``concat``) or a
crossfade (``xfade=transition=fade``) over a fixed whole number of overlap frames, with offsets
computed in integer frames. Optional seam smoothing (cuts only) re-makes ``SEAM_WINDOW_FRAMES``
frames either side of each cut: with ffmpeg ``minterpolate`` (motion-compensated) in the same
graph, or with RIFE (vgkit.finish.interpolate), whose bridge frames are computed from the two real
frames around each window (decoded through the same per-clip chain, colour included) and fed to
the graph as one extra lossless rawvideo input; the record names the interpolator, its weights'
sha256 and the device, and restitch recomputes the bridges. Optional colour matching
(vgkit.finish.colour) is a per-clip ``lutrgb`` in the same graph. Clips generated below the run's output
size (a preset's ``size_scale``) are upscaled at the end of the graph with a pinned Lanczos
``scale``. One ffmpeg filtergraph, the pinned encoder recipe (vgkit.finish.encode) at the model's fps.
The final frame count must equal
``sum(frames) - (X - 1) - (X - 1) * overlap_frames`` or the stitch fails.

Settings come from the run's ``plan.json`` (the spec's ``stitch:`` section), so ``vgkit run``, the
notebooks and ``vgkit stitch`` make the same final; ``vgkit stitch`` flags override single fields
and the record says where each came from. A final outside 30-60 s is refused before any work
unless the spec set ``allow_any_length``.
"""

from __future__ import annotations

import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from vgkit.errors import ArtifactError, SpecError
from vgkit.finish.encode import SWS_FLAGS, encoder_args, rawvideo_input, write_video
from vgkit.records.artifacts import (
    CLIP_LOG_SCHEMA,
    PlannedClip,
    RunLayout,
    file_record,
    planned_clips,
    read_json_object,
    sha256_file,
    temp_path_for,
)
from vgkit.records.schema import ClipLog, read_log
from vgkit.spec.stitch_settings import SETTING_FIELDS, StitchSettings

__all__ = [
    "STITCH_RECIPE_VERSION",
    "StitchSettings",
    "kept_frames",
    "planned_final_frames",
    "read_logs",
    "render",
    "render_recorded",
    "settings_for_run",
    "stitch_run",
]

STITCH_RECIPE_VERSION = 2
XFADE_TRANSITION = "fade"
UPSCALE_FLAGS = f"lanczos+{SWS_FLAGS}"  # Lanczos on swscale's bit-exact C paths, whatever the CPU's SIMD
SEAM_WINDOW_FRAMES = 2  # frames replaced on each side of a seam when seam smoothing is on
SEAM_CONTEXT_FRAMES = 2  # real frames on each side that the interpolator sees


def settings_for_run(run_dir: Path, **flags: Any) -> tuple[StitchSettings, dict[str, str]]:
    """The run's stitch settings: ``plan.json``'s (the spec's ``stitch:``), each overridden by a
    flag that is not None; also where each field came from (``spec``, ``flag`` or ``default``)."""
    unknown = sorted(set(flags) - set(SETTING_FIELDS))
    if unknown:
        raise TypeError(f"unknown stitch settings {unknown}")
    recorded = (read_json_object(RunLayout(run_dir).plan) or {}).get("stitch")
    base = StitchSettings.from_plan_record(recorded) if isinstance(recorded, dict) else StitchSettings()
    given = {k: v for k, v in flags.items() if v is not None}
    if given.get("transition") == "cut" and "overlap_frames" not in given:
        given["overlap_frames"] = 0  # a flag asking for a cut drops the spec's crossfade overlap
    source = {
        k: ("flag" if k in given else ("spec" if isinstance(recorded, dict) else "default")) for k in SETTING_FIELDS
    }
    return replace(base, **given), source


def _check_final_length(layout: RunLayout, final_frames: int, *, fps: int, settings: StitchSettings) -> None:
    """At stitch time (a restitch with other settings too): refuse a final outside 30-60 s unless the
    spec allowed any length (plans written before vgkit recorded ``allow_any_length`` are not checked)."""
    if (read_json_object(layout.plan) or {}).get("allow_any_length", True) is not False:
        return
    from vgkit.spec.plan import check_final_length

    crossfade = f" over {settings.overlap_frames} frames" if settings.transition == "crossfade" else ""
    check_final_length(
        final_frames,
        fps=fps,
        what=f"stitch: transition {settings.transition}{crossfade}",
        fix="fewer overlap frames or a cut (--transition cut), or change the spec's shots and re-run",
    )


def read_logs(layout: RunLayout) -> list[ClipLog]:
    """The ``ok`` log of every clip ``plan.json`` lists, in index order.

    Raises one ``ArtifactError`` line naming every planned clip whose log, clip or last frame is
    missing, whose log is unreadable (truncated) or not ``ok`` (aborted, failed), or whose frame
    count differs from the plan. Logs of clips beyond the plan are not read.
    """
    planned = planned_clips(layout)
    logs: list[ClipLog] = []
    problems: list[str] = []
    for clip in planned:
        log, problem = _planned_log(layout, clip)
        if problem is not None:
            problems.append(problem)
        elif log is not None:
            logs.append(log)
    if problems:
        raise ArtifactError(
            f"{layout.root}: {len(problems)} of the {len(planned)} planned clips cannot be stitched: "
            f"{'; '.join(problems)}; fix: re-run `vgkit run` with the same spec to make them"
        )
    return logs


def _planned_log(layout: RunLayout, clip: PlannedClip) -> tuple[ClipLog | None, str | None]:
    """A planned clip's log, or what is wrong with it (one phrase)."""
    name = layout.log(clip.index).relative_to(layout.root).as_posix()
    try:
        log = read_log(layout.log(clip.index), root=layout.root)
    except FileNotFoundError:
        return None, f"{name} is missing"
    except (OSError, ArtifactError) as exc:
        return None, str(exc).split("; fix:")[0]
    if log.index != clip.index:
        return None, f"{name} is not clip {clip.index:03d}'s {CLIP_LOG_SCHEMA} log"
    if log.status != "ok":
        return None, f"clip {clip.index:03d} is {log.status} ({log.failure.kind if log.failure else None})"
    for key, path in (("clip", layout.clip(clip.index)), ("last_frame", layout.last_frame(clip.index))):
        record = log.artifacts.get(key)
        if record is None or record.path != path.relative_to(layout.root).as_posix():
            return None, f"{name} does not record {path.relative_to(layout.root).as_posix()}"
        if not path.is_file():
            return None, f"{path.relative_to(layout.root).as_posix()} is missing"
    frames = log.effective.num_frames
    if frames != clip.num_frames or log.chained != clip.chained:
        got, want = f"{frames} frames (chained: {log.chained})", f"{clip.num_frames} (chained: {clip.chained})"
        return None, f"clip {clip.index:03d} has {got}, the plan says {want}"
    return log, None


def kept_frames(logs: list[ClipLog]) -> list[int]:
    """Frames each clip contributes before transitions (chained clips lose their first frame)."""
    return [_checked_frames(log) - int(log.chained) for log in logs]


def _checked_frames(log: ClipLog) -> int:
    if log.effective.num_frames is None:
        raise ArtifactError(f"logs/log_{log.index:03d}.json: effective.num_frames is missing; refused")
    return log.effective.num_frames


def planned_final_frames(kept: list[int], *, overlap_frames: int) -> int:
    """The kept frames ``- (X - 1) * overlap_frames`` crossfaded away."""
    return sum(kept) - (len(kept) - 1) * overlap_frames


def _check_fits(kept: list[int], settings: StitchSettings) -> None:
    """Refuse an overlap or seam window that does not fit in the clips, before any work."""
    if len(kept) > 1 and min(kept[:-1] + kept[1:]) <= settings.overlap_frames:
        raise SpecError(
            f"overlap_frames = {settings.overlap_frames}: longer than a clip ({min(kept)} frames after the "
            "dropped duplicate); fix: choose fewer overlap frames"
        )
    needed = 2 * (SEAM_WINDOW_FRAMES + SEAM_CONTEXT_FRAMES) + 1
    if settings.seam_smoothing != "off" and len(kept) > 1 and min(kept) < needed:
        raise SpecError(
            f"seam_smoothing = {settings.seam_smoothing!r}: a clip has {min(kept)} frames, fewer than the "
            f"{needed} a bridge needs; fix: turn seam smoothing off"
        )


def _filtergraph(logs: list[ClipLog], *, fps: int, settings: StitchSettings, luts: list[str | None]) -> str:
    """The whole stitch as one filtergraph whose output pad is ``[out]``; clips generated below the
    output size are upscaled as its last step."""
    graph = ";".join(_joined(logs, fps=fps, settings=settings, luts=luts))
    upscale = _upscale_record(logs)
    return graph if upscale is None else graph.removesuffix("[out]") + f"[joined];[joined]{upscale['filter']}[out]"


def _joined(logs: list[ClipLog], *, fps: int, settings: StitchSettings, luts: list[str | None]) -> list[str]:
    """The filters that join the clips into ``[out]``."""
    kept = kept_frames(logs)
    rgb = any(luts) or settings.seam_smoothing == "rife"
    parts = [
        f"[{i}:v]{_clip_chain(log.chained, fps=fps, lut=lut, rgb=rgb)}[v{i}]"
        for i, (log, lut) in enumerate(zip(logs, luts, strict=True))
    ]
    if rgb:  # RGB round trip: pin the scaler to its bit-exact C paths, whatever the CPU's SIMD
        parts.insert(0, f"sws_flags={SWS_FLAGS}")
    if settings.seam_smoothing == "minterpolate":
        return parts + _bridged_cuts(kept, fps=fps)
    if settings.seam_smoothing == "rife":
        return parts + _bridged_cuts(kept, fps=fps, rife_input=len(kept))
    overlap_frames = settings.overlap_frames
    if overlap_frames == 0:
        inputs = "".join(f"[v{i}]" for i in range(len(kept)))
        return [*parts, f"{inputs}concat=n={len(kept)}:v=1:a=0[out]"]
    us_per_frame = 1_000_000 / fps
    duration = f"{round(overlap_frames * us_per_frame)}us"
    prev, length = "v0", kept[0]
    for i in range(1, len(kept)):
        name = "out" if i == len(kept) - 1 else f"x{i}"
        offset = f"{round((length - overlap_frames) * us_per_frame)}us"
        parts.append(f"[{prev}][v{i}]xfade=transition={XFADE_TRANSITION}:duration={duration}:offset={offset}[{name}]")
        prev, length = name, length + kept[i] - overlap_frames
    return parts


def _clip_chain(drop_first: bool, *, fps: int, lut: str | None, rgb: bool) -> str:
    """One clip's filters before the join: drop the duplicated first frame, integer pts, colour."""
    chain = ["trim=start_frame=1"] if drop_first else []
    chain += [f"settb=1/{fps}", "setpts=N"]
    if rgb:
        chain += ["format=rgb24", *([lut] if lut else [])]
    return ",".join(chain)


def _bridge_filter(fps: int) -> str:
    """Interpolate between the two context pairs; keep the ``2 * SEAM_WINDOW_FRAMES`` frames between them."""
    steps = 2 * SEAM_WINDOW_FRAMES + 1  # output frames per input frame interval
    first = (SEAM_CONTEXT_FRAMES - 1) * steps + 1
    return (
        f"minterpolate=fps={fps * steps}:mi_mode=mci:mc_mode=aobmc:me_mode=bidir:scd=none,"
        f"trim=start_frame={first}:end_frame={first + steps - 1},settb=1/{fps},setpts=N"
    )


def _bridged_cuts(kept: list[int], *, fps: int, rife_input: int | None = None) -> list[str]:
    """Hard cuts whose ``SEAM_WINDOW_FRAMES`` frames either side are re-made by motion interpolation.

    minterpolate: each bridge sees the ``SEAM_CONTEXT_FRAMES`` real frames before the window in
    clip i-1 and after it in clip i. RIFE (``rife_input``: the index of the bridges' rawvideo
    input): the bridges were computed beforehand (``_rife_bridges``), ``2 * SEAM_WINDOW_FRAMES``
    per seam in seam order. The frame count does not change.
    """
    w, ctx, last = SEAM_WINDOW_FRAMES, SEAM_CONTEXT_FRAMES, len(kept) - 1
    parts, segments = [], []
    if rife_input is not None:
        pads = "".join(f"[r{i}]" for i in range(1, len(kept)))
        parts.append(f"[{rife_input}:v]settb=1/{fps},setpts=N,format=rgb24,split={len(kept) - 1}{pads}")
    for i, length in enumerate(kept):
        pieces = [("m", w if i else 0, length - w if i < last else length)]
        if rife_input is None:
            pieces += [("t", length - w - ctx, length - w)] if i < last else []
            pieces += [("h", w, w + ctx)] if i else []
        pads = "".join(f"[{kind}{i}]" for kind, _, _ in pieces)
        parts.append(f"[v{i}]split={len(pieces)}{pads}")
        for kind, start, end in pieces:
            parts.append(f"[{kind}{i}]trim=start_frame={start}:end_frame={end},setpts=N[{kind}{i}c]")
        if i and rife_input is not None:
            parts.append(f"[r{i}]trim=start_frame={(i - 1) * 2 * w}:end_frame={i * 2 * w},setpts=N[b{i}]")
            segments.append(f"[b{i}]")
        elif i:
            pair = f"[t{i - 1}c][h{i}c]concat=n=2:v=1:a=0,settb=1/{fps},setpts=N"
            parts.append(f"{pair},{_bridge_filter(fps)}[b{i}]")
            segments.append(f"[b{i}]")
        segments.append(f"[m{i}c]")
    parts.append(f"{''.join(segments)}concat=n={len(segments)}:v=1:a=0,settb=1/{fps},setpts=N[out]")
    return parts


def _upscale_record(logs: list[ClipLog]) -> dict[str, Any] | None:
    """How the stitch upscales clips generated below the run's output size, or None.

    A preset that cannot fit the output size (``size_scale`` < 1) generates smaller; every clip
    log records its generated (``effective``) size and the run's ``output_size``.
    """
    sizes = {(log.effective.width, log.effective.height) for log in logs}
    if len(sizes) != 1:
        raise ArtifactError(f"clip logs disagree on the generated size {sorted(sizes)}; re-run the odd clips")
    width, height = sizes.pop()
    output = logs[0].output_size
    if output is None or (output.width, output.height) == (width, height):
        return None
    preset = logs[0].preset or {}
    return {
        "from": {"width": width, "height": height},
        "to": {"width": output.width, "height": output.height},
        "filter": f"scale={output.width}:{output.height}:flags={UPSCALE_FLAGS}",
        "reason": f"preset {preset.get('name')!r} generates at {preset.get('size_scale')}x the output size",
    }


def _verified_clips(layout: RunLayout, logs: list[ClipLog]) -> list[Path]:
    clips = []
    for log in logs:
        record = log.artifacts["clip"]
        clip = layout.root / record.path
        if not clip.is_file() or sha256_file(clip) != record.sha256:
            raise ArtifactError(f"{record.path}: missing or changed since its log was written; re-run the clip")
        clips.append(clip)
    return clips


def render(
    clips: list[Path],
    graph: str,
    *,
    fps: int,
    encoder: list[str],
    dest: Path,
    expected_frames: int,
    bridges_fhwc: np.ndarray | None = None,
) -> None:
    """Run one stitch filtergraph over ``clips`` (and, for RIFE seams, the bridge frames as one
    more rawvideo input) into ``dest`` atomically; check its frame count."""
    raw = temp_path_for(dest.with_name(dest.name + ".bridges.rgb"))
    args: list[str] = []
    for clip in clips:
        # Only the MP4 demuxer reading a local file: a clip that is a playlist or names a URL
        # (a tampered bundle) cannot make ffmpeg open anything else.
        args += ["-f", "mov", "-protocol_whitelist", "file", "-i", str(clip)]
    if bridges_fhwc is not None:
        _, height, width, _ = bridges_fhwc.shape
        dest.parent.mkdir(parents=True, exist_ok=True)
        raw.write_bytes(np.ascontiguousarray(bridges_fhwc).tobytes())
        args += rawvideo_input(str(raw), width=width, height=height, fps=fps)
    args += ["-filter_complex", graph, "-map", "[out]", "-r", str(fps), *encoder]
    try:
        write_video(args, dest=dest, expected_frames=expected_frames)
    finally:
        raw.unlink(missing_ok=True)


def _seam_frames(clip: Path, chain: str, indices: list[int], *, width: int, height: int) -> list[np.ndarray]:
    """Frames ``indices`` (after ``chain``, the clip's filters in the stitch graph) as rgb24 arrays."""
    from vgkit.finish.encode import ffmpeg_exe

    select = "+".join(f"eq(n\\,{i})" for i in indices)
    graph = f"sws_flags={SWS_FLAGS};[0:v]{chain},format=rgb24,select={select}[out]"
    cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-f", "mov"]
    cmd += ["-protocol_whitelist", "file", "-i", str(clip), "-filter_complex", graph, "-map", "[out]"]
    cmd += ["-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24", "-threads", "1", "pipe:1"]
    done = subprocess.run(cmd, capture_output=True, check=False)
    if done.returncode != 0:
        raise ArtifactError(f"{clip.name}: reading seam frames failed: {done.stderr.decode(errors='replace')[-300:]}")
    frames = np.frombuffer(done.stdout, dtype=np.uint8).reshape(-1, height, width, 3)
    if len(frames) != len(indices):
        raise ArtifactError(f"{clip.name}: {len(frames)} seam frames decoded, {len(indices)} wanted")
    return list(frames)


def _rife_bridges(
    clips: list[Path], logs: list[ClipLog], *, luts: list[str | None], fps: int, device: str
) -> np.ndarray:
    """``2 * SEAM_WINDOW_FRAMES`` RIFE frames per seam, seam by seam: between the last real frame
    before the window in clip i-1 and the first real frame after it in clip i, both as the stitch
    graph sees them (dropped duplicate, colour transform)."""
    from vgkit.finish.interpolate import Rife

    w, kept = SEAM_WINDOW_FRAMES, kept_frames(logs)
    size = {"width": int(logs[0].effective.width or 0), "height": int(logs[0].effective.height or 0)}
    rife = Rife.load(device)
    timesteps = [j / (2 * w + 1) for j in range(1, 2 * w + 1)]
    bridges = []
    for i in range(1, len(clips)):
        chain = _clip_chain(logs[i - 1].chained, fps=fps, lut=luts[i - 1], rgb=True)
        (before,) = _seam_frames(clips[i - 1], chain, [kept[i - 1] - w - 1], **size)
        chain = _clip_chain(logs[i].chained, fps=fps, lut=luts[i], rgb=True)
        (after,) = _seam_frames(clips[i], chain, [w], **size)
        bridges.append(rife.between(before, after, timesteps))
    return np.concatenate(bridges)


def render_recorded(
    clips: list[Path],
    logs: list[ClipLog],
    record: dict[str, Any],
    *,
    encoder: list[str],
    dest: Path,
    expected_frames: int,
) -> None:
    """Restitch: render a manifest's stitch ``record`` (rebuilt as ``filtergraph_from_record`` does) over
    ``clips``, recomputing RIFE seam bridges on the device the record names when it is here, else the CPU."""
    settings, luts = _settings_and_luts(record, logs)
    fps = int(record["fps"])
    bridges = None
    if settings.seam_smoothing == "rife":
        from vgkit.finish.interpolate import rife_device

        recorded = (record.get("seam_smoothing") or {}).get("interpolator") or {}
        device = "cuda" if recorded.get("device") == "cuda" and rife_device() == "cuda" else "cpu"
        bridges = _rife_bridges(clips, logs, luts=luts, fps=fps, device=device)
    graph = _filtergraph(logs, fps=fps, settings=settings, luts=luts)
    render(clips, graph, fps=fps, encoder=encoder, dest=dest, expected_frames=expected_frames, bridges_fhwc=bridges)


def stitch_run(
    run_dir: Path,
    settings: StitchSettings | None = None,
    *,
    dest: Path | None = None,
    colour_record: dict[str, Any] | None = None,
    settings_source: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Stitch the clips of ``run_dir`` into ``dest`` (default ``final/final_stitched.mp4``).

    ``settings`` None: the run's own (``plan.json``, from the spec's ``stitch:`` section).
    ``colour_record`` (a previous stitch record's ``colour_matching``) reuses its per-clip transforms
    instead of measuring again; restitch uses it. Returns the stitch record for the manifest.
    """
    if settings is None:
        settings, settings_source = settings_for_run(run_dir)
    layout = RunLayout(run_dir)
    logs = read_logs(layout)
    clips = _verified_clips(layout, logs)
    fps = int(logs[0].effective.fps or 0)
    kept = kept_frames(logs)
    expected = planned_final_frames(kept, overlap_frames=settings.overlap_frames)
    _check_fits(kept, settings)
    _check_final_length(layout, expected, fps=fps, settings=settings)
    colour: dict[str, Any] | None = None
    luts: list[str | None] = [None] * len(clips)
    if settings.colour != "off":
        from vgkit.finish.colour import match_colours

        colour = colour_record or match_colours(clips, anchor_image=settings.colour_anchor_image)
        luts = [t["lutrgb"] for t in colour["transforms"]]
    graph = _filtergraph(logs, fps=fps, settings=settings, luts=luts)
    interpolator, bridges = None, None
    if settings.seam_smoothing == "rife" and len(clips) > 1:
        from vgkit.finish.interpolate import interpolator_record, resolve_interpolator, rife_device

        resolve_interpolator("rife", field="seam_smoothing")
        device = rife_device()
        interpolator = interpolator_record("rife", device=device)
        bridges = _rife_bridges(clips, logs, luts=luts, fps=fps, device=device)
    elif settings.seam_smoothing == "minterpolate":
        from vgkit.finish.interpolate import interpolator_record

        interpolator = interpolator_record("minterpolate")
    target = dest or layout.final
    render(clips, graph, fps=fps, encoder=encoder_args(), dest=target, expected_frames=expected, bridges_fhwc=bridges)
    final = file_record(target, root=layout.root if target == layout.final else target.parent)
    return {
        "version": STITCH_RECIPE_VERSION,
        "order": "clip index",
        "drop_first_frame_of_chained_clips": True,
        **settings.to_record(),
        "settings_source": settings_source or dict.fromkeys(SETTING_FIELDS, "caller"),
        "xfade_transition": XFADE_TRANSITION if settings.transition == "crossfade" else None,
        "colour_matching": colour,
        "seam_smoothing": {
            "mode": settings.seam_smoothing,
            "ran": {"minterpolate": "ffmpeg minterpolate (mci)", "rife": "RIFE 4.x (vgkit.finish.interpolate)"}.get(
                settings.seam_smoothing
            ),
            "window_frames": SEAM_WINDOW_FRAMES if settings.seam_smoothing != "off" else 0,
            "interpolator": interpolator,
        },
        "upscale": _upscale_record(logs),
        "fps": fps,
        "filtergraph": graph,
        "encoder_args": encoder_args(),
        "clip_count": len(logs),
        "kept_frames_per_clip": kept,
        "final_frames": expected,
        "final": final,
    }


# --- rebuilding a recorded stitch (restitch of an untrusted bundle) --------------------------------


def _whole(value: Any, field: str, *, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ArtifactError(f"{field} = {str(value)[:40]!r}: not a whole number in {low}..{high}; refused")
    return value


def _numbers(value: Any, field: str, *, low: float, high: float) -> list[float]:
    ok = isinstance(value, list) and len(value) == 3
    ok = ok and all(not isinstance(v, bool) and isinstance(v, int | float) and low <= v <= high for v in value)
    if not ok:
        raise ArtifactError(f"{field} = {str(value)[:60]!r}: not three numbers in {low}..{high}; refused")
    return [float(v) for v in value]


def _checked_logs(logs: list[ClipLog]) -> None:
    """The clip-log fields the recipe reads, as whole numbers in range (they are formatted into the graph)."""
    for i, log in enumerate(logs):
        name = f"logs/log_{i:03d}.json"
        effective, output = log.effective, log.output_size
        _whole(log.index, f"{name}: index", low=i, high=i)
        _whole(effective.num_frames, f"{name}: effective.num_frames", low=1, high=100_000)
        _whole(effective.fps, f"{name}: effective.fps", low=1, high=240)
        for key in ("width", "height"):
            _whole(getattr(effective, key), f"{name}: effective.{key}", low=1, high=16_384)
            if output is not None:
                _whole(getattr(output, key), f"{name}: output_size.{key}", low=1, high=16_384)


def filtergraph_from_record(record: dict[str, Any], logs: list[ClipLog]) -> str:
    """Rebuild a stitch's filtergraph from this module's recipe, a manifest's stitch ``record`` and the clip logs.

    For ``restitch`` of a bundle, which is untrusted: no text of the record reaches the graph. The
    record's recipe version must be ``STITCH_RECIPE_VERSION``; its transition, overlap and seam mode
    go through ``StitchSettings``' validation; colour transforms are taken as numbers (gain within
    ``1/MAX_GAIN..MAX_GAIN``, offset within +-512) and turned into ``lutrgb`` filters by vgkit.finish.colour;
    frame counts, fps and sizes must be whole numbers in range. The graph is then built by the same
    functions ``stitch_run`` uses (the stored ``filtergraph`` string is never read). Raises
    ``ArtifactError`` naming the first bad field.
    """
    settings, luts = _settings_and_luts(record, logs)
    return _filtergraph(logs, fps=int(record["fps"]), settings=settings, luts=luts)


def _settings_and_luts(record: dict[str, Any], logs: list[ClipLog]) -> tuple[StitchSettings, list[str | None]]:
    """A manifest stitch record's settings and per-clip colour filters, every field checked (see
    ``filtergraph_from_record``)."""
    if record.get("version") != STITCH_RECIPE_VERSION:
        raise ArtifactError(
            f"manifest.json: stitch.version {str(record.get('version'))[:20]}: this vgkit rebuilds recipe "
            f"{STITCH_RECIPE_VERSION}; fix: restitch with the vgkit version that made the bundle"
        )
    _checked_logs(logs)
    seam = record.get("seam_smoothing")
    fields = {k: record.get(k) for k in ("transition", "colour")}
    if not all(isinstance(v, str) for v in fields.values()) or not isinstance(seam, dict):
        raise ArtifactError(f"manifest.json: stitch settings {str(fields)[:80]!r} are not vgkit's; refused")
    try:
        settings = StitchSettings(
            transition=str(fields["transition"]),
            overlap_frames=record.get("overlap_frames"),  # type: ignore[arg-type]  # validated by StitchSettings
            colour=str(fields["colour"]),
            seam_smoothing=str(seam.get("mode")),
        )
        _check_fits(kept_frames(logs), settings)
    except SpecError as exc:
        raise ArtifactError(f"manifest.json: stitch.{exc}; refused") from exc
    fps = _whole(record.get("fps"), "manifest.json: stitch.fps", low=1, high=240)
    if {log.effective.fps for log in logs} != {fps}:
        raise ArtifactError(f"manifest.json: stitch.fps {fps} is not the clips' fps; refused")
    luts: list[str | None] = [None] * len(logs)
    if settings.colour != "off":
        from vgkit.finish.colour import MAX_GAIN, lutrgb_filter

        matching = record.get("colour_matching")
        transforms = matching.get("transforms") if isinstance(matching, dict) else None
        if not isinstance(transforms, list) or len(transforms) != len(logs):
            raise ArtifactError("manifest.json: stitch.colour_matching.transforms: not one per clip; refused")
        for i, t in enumerate(transforms):
            where = f"manifest.json: stitch.colour_matching.transforms[{i}]"
            if not isinstance(t, dict):
                raise ArtifactError(f"{where}: not a record; refused")
            gain = _numbers(t.get("gain"), f"{where}.gain", low=1 / MAX_GAIN, high=MAX_GAIN)
            offset = _numbers(t.get("offset"), f"{where}.offset", low=-512, high=512)
            luts[i] = lutrgb_filter(np.array(gain), np.array(offset))
    return settings, luts
