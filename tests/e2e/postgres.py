"""A throwaway PostgreSQL server on loopback for the tests, started and stopped by pid.

Debian's ``postgresql`` package (``apt-get install -y postgresql``) provides ``initdb`` and ``postgres``;
``initdb`` refuses to run as root, so as root the cluster is made and served as the ``postgres`` user (via
``runuser``). The server listens on 127.0.0.1 only, on a free port, with its socket in its own folder, and
trusts local connections (a test database, gone with the folder).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from tests.search.mlflow_helpers import free_port

__all__ = ["Postgres", "postgres_binaries"]


def postgres_binaries() -> Path | None:
    """The folder holding ``initdb`` and ``postgres``, or None when PostgreSQL is not installed."""
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    for folder in [*candidates, *(Path(p) for p in os.environ.get("PATH", "").split(os.pathsep))]:
        if (folder / "initdb").exists() and (folder / "postgres").exists():
            return folder
    return None


class Postgres:
    """``start()`` → :attr:`uri` (``postgresql://postgres@127.0.0.1:PORT/mlflow``); ``stop()`` by pid, then its
    folder (a fresh one under the system's temp dir: pytest's own folders are closed to the ``postgres`` user)
    is deleted. With ``root`` (a folder the ``postgres`` user can reach), the database lives there and is kept:
    a later ``start()`` serves it again (a benchmark that is stopped and run again)."""

    def __init__(self, root: Path | None = None) -> None:
        self.keep = root is not None
        self.root = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix="ctmevo-pg-"))
        kept = self.root / "port"  # a kept database keeps its address (campaigns name it in their files)
        self.port = int(kept.read_text()) if self.keep and kept.is_file() else free_port()
        if self.keep:
            self.root.mkdir(parents=True, exist_ok=True)
            kept.write_text(str(self.port))
        self.bin = postgres_binaries()
        self._proc: subprocess.Popen | None = None
        self.uri = f"postgresql://postgres@127.0.0.1:{self.port}/mlflow"

    def _as_postgres(self, command: list[str]) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command

    def start(self) -> Postgres:
        assert self.bin is not None, "PostgreSQL is not installed"
        data = self.root / "data"
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        fresh = not (data / "PG_VERSION").exists()
        if fresh:
            made = subprocess.run(self._as_postgres([str(self.bin / "initdb"), "-D", str(data), "-A", "trust", "-U",
                                                     "postgres", "--no-sync"]), capture_output=True, text=True)
            if made.returncode != 0:
                raise RuntimeError(f"initdb failed: {made.stderr.strip()[-1000:]}")
        log = (self.root / "server.log").open("ab")
        self._proc = subprocess.Popen(self._as_postgres([
            str(self.bin / "postgres"), "-D", str(data), "-h", "127.0.0.1", "-p", str(self.port), "-k",
            str(self.root), "-c", "fsync=off"]), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while True:
            ready = subprocess.run([str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                                   capture_output=True)
            if ready.returncode == 0:
                break
            if self._proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL did not start: {(self.root / 'server.log').read_text()[-2000:]}")
            time.sleep(0.2)
        if fresh:
            subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-c",
                            "CREATE DATABASE mlflow"], check=True, capture_output=True)
        return self

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            os.killpg(self._proc.pid, signal.SIGINT)  # PostgreSQL's fast shutdown
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self._proc.pid, signal.SIGKILL)
                self._proc.wait()
        if not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)
