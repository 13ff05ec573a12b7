"""Side-by-side video players that play, pause and seek in sync (HTML for notebooks and pages).

``side_by_side`` shows the same shot (one clip index, or the final video) of several runs next to
each other, one ``<video>`` per run labelled with its model. Videos up to ``MAX_EMBED_BYTES`` are
embedded as data URIs so the HTML stands alone; larger ones are linked by path. A run without that
video (failed, or the clip never finished) gets a placeholder naming why.
"""

from __future__ import annotations

import base64
import itertools
import json
from html import escape
from pathlib import Path

from vgkit.artifacts import RunLayout

__all__ = ["MAX_EMBED_BYTES", "side_by_side"]

MAX_EMBED_BYTES = 20 * 2**20
_IDS = itertools.count()

# Any player's play/pause/seek is mirrored on the others; `busy` stops the echo.
_SYNC_JS = """
(function () {
  var group = document.getElementById(%s);
  var videos = Array.prototype.slice.call(group.querySelectorAll("video"));
  var busy = false;
  function others(source, action) {
    if (busy) { return; }
    busy = true;
    try { videos.forEach(function (v) { if (v !== source) { action(v); } }); } finally { busy = false; }
  }
  videos.forEach(function (v) {
    v.addEventListener("play", function () { others(v, function (o) { o.currentTime = v.currentTime; o.play(); }); });
    v.addEventListener("pause", function () { others(v, function (o) { o.pause(); }); });
    v.addEventListener("seeked", function () { others(v, function (o) { o.currentTime = v.currentTime; }); });
  });
})();
"""


def _label(run_dir: Path) -> str:
    plan = RunLayout(run_dir).plan
    if plan.is_file():
        return str(json.loads(plan.read_text()).get("model", run_dir.name))
    return run_dir.name


def _source(video: Path) -> str:
    if video.stat().st_size <= MAX_EMBED_BYTES:
        return "data:video/mp4;base64," + base64.b64encode(video.read_bytes()).decode()
    return video.resolve().as_uri()


def side_by_side(run_dirs: list[Path], *, clip_index: int | None = None, width_px: int = 320) -> str:
    """HTML with one synced player per run: clip ``clip_index`` of each, or the final videos."""
    group = f"vgkit-players-{next(_IDS)}"
    cells = []
    for run_dir in run_dirs:
        layout = RunLayout(Path(run_dir))
        video = layout.final if clip_index is None else layout.clip(clip_index)
        label = escape(_label(layout.root))
        if video.is_file():
            body = (
                f'<video src="{_source(video)}" width="{width_px}" controls loop muted playsinline '
                'preload="auto"></video>'
            )
        else:
            why = "failure.json" if (layout.root / "failure.json").is_file() else "not generated"
            style = f"width:{width_px}px;padding:2em 0;background:#eee;text-align:center"
            body = f'<div style="{style}">no video ({why})</div>'
        caption = f'<figcaption style="text-align:center">{label}</figcaption>'
        cells.append(f'<figure style="margin:0 .5em 0 0">{body}{caption}</figure>')
    shot = "final video" if clip_index is None else f"clip {clip_index}"
    return (
        f'<div id="{group}" style="display:flex;flex-wrap:wrap;align-items:flex-start" '
        f'title="{escape(shot)}: play, pause or seek one and the others follow">{"".join(cells)}</div>'
        f"<script>{_SYNC_JS % json.dumps(group)}</script>"
    )
