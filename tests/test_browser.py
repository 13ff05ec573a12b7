"""The notebooks as people use them: headless Chromium driving a real JupyterLab on 127.0.0.1.

One JupyterLab server and one browser for the module, serving a copy of the repository (its own
git repository, so ``git status`` shows what running the notebooks changed). Screenshots are kept
in ``runs/browser-tests/`` (``VGKIT_TEST_ARTIFACTS`` moves them), which CI keeps as artifacts.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

from tests.browser import CHROMIUM, Browser, JupyterLab, LabPage, tracebacks
from tests.conftest import REPO

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (scripts/test.sh installs it as root)"),
]

SHOTS = Path(os.environ.get("VGKIT_TEST_ARTIFACTS") or REPO / "runs" / "browser-tests")
SCRATCH = "runs/browser"  # inside the served copy, ignored by git like every run folder


def _git(root: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repository's files (tracked and new, as in this checkout) in a git repository of their own."""
    root = tmp_path_factory.mktemp("lab") / "repo"
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        if (REPO / name).is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, root / name)
    _git(root, "init", "-q")
    _git(root, "add", "-A")
    _git(root, "commit", "-qm", "copy")
    (root / SCRATCH).mkdir(parents=True)
    return root


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The Hub stand-in (tests/hub_server.py) serving the tiny twin's files as wan22, the prefetch
    notebook's default: a stub at the network boundary, the real huggingface_hub client."""
    from tests.hub_server import HubRepo, HubServer
    from vgkit.hub.checkpoints import locate_checkpoint
    from vgkit.models import adapter

    wan = adapter("wan22")
    repo = HubRepo.from_dir(wan.repo_id, locate_checkpoint(adapter("wan22-tiny")))
    with HubServer([repo]) as server:
        yield server.url


@pytest.fixture(scope="module")
def lab(workspace: Path, hub: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabPage]:
    tmp = tmp_path_factory.mktemp("lab-run")
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    env |= {"PYTHONPATH": str(workspace), "HF_HUB_CACHE": str(tmp / "hf-hub-cache"), "HF_HOME": str(tmp / "hf-home")}
    env |= {"HF_ENDPOINT": hub, "HF_HUB_DISABLE_XET": "1", "JUPYTER_CONFIG_DIR": str(tmp / "jupyter-config")}
    server = JupyterLab(workspace, env=env, log=tmp / "jupyterlab.log")
    browser = Browser(tmp)
    try:
        yield LabPage(server, browser, SHOTS)
    finally:
        browser.close()
        server.close()


def test_the_four_notebooks_run_all_on_their_defaults_and_leave_git_clean(lab: LabPage, workspace: Path) -> None:
    """generate first (stitch_export restitches its run), prefetch last (it downloads from the stand-in)."""
    for name in ("generate", "stitch_export", "compare_models", "prefetch"):
        lab.open(f"notebooks/{name}.ipynb")
        started = time.monotonic()
        outputs = lab.run_all()
        print(f"Run All {name}: {time.monotonic() - started:.1f} s")
        lab.screenshot(f"run-all-{name}")
        assert tracebacks(outputs) == [], name
        assert outputs[-1], f"{name}: the last cell did not run"  # Run All stopped early
        lab.save()
    lab.close_all()
    assert _git(workspace, "status", "--porcelain") == ""


def _video(seconds: int, dest: Path, *, size: str, crf: int, noise: int = 0) -> Path:
    from vgkit.finish.encode import ffmpeg_exe

    dest.parent.mkdir(parents=True, exist_ok=True)
    filters = ["-vf", f"noise=alls={noise}:allf=t"] if noise else []
    subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=s={size}:r=24:d={seconds}", *filters,
         "-c:v", "libx264", "-preset", "ultrafast", "-crf", str(crf), "-pix_fmt", "yuv420p", str(dest)],
        check=True,
    )  # fmt: skip
    return dest


PLAYERS_CELLS = [
    "from pathlib import Path\n\nfrom IPython.display import HTML\n\nfrom vgkit.lab.notebook import show_video\n"
    "from vgkit.evaluate.players import side_by_side",
    'show_video(Path("big.mp4"))',
    'HTML(side_by_side([Path("a"), Path("b"), Path("c")]))',
]

_OPEN_LINK = """(async () => {
  document.querySelector('.jp-OutputArea-output a').click();
  await new Promise(r => setTimeout(r, 2000));
  const tabs = Array.from(window.jupyterapp.shell.widgets('main'));
  const tab = tabs[tabs.length - 1];
  const video = tab.node.querySelector('video');
  await video.play();
  await new Promise(r => setTimeout(r, 1500));
  const played = video.currentTime;
  tab.close();
  return [tab.title.label, played];
})()"""

_SPREAD = """(async () => {
  const videos = Array.from(document.querySelectorAll('.jp-OutputArea-output video')).slice(-3);
  const seekings = [0];
  videos.forEach(v => v.addEventListener('seeking', () => { seekings[0] += 1; }));
  await videos[0].play();
  await new Promise(r => setTimeout(r, 500));
  let spread = 0;
  const start = videos[0].currentTime;
  for (let i = 0; i < 50; i++) {
    await new Promise(r => setTimeout(r, 100));
    const times = videos.map(v => v.currentTime);
    spread = Math.max(spread, Math.max(...times) - Math.min(...times));
  }
  const played = videos[0].currentTime - start;
  const before = seekings[0];
  videos[0].pause();
  await new Promise(r => setTimeout(r, 3000));
  const paused = videos.map(v => v.paused);
  videos[1].currentTime = 1.0;  // the user seeks a follower: it leads, the others follow
  await new Promise(r => setTimeout(r, 1500));
  return {spread, played, seeksAfterPause: seekings[0] - before, paused, after: videos.map(v => v.currentTime)};
})()"""


def test_players_play_any_size_untrusted_or_trusted_and_stay_in_sync(lab: LabPage, workspace: Path) -> None:
    import nbclient
    from nbformat.v4 import new_code_cell, new_notebook

    folder = workspace / SCRATCH
    big = _video(6, folder / "big.mp4", size="640x360", crf=6, noise=80)
    assert big.stat().st_size > 20 * 2**20
    clip = _video(10, folder / "a" / "final" / "final_stitched.mp4", size="320x180", crf=30)
    for run in ("b", "c"):
        (folder / run / "final").mkdir(parents=True)
        shutil.copy(clip, folder / run / "final" / "final_stitched.mp4")
    # A papermill-style output: executed outside JupyterLab, never signed, so the lab opens it untrusted.
    nb = new_notebook(
        cells=[new_code_cell(s) for s in PLAYERS_CELLS],
        metadata={"kernelspec": {"name": "vgkit", "display_name": "Python (vgkit)"}},
    )
    nbclient.NotebookClient(nb, resources={"metadata": {"path": str(folder)}}).execute()
    nbformat.write(nb, folder / "players.ipynb")
    assert os.path.getsize(folder / "players.ipynb") < 50_000  # nothing embedded

    lab.open(f"{SCRATCH}/players.ipynb")
    browser = lab.browser
    first = "document.querySelector('.jp-OutputArea-output video')"
    browser.wait_for(f"!!{first}")
    assert "/files/runs/browser/big.mp4" in browser.evaluate(f"{first}.src")
    played = browser.evaluate(
        f"(async () => {{ const v = {first}; await v.play(); await new Promise(r => setTimeout(r, 2000));"
        " v.pause(); return [v.currentTime, v.videoWidth]; })()"
    )
    assert played[0] > 1.0 and played[1] == 640, played
    note = browser.evaluate("document.querySelector('.vgkit-sync-note').textContent")
    assert "each player plays on its own" in note  # untrusted: the sync script was stripped, no promise
    link = browser.evaluate("document.querySelector('.jp-OutputArea-output a').href")
    with urllib.request.urlopen(f"{link}&token={lab.lab.token}", timeout=30) as response:  # files/ URL, any size
        assert response.status == 200 and len(response.read()) == big.stat().st_size
    opened = browser.evaluate(_OPEN_LINK, timeout_s=60)  # the fallback link opens a tab that plays it
    assert opened[0] == "big.mp4" and opened[1] > 1.0, opened
    lab.screenshot("players-untrusted")

    outputs = lab.run_all()  # outputs made in this session are trusted: the sync script runs
    assert tracebacks(outputs) == []
    browser.wait_for("document.querySelector('.vgkit-sync-note').textContent.startsWith('in sync')")
    measured = browser.evaluate(_SPREAD, timeout_s=60)
    print(f"synced players: {measured}")
    browser.evaluate("document.querySelector('.vgkit-sync-note').scrollIntoView()")
    lab.screenshot("players-synced")
    assert measured["played"] > 4.0, measured
    assert measured["spread"] < 0.25, measured
    assert measured["seeksAfterPause"] < 50, measured
    assert measured["paused"] == [True, True, True], measured
    assert all(abs(t - measured["after"][1]) < 0.25 for t in measured["after"]), measured
    lab.close_all()


def test_a_bad_spec_shows_one_line(lab: LabPage, workspace: Path) -> None:
    bad = (workspace / "params" / "demo.yaml").read_text().replace("duration_s: 5\n", "duration_s: 3\n", 1)
    (workspace / SCRATCH / "bad.yaml").write_text(bad)
    lab.open(
        _scratch_notebook(
            workspace, "generate.ipynb", "bad_spec.ipynb", ('"params/demo.yaml"', f'"{SCRATCH}/bad.yaml"')
        )
    )
    outputs = lab.run_all()
    lab.screenshot("bad-spec")
    errors = [o for cell in outputs for o in cell if o["output_type"] == "error"]
    assert len(errors) == 1 and errors[0]["ename"] == "SpecError" and len(errors[0]["traceback"]) == 1
    shown = lab.browser.evaluate(
        "document.querySelector('.jp-OutputArea-output[data-mime-type=\"application/vnd.jupyter.stderr\"]').innerText"
    )
    assert shown.strip().count("\n") == 0 and "duration_s" in shown and "| next:" in shown, shown
    lab.close_all()


def _scratch_notebook(workspace: Path, source: str, name: str, replace: tuple[str, str]) -> str:
    """A copy of a repository notebook in the scratch folder with one parameter changed."""
    nb = nbformat.read(workspace / "notebooks" / source, as_version=4)
    params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    assert replace[0] in params.source
    params.source = params.source.replace(*replace)
    nbformat.write(nb, workspace / SCRATCH / name)
    return f"{SCRATCH}/{name}"


_TYPE = """(async () => {
  const input = document.querySelector('.vgkit-field-shots-0-duration_s input');
  input.value = %s;
  input.dispatchEvent(new Event('change', {bubbles: true}));
  await new Promise(r => setTimeout(r, 1500));
  const save = document.querySelector('button.vgkit-save');
  const error = input.closest('.widget-hbox').querySelector('.vgkit-field-error').innerText;
  return [save.disabled, error];
})()"""


def test_the_editor_disables_save_while_invalid_and_keeps_comments(lab: LabPage, workspace: Path) -> None:
    shutil.copytree(workspace / "params" / "images", workspace / SCRATCH / "images", dirs_exist_ok=True)
    spec = workspace / SCRATCH / "edit.yaml"
    shutil.copy(workspace / "params" / "demo.yaml", spec)
    lab.open(
        _scratch_notebook(workspace, "shot_cards.ipynb", "edit.ipynb", ('"params/demo.yaml"', f'"{SCRATCH}/edit.yaml"'))
    )
    assert tracebacks(lab.run_all()) == []
    browser = lab.browser
    browser.wait_for("!!document.querySelector('.vgkit-field-shots-0-duration_s input')")
    disabled, error = browser.evaluate(_TYPE % json.dumps("3"))
    browser.evaluate("document.querySelector('.vgkit-field-shots-0-duration_s').scrollIntoView()")
    lab.screenshot("editor-invalid")
    assert disabled is True and "shots[0].duration_s = 3" in error, error
    disabled, error = browser.evaluate(_TYPE % json.dumps("6"))
    assert disabled is False and error == ""
    browser.evaluate("document.querySelector('button.vgkit-save').click()")
    browser.wait_for("new Promise(r => setTimeout(() => r(true), 1000))")
    text = spec.read_text()
    assert text.startswith("# The quick-start spec") and "    duration_s: 6\n" in text, text[:600]
    assert (
        text.replace("    duration_s: 6\n", "    duration_s: 5\n", 1)
        == (workspace / "params" / "demo.yaml").read_text()
    )
    lab.screenshot("editor-saved")
    lab.close_all()
