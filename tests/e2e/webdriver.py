"""A minimal W3C WebDriver client over HTTP (urllib only) for Debian's ``chromedriver`` and headless ``chromium``.

Enough for the browser checks: open a URL, wait for text or an element, read text and attributes, click,
switch into an iframe, take a screenshot. No browser is downloaded: ``find_browser`` looks for the system's
``chromium``/``chromedriver`` (``apt-get install chromium chromium-driver``) and returns None without them.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHROME_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-extensions", "--disable-sync",
                "--disable-default-apps", "--no-first-run", "--mute-audio", "--hide-scrollbars",
                "--disable-component-update", "--window-size=1600,1000", "--force-device-scale-factor=1"]
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"


@dataclass(frozen=True)
class Browser:
    chromium: str
    chromedriver: str


def find_browser() -> Browser | None:
    """The system's Chromium and ChromeDriver, or None when either is missing."""
    chromium = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    driver = os.environ.get("CHROMEDRIVER") or shutil.which("chromedriver")
    return Browser(chromium, driver) if chromium and driver else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class WebDriverError(RuntimeError):
    pass


class Session:
    """One headless Chromium driven through ChromeDriver on a loopback port (stopped by :meth:`close`)."""

    def __init__(self, browser: Browser, *, log: Path, timeout: float = 30.0) -> None:
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        with open(log, "ab") as out:
            self.proc = subprocess.Popen([browser.chromedriver, f"--port={self.port}"], stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._call("GET", "/status")
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self._stop_driver()
                    raise WebDriverError(f"chromedriver did not start (see {log})") from None
                time.sleep(0.1)
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": browser.chromium, "args": CHROME_FLAGS}}}}
        self.id = self._call("POST", "/session", caps)["sessionId"]
        self._call("POST", f"/session/{self.id}/timeouts", {"pageLoad": 60000, "script": 30000, "implicit": 0})

    # -- protocol ------------------------------------------------------------------------------------------
    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=90) as response:
                payload = json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            payload = json.loads(exc.read() or b"{}")
            value = payload.get("value") or {}
            raise WebDriverError(f"{method} {path}: {value.get('error')}: {str(value.get('message'))[:300]}") from None
        return payload.get("value") if "sessionId" not in payload else payload

    def _s(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        return self._call(method, f"/session/{self.id}{path}", body)

    # -- page ----------------------------------------------------------------------------------------------
    def open(self, url: str) -> None:
        self._s("POST", "/url", {"url": url})

    def run(self, script: str, *args: Any) -> Any:
        return self._s("POST", "/execute/sync", {"script": script, "args": list(args)})

    def text(self) -> str:
        return str(self.run("return document.body ? document.body.innerText : ''"))

    def wait_for(self, predicate_js: str, *args: Any, timeout: float = 60.0, what: str = "") -> Any:
        """Poll ``predicate_js`` (a function body returning a truthy value when ready) until it holds."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.run(predicate_js, *args)
            if value:
                return value
            if time.monotonic() > deadline:
                raise WebDriverError(f"timed out after {timeout:.0f} s waiting for {what or predicate_js[:80]}; "
                                     f"page text: {self.text()[:600]!r}")
            time.sleep(0.25)

    def wait_text(self, needle: str, timeout: float = 60.0) -> None:
        self.wait_for("return document.body && document.body.innerText.includes(arguments[0])", needle,
                      timeout=timeout, what=f"text {needle!r}")

    def find(self, css: str) -> str:
        return self._s("POST", "/element", {"using": "css selector", "value": css})[ELEMENT]

    def click(self, css: str) -> None:
        self._s("POST", f"/element/{self.find(css)}/click", {})

    def frame(self, css: str | None) -> None:
        """Switch into the iframe matching ``css`` (None: back to the top document)."""
        target = None if css is None else {ELEMENT: self.find(css)}
        self._s("POST", "/frame", {"id": target})

    def screenshot(self, path: Path) -> Path:
        path.write_bytes(base64.b64decode(self._s("GET", "/screenshot")))
        return path

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._s("DELETE", "")
        self._stop_driver()

    def _stop_driver(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
