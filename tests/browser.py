"""A real JupyterLab server on 127.0.0.1 and headless Chromium driven over the DevTools protocol.

Chromium (Debian's package; scripts/test.sh installs it) is started with ``--remote-debugging-port=0``
and spoken to with websocket-client (a dependency of jupyter_server). JupyterLab runs with
``expose_app_in_browser`` so a test drives it through its own command registry
(``window.jupyterapp.commands``), as the menus do.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import websocket

__all__ = ["CHROMIUM", "Browser", "JupyterLab", "LabPage"]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(what: str, check: Any, *, timeout_s: float, process: subprocess.Popen[Any] | None = None) -> Any:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what}: the process exited with {process.returncode}")
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise TimeoutError(f"{what}: not ready after {timeout_s} s")


class JupyterLab:
    """``vgkit lab`` of the checkout at ``root`` (its ``jupyter lab`` serves ``root`` on 127.0.0.1
    with a token); ``url(path)`` opens it in the lab. ``env`` must put ``root`` on PYTHONPATH."""

    def __init__(self, root: Path, *, env: dict[str, str], log: Path) -> None:
        self.root = root
        settings = log.parent / "lab-settings"  # no "get notified about Jupyter news?" toast in the screenshots
        (settings / "@jupyterlab" / "apputils-extension").mkdir(parents=True, exist_ok=True)
        (settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings").write_text(
            '{"fetchNews": "false"}'
        )
        self.token = secrets.token_hex(16)
        self.port = _free_port()
        self._log = log.open("w")
        # `vgkit lab` as a user starts it (root_dir, --allow-root, the save hook), plus the test's token.
        argv = [sys.executable, "-m", "vgkit", "lab", "--port", str(self.port), "--",
                f"--IdentityProvider.token={self.token}", "--LabApp.expose_app_in_browser=True",
                f"--LabApp.user_settings_dir={settings}"]  # fmt: skip
        self.process = subprocess.Popen(
            argv, cwd=root, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        _wait("jupyter lab", self._ready, timeout_s=60, process=self.process)

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/status?token={self.token}", timeout=2):
                return True
        except OSError:
            return False

    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/lab?token={self.token}"

    def close(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, 15)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
                self.process.wait()
        self._log.close()


class Browser:
    """Headless Chromium with one page, driven by DevTools protocol commands."""

    def __init__(self, tmp: Path, *, width: int = 1400, height: int = 1000) -> None:
        assert CHROMIUM is not None
        profile = tmp / "chromium-profile"
        profile.mkdir(parents=True)
        argv = [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--remote-debugging-port=0", "--remote-allow-origins=*", f"--user-data-dir={profile}",
                "--autoplay-policy=no-user-gesture-required", "--mute-audio", "--no-first-run", "--disable-breakpad",
                "--disable-crash-reporter",
                f"--window-size={width},{height}", "about:blank"]  # fmt: skip
        self.process = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=(tmp / "chromium.log").open("w"), start_new_session=True
        )
        port_file = profile / "DevToolsActivePort"
        port = _wait("chromium", lambda: port_file.is_file() and port_file.read_text().split("\n")[0], timeout_s=30)
        targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json", timeout=5).read())
        page = next(t for t in targets if t["type"] == "page")
        self._ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=120, suppress_origin=True)
        self._ids = itertools.count(1)
        self.exceptions: list[str] = []
        self.send("Runtime.enable")
        self.send("Page.enable")

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one command and return its result (events met on the way are kept or dropped)."""
        message_id = next(self._ids)
        self._ws.send(json.dumps({"id": message_id, "method": method, "params": params}))
        while True:
            message = json.loads(self._ws.recv())
            if message.get("method") == "Runtime.exceptionThrown":
                self.exceptions.append(json.dumps(message["params"]["exceptionDetails"])[:2000])
            if message.get("id") == message_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message["result"]
                return result

    def evaluate(self, expression: str, *, timeout_s: float = 60) -> Any:
        """The value of a JavaScript expression (awaited if it is a promise), as JSON."""
        self._ws.settimeout(timeout_s + 10)
        result = self.send(
            "Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True, timeout=timeout_s * 1000
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise RuntimeError(f"JavaScript error: {details.get('exception', {}).get('description', details)}")
        return result["result"].get("value")

    def wait_for(self, expression: str, *, timeout_s: float = 60) -> Any:
        return _wait(expression[:80], lambda: self.evaluate(expression), timeout_s=timeout_s)

    def navigate(self, url: str) -> None:
        self.send("Page.navigate", url=url)

    def screenshot(self, dest: Path) -> Path:
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(base64.b64decode(self.send("Page.captureScreenshot", format="png")["data"]))
        return dest

    def close(self) -> None:
        self._ws.close()
        if self.process.poll() is None:
            os.killpg(self.process.pid, 15)
            self.process.wait(timeout=20)


# JavaScript run in the lab page: open a notebook, run it all, read its outputs back as nbformat JSON.
_OPEN = """(async () => {
  const app = window.jupyterapp;
  const widget = await app.commands.execute('docmanager:open', {path: %(path)s, factory: 'Notebook'});
  await widget.context.ready; await widget.sessionContext.ready;
  app.shell.activateById(widget.id);
  return widget.id;
})()"""
_WIDGET = "Array.from(window.jupyterapp.shell.widgets('main')).find(w => w.id === %s)"
_RUN_ALL = """(async () => {
  const app = window.jupyterapp;
  const widget = %(widget)s;
  app.shell.activateById(widget.id);
  await app.commands.execute('notebook:run-all-cells');
  while (widget.sessionContext.session.kernel.status !== 'idle') { await new Promise(r => setTimeout(r, 200)); }
  return true;
})()"""
_OUTPUTS = """(() => {
  const cells = %(widget)s.content.model.cells;
  const out = [];
  for (let i = 0; i < cells.length; i++) {
    const c = cells.get(i);
    out.push(c.type === 'code' ? c.outputs.toJSON() : []);
  }
  return out;
})()"""


class LabPage:
    """The lab open in the browser: open a notebook, Run All, read outputs, save, screenshot."""

    def __init__(self, lab: JupyterLab, browser: Browser, shots: Path) -> None:
        self.lab, self.browser, self.shots = lab, browser, shots
        self.widget = "null"  # JavaScript naming the notebook widget last opened
        browser.navigate(lab.url())
        browser.wait_for("!!(window.jupyterapp && window.jupyterapp.shell && window.jupyterapp.serviceManager)")
        browser.evaluate(
            "Promise.all([window.jupyterapp.serviceManager.ready, window.jupyterapp.restored]).then(() => true)"
        )

    def open(self, path: str) -> None:
        """Open ``path`` (relative to the server root) as a notebook; it becomes ``widget``."""
        widget_id = self.browser.evaluate(_OPEN % {"path": json.dumps(path)}, timeout_s=120)
        self.widget = _WIDGET % json.dumps(widget_id)

    def run_all(self, *, timeout_s: float = 600) -> list[list[dict[str, Any]]]:
        """Run every cell of the current notebook (stops at an error, as the menu does); its outputs."""
        self.browser.evaluate(_RUN_ALL % {"widget": self.widget}, timeout_s=timeout_s)
        outputs: list[list[dict[str, Any]]] = self.browser.evaluate(_OUTPUTS % {"widget": self.widget})
        return outputs

    def save(self) -> None:
        self.browser.evaluate(f"{self.widget}.context.save().then(() => true)")

    def close_all(self) -> None:
        """Close every tab without saving (a test saves what it means to save)."""
        self.browser.evaluate(
            "for (const w of Array.from(window.jupyterapp.shell.widgets('main'))) {"
            " if (w.context) { w.context.model.dirty = false; } w.dispose(); } true"
        )

    def screenshot(self, name: str) -> Path:
        return self.browser.screenshot(self.shots / f"{name}.png")


def tracebacks(outputs: list[list[dict[str, Any]]]) -> list[str]:
    """Every error output and every stderr text holding a Python traceback, as text."""
    found = []
    for cell in outputs:
        for output in cell:
            if output.get("output_type") == "error":
                found.append("\n".join(output.get("traceback", [])))
            elif output.get("name") == "stderr" and "Traceback (most recent call last)" in str(output.get("text")):
                found.append(str(output["text"]))
    return found
