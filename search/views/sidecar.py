"""The journal's consumers (pictures, MLflow) in a process of their own, for campaigns too large to share a GIL.

In a campaign of many fast evaluations the MLflow consumer's work (building runs, SQLAlchemy, sqlite) is pure
Python: on the driver's threads it competes with the loop for the interpreter lock, so the loop slows down and
MLflow still falls tens of thousands of results behind (issue 25: 29,592 at 100,000 no-op evaluations). Here
the same :class:`~search.views.consumers.ConsumerRunner` objects run in a child process instead, which follows
the same files with the same durable cursors; nothing is sent through the pipe but a few numbers.

Parent side: :class:`ConsumerProcess` starts ``command`` (the campaign room's ``search.campaign.sidecar``),
waits for it to connect to the tracking store, and hands the reporter one :class:`RemoteRunner` per consumer
with the interface the reporter uses of a runner (``wake``, ``behind``, ``stop``, ``error``, ``finished``).

Child side: :func:`serve` runs the runners and speaks one JSON object per line:

- child → parent: ``{"ready": true}`` or ``{"ready": false, "error": ...}`` once connected (or not), then
  ``{"runners": {name: {"done": n, "error": e, "finished": bool}}}`` every half second and on every change;
- parent → child: ``{"stop": name, "status": ..., "final": ..., "give_up_after": ...}``, in the order the
  reporter stops them. End of input (the driver stopped, even by ``kill -9``) stops every consumer where it is
  (``KILLED``): their cursors are on disk, so the next ``resume`` or ``ctmevo sync`` goes on from there.

The child ignores Ctrl-C (a terminal sends it to the whole process group): the driver decides when it stops.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from search.tracking.errors import TrackingURIError
from search.views.consumers import ConsumerRunner

__all__ = ["ConsumerProcess", "RemoteRunner", "serve"]

log = logging.getLogger("ctmevo.consumers")
STATUS_EVERY_S = 0.5
READY_TIMEOUT_S = 300.0  # importing MLflow and creating a store's tables can take a minute on a busy machine
KILLED_WAIT_S = 10.0  # after the driver went away: how long the consumers may finish the batch they are in


class RemoteRunner:
    """A consumer running in the child process, as the reporter sees it (see :class:`ConsumerRunner`)."""

    def __init__(self, name: str, send: Callable[[dict[str, Any]], None]) -> None:
        self.name, self._send = name, send
        self.done = 0
        self.error: str | None = None
        self.finished = threading.Event()

    def start(self) -> None:
        pass  # started by the child

    def wake(self) -> None:
        pass  # the child looks at the journal on its own (search.campaign.sidecar.POLL_S)

    def behind(self, results: int) -> int:
        return max(0, results - self.done)

    def stop(self, *, status: str, final: bool, timeout: float | None, give_up_after: float | None = None) -> bool:
        self._send({"stop": self.name, "status": status, "final": final,
                    "give_up_after": give_up_after if give_up_after is not None else timeout})
        return self.finished.wait(timeout) if timeout else self.finished.is_set()


class ConsumerProcess:
    """The child process running the consumers (see the module docstring)."""

    def __init__(self, command: Sequence[str], *, names: Sequence[str], uri: str, offline_ok: bool) -> None:
        self.command, self.uri, self.offline_ok = list(command), uri, offline_ok
        self.runners = [RemoteRunner(name, self._send) for name in names]
        self._by_name = {r.name: r for r in self.runners}
        self._proc: subprocess.Popen[str] | None = None
        self._ready = threading.Event()
        self._ready_error: str | None = None
        self._send_lock = threading.Lock()

    def start(self) -> list[RemoteRunner]:
        """Start the child and wait until it is connected; raises :class:`TrackingURIError` if it cannot be
        (unless ``offline_ok``: then the consumers retry, the records waiting in the journal)."""
        root = str(Path(__file__).resolve().parents[2])  # the child imports this package from where we did
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
        self._proc = subprocess.Popen([*self.command, *(["--offline-ok"] if self.offline_ok else [])],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, bufsize=1)
        threading.Thread(target=self._read, name="ctmevo-sidecar", daemon=True).start()
        if not self._ready.wait(READY_TIMEOUT_S):
            self.close()
            raise TrackingURIError(self.uri, f"the consumers' process did not start within {READY_TIMEOUT_S:.0f} s")
        if self._ready_error is not None:
            self.close()
            raise TrackingURIError(self.uri, self._ready_error)
        return self.runners

    def _send(self, message: dict[str, Any]) -> None:
        proc = self._proc
        if proc is None or proc.stdin is None:
            return
        with self._send_lock:
            try:
                proc.stdin.write(json.dumps(message) + "\n")
                proc.stdin.flush()
            except (OSError, ValueError):  # the child is gone: _read marks its runners finished
                pass

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            try:
                message = json.loads(line)
            except json.JSONDecodeError:
                continue
            if "ready" in message:
                self._ready_error = None if message["ready"] else str(message.get("error"))
                self._ready.set()
            for name, state in message.get("runners", {}).items():
                runner = self._by_name.get(name)
                if runner is not None:
                    runner.done, runner.error = int(state["done"]), state.get("error")
                    if state.get("finished"):
                        runner.finished.set()
        code = self._proc.wait()
        if not self._ready.is_set():
            self._ready_error = f"the consumers' process ended with exit status {code} before it was ready"
            self._ready.set()
        for runner in self.runners:  # whatever it did not finish waits in the journal (cursors on disk)
            if not runner.finished.is_set():
                runner.error = runner.error or f"the consumers' process ended (exit status {code})"
                runner.finished.set()

    def close(self, timeout: float = 30.0) -> None:
        """End the child: closing its input stops what is still running; killed if it outlasts ``timeout``."""
        proc = self._proc
        if proc is None:
            return
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def serve(make_runners: Callable[[], list[ConsumerRunner]], *, stdin: IO[str] = sys.stdin,
          out: IO[str] | None = None) -> int:
    """The child's side: build and start the runners (``make_runners`` connects to the store and may raise),
    report their progress to ``out``, stop them as told on ``stdin``; returns the exit status."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if out is None:  # the protocol keeps the real stdout; anything else printed goes to stderr
        out = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
        os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    lock = threading.Lock()

    def say(message: dict[str, Any]) -> None:
        with lock:
            out.write(json.dumps(message) + "\n")
            out.flush()

    def tell(some: list[ConsumerRunner]) -> None:
        say({"runners": {r.name: {"done": r.done, "error": r.error, "finished": r.finished.is_set()} for r in some}})

    try:
        runners = make_runners()
    except Exception as exc:
        say({"ready": False, "error": str(getattr(exc, "reason", exc))})
        return 1
    for runner in runners:
        runner.start()
    say({"ready": True})
    by_name = {r.name: r for r in runners}
    ended = threading.Event()

    def report() -> None:
        while True:
            ended.wait(STATUS_EVERY_S)
            tell(runners)
            if ended.is_set():
                return

    reporter = threading.Thread(target=report, name="ctmevo-sidecar-report", daemon=True)
    reporter.start()
    for line in stdin:
        try:
            message = json.loads(line)
            runner = by_name[message["stop"]]
        except (json.JSONDecodeError, KeyError, TypeError):
            log.warning("the consumers' process ignored %r", line[:200])
            continue
        runner.stop(status=message["status"], final=bool(message["final"]), timeout=None,
                    give_up_after=message.get("give_up_after"))
        tell([runner])  # finished: stop() without a timeout returns when its thread has ended
    started = time.monotonic()
    for runner in runners:  # the driver went away (or is done): stop where they are
        if not runner.finished.is_set():
            runner.stop(status="KILLED", final=False, timeout=max(0.0, KILLED_WAIT_S - (time.monotonic() - started)),
                        give_up_after=0.0)
    ended.set()
    reporter.join(5.0)
    return 0
