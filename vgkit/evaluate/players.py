"""Video players for notebooks and pages: one player, or side-by-side players that play in sync.

Videos are never embedded: each ``<video>`` loads its file through a URL relative to the page
(``base``, by default the kernel's working directory, which JupyterLab sets to the notebook's
folder). JupyterLab turns such a relative ``src`` into its ``files/`` URL, which streams a file of
any size with range requests (seeking works), in trusted and untrusted notebooks alike, and keeps
the notebook small; a static HTML page next to the runs resolves it the same way. Under each player
a link opens the same file on its own (JupyterLab opens it in a video tab; a page, in a new tab).

``side_by_side`` shows the same shot (one clip index, or the final video) of several runs next to
each other, one player per run labelled with its model. A run without that video (failed, or the
clip never finished) gets a placeholder naming why. The players follow one leader (the one the user
last played, paused or seeked) only where the page's script runs: an untrusted notebook strips it,
so the "in sync" note is written by the script itself and never promised without it.
"""

from __future__ import annotations

import itertools
import json
import os
from html import escape
from pathlib import Path
from urllib.parse import quote

from vgkit.records.artifacts import RunLayout, read_json_object

__all__ = ["side_by_side", "video_player", "video_url"]

# A follower further than this from its leader is seeked to it; closer, its playback rate is nudged.
SYNC_TOLERANCE_S = 0.2
_IDS = itertools.count()

# Leader/follower sync. Every play/pause/seek vgkit makes itself is counted on that video before it
# is made, and its event (asynchronous: it fires after the call returns) is swallowed, so only the
# user's own actions move the leader and nothing echoes. While the leader plays, a timer seeks any
# follower more than TOLERANCE away and nudges the playback rate of one that is slightly off.
_SYNC_JS = """
(function () {
  var group = document.getElementById(%(group)s);
  if (!group || group.dataset.synced) { return; }
  group.dataset.synced = "1";
  var TOLERANCE = %(tolerance)s;
  var videos = Array.prototype.slice.call(group.querySelectorAll("video"));
  if (videos.length < 2) { return; }
  var leader = videos[0];
  var stats = {seeks: 0, corrections: 0};
  group.vgkitSync = stats;
  videos.forEach(function (v) { v.vgkitExpect = {play: 0, pause: 0, seeking: 0}; });
  function expected(v, kind) {
    if (v.vgkitExpect[kind] > 0) { v.vgkitExpect[kind] -= 1; return true; }
    return false;
  }
  function seek(v, t) {
    if (Math.abs(v.currentTime - t) < 0.01) { return; }
    v.vgkitExpect.seeking += 1; stats.seeks += 1; v.currentTime = t;
  }
  function play(v) {
    if (!v.paused) { return; }
    v.vgkitExpect.play += 1;
    var p = v.play();
    if (p && p.catch) { p.catch(function () { v.vgkitExpect.play = 0; }); }
  }
  function pause(v) { if (!v.paused) { v.vgkitExpect.pause += 1; v.pause(); } }
  function followers() { return videos.filter(function (o) { return o !== leader; }); }
  function within(o, t) { return isFinite(o.duration) ? Math.min(t, o.duration) : t; }
  videos.forEach(function (v) {
    v.addEventListener("play", function () {
      if (expected(v, "play")) { return; }
      leader = v;
      followers().forEach(function (o) { seek(o, within(o, v.currentTime)); play(o); });
    });
    v.addEventListener("pause", function () {
      if (expected(v, "pause") || v.ended) { return; }
      leader = v;
      followers().forEach(function (o) { pause(o); seek(o, within(o, v.currentTime)); });
    });
    v.addEventListener("seeking", function () {
      if (expected(v, "seeking")) { return; }
      leader = v;
      followers().forEach(function (o) { seek(o, within(o, v.currentTime)); });
    });
    v.addEventListener("ended", function () {
      if (v !== leader) { return; }
      videos.forEach(function (o) { seek(o, 0); play(o); });
    });
  });
  setInterval(function () {
    if (!document.body.contains(group)) { return; }
    if (leader.paused || leader.seeking) { return; }
    followers().forEach(function (o) {
      if (o.seeking || (isFinite(o.duration) && leader.currentTime >= o.duration)) { return; }
      var drift = o.currentTime - leader.currentTime;
      if (Math.abs(drift) > TOLERANCE) {
        stats.corrections += 1; seek(o, leader.currentTime); o.playbackRate = 1;
      } else {
        o.playbackRate = Math.abs(drift) > 0.04 ? (drift > 0 ? 0.95 : 1.05) : 1;
      }
      play(o);
    });
  }, 250);
  var note = group.querySelector(".vgkit-sync-note");
  if (note) { note.textContent = "in sync: play, pause or seek one and the others follow"; }
})();
"""


def video_url(video: Path, *, base: Path | None = None) -> str:
    """``video``'s URL relative to the page's folder ``base`` (default: the working directory)."""
    relative = os.path.relpath(Path(video).resolve(), (base or Path.cwd()).resolve())
    return quote(Path(relative).as_posix())


def video_player(video: Path, *, base: Path | None = None, width_px: int = 640, loop: bool = True) -> str:
    """HTML for one player of ``video`` (any size) and a link that opens the file itself."""
    url = escape(video_url(video, base=base))
    attributes = 'controls muted playsinline preload="metadata"' + (" loop" if loop else "")
    name = escape(Path(video).name)
    return (
        f'<video src="{url}" width="{width_px}" {attributes}></video>'
        f'<div style="font-size:85%"><a href="{url}" target="_blank">{name}</a> '
        f"({video.stat().st_size / 2**20:.1f} MiB)</div>"
    )


def side_by_side(
    run_dirs: list[Path], *, clip_index: int | None = None, width_px: int = 320, base: Path | None = None
) -> str:
    """HTML with one player per run (clip ``clip_index`` of each, or the final videos), in sync
    where the page's script runs; URLs relative to ``base`` (default: the working directory)."""
    group = f"vgkit-players-{next(_IDS)}"
    cells = []
    for run_dir in run_dirs:
        layout = RunLayout(Path(run_dir))
        video = layout.final if clip_index is None else layout.clip(clip_index)
        label = escape(str((read_json_object(layout.plan) or {}).get("model", layout.root.name)))
        if video.is_file():
            body = video_player(video, base=base, width_px=width_px, loop=False)
        else:
            why = "failure.json" if (layout.root / "failure.json").is_file() else "not generated"
            style = f"width:{width_px}px;padding:2em 0;background:#eee;text-align:center"
            body = f'<div style="{style}">no video ({why})</div>'
        caption = f'<figcaption style="text-align:center">{label}</figcaption>'
        cells.append(f'<figure style="margin:0 .5em 0 0">{body}{caption}</figure>')
    shot = "final video" if clip_index is None else f"clip {clip_index}"
    script = _SYNC_JS % {"group": json.dumps(group), "tolerance": SYNC_TOLERANCE_S}
    return (
        f'<div id="{group}" title="{escape(shot)}: one player per run">'
        f'<div style="display:flex;flex-wrap:wrap;align-items:flex-start">{"".join(cells)}</div>'
        f'<div class="vgkit-sync-note" style="font-size:85%">{escape(shot)} of each run; each player plays on its '
        "own here (the notebook is not trusted, so its sync script does not run)</div></div>"
        f"<script>{script}</script>"
    )
