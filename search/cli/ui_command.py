"""``ctmevo ui CAMPAIGN_DIR``: the MLflow UI of a campaign's store, opened on its evaluations.

A local store (``sqlite:///…``, the default) gets an MLflow server of its own on a free loopback port, started
the fast way (one worker, no job runner: about 5 s instead of 20–25 s), its start shown as it goes; the command
prints the address of the campaign's evaluations (best first), of its campaign run and of its analysis pages,
and serves until Ctrl-C, which stops the server. A campaign tracked on a server (``http://…``) needs nothing
started: the command checks that the server answers and prints the same addresses there. Every link in the
campaign's pages follows the address that serves them, so any port works.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from search.cli.base import Command, OperationalError, UsageError, campaign_store, say

__all__ = ["COMMANDS", "cmd_ui"]

START_TIMEOUT_S = 120.0


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def answers(base: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/health", timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _experiment_name(directory: Path) -> str:
    import yaml

    from search.paths import CampaignPaths

    config = yaml.safe_load(CampaignPaths(directory).config.read_text()) or {}
    return str(((config.get("tracking") or {}).get("experiment")) or config.get("name"))


def _open_ended_store(directory: Path) -> str:
    import yaml

    from search.paths import CampaignPaths, default_tracking_uri

    config = yaml.safe_load(CampaignPaths(directory).config.read_text()) or {}
    return str(((config.get("tracking") or {}).get("uri")) or default_tracking_uri(CampaignPaths(directory)))


def _addresses(base: str, store: str, experiment: str, campaign_id: str, directory: Path
               ) -> list[tuple[str, str]]:
    """(what, URL) of the campaign's evaluations, campaign run and analysis pages under ``base``; for an
    open-ended campaign (``campaign_id`` empty), its run and each task's evaluations and family tree."""
    import json

    import search.tracking.notes as notes
    import search.tracking.payload as mp
    from search.tracking.client import client

    mlflow = client(store)
    found = mlflow.get_experiment_by_name(experiment)
    if found is None:
        return []
    exp = found.experiment_id
    if not campaign_id:
        out = []
        with contextlib.suppress(OSError, ValueError, KeyError):
            run_id = json.loads((directory / "open_ended_run.json").read_text())["run_id"]
            out.append(("open-ended run (tasks, measures)", notes.run_url(exp, run_id, base)))
        for meta in sorted(directory.glob("tasks/*/campaign.json")):
            task = meta.parent.name
            with contextlib.suppress(OSError, ValueError, KeyError):
                out += [(f"{task}: evaluations", notes.experiment_url(base, exp, json.loads(meta.read_text())[
                    "campaign_id"]))]
        return out
    out = [("evaluations, best first", notes.experiment_url(base, exp, campaign_id))]
    runs = mlflow.search_runs([exp], f"tags.`{mp.TAG_KIND}` = 'campaign' and tags.`{mp.TAG_CAMPAIGN}` = "
                              f"'{campaign_id}'", max_results=1)
    if runs:
        run_id = runs[0].info.run_id
        out.append(("campaign run (its description)", notes.run_url(exp, run_id, base)))
        out.append(("family tree", notes.artifact_url(exp, run_id, notes.FAMILY_TREE, base)))
        out += [(page.removesuffix(".html"), notes.artifact_url(exp, run_id, f"analysis/{page}", base))
                for page, _ in notes.ANALYSIS_PAGES]
    return out


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def cmd_ui(args: argparse.Namespace) -> int:
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port {args.port}: allowed is 1-65535, or 0 for a free port")
    directory = Path(args.dir)
    if not directory.is_dir():
        raise UsageError(f"{directory}: no such campaign directory; give one made by 'ctmevo run FILE'")
    from search.paths import is_open_ended

    if is_open_ended(directory):  # the open-ended run and every task's campaign, in one store
        campaign_id, store = "", _open_ended_store(directory)
    else:
        campaign_id, store = campaign_store(args.dir)
    experiment = _experiment_name(directory)
    if store.startswith(("http://", "https://")):
        if not answers(store.rstrip("/"), timeout=5.0):
            raise OperationalError(f"the campaign's tracking server {store} does not answer; start it, then run "
                                   f"'ctmevo ui {args.dir}' again")
        for what, url in _addresses(store.rstrip("/"), store, experiment, campaign_id, directory):
            say(f"  {what:32s} {url}")
        return 0
    if not store.startswith("sqlite:///") or not Path(store[len("sqlite:///"):]).exists():
        raise UsageError(f"{args.dir}: its MLflow store {store} does not exist yet (no evaluation was sent); run or "
                         f"resume the campaign first")
    if args.port and not port_free(args.host, args.port):
        raise UsageError(f"--port {args.port}: {args.host}:{args.port} is in use; choose another port, or leave "
                         "--port out for a free one")
    from search.tracking.client import client

    client(store)  # a moved campaign directory: its store is pointed at the artifacts beside it first
    port = args.port or free_port(args.host)
    base = f"http://{args.host}:{port}"
    artifacts = Path(store[len("sqlite:///"):]).resolve().parent / "mlartifacts"
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", store, "--host", args.host,
               "--port", str(port), "--workers", "1", "--artifacts-destination", str(artifacts)]
    log = Path(directory) / "consumers" / "mlflow-ui.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    say(f"starting the MLflow UI for {store} on {base} (its log: {log})")
    signal.signal(signal.SIGTERM, _interrupt)  # a terminated ctmevo ui stops its server too
    # Ctrl-C stops it even when started where SIGINT is ignored (a shell's background job, nohup)
    signal.signal(signal.SIGINT, _interrupt)
    started = time.monotonic()
    with log.open("ab") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        shown = 0
        while not answers(base):
            if server.poll() is not None:
                tail = log.read_text(errors="replace").strip().splitlines()[-3:]
                raise OperationalError(f"the MLflow server stopped at start (exit {server.returncode}): "
                                       + " | ".join(tail) + f"; see {log}")
            waited = time.monotonic() - started
            if waited > START_TIMEOUT_S:
                raise OperationalError(f"the MLflow server did not answer within {START_TIMEOUT_S:.0f} s; see {log}")
            if waited >= shown + 2:
                shown = int(waited)
                say(f"  … waiting for it to answer ({shown} s)")
            time.sleep(0.2)
        say(f"MLflow UI answers after {time.monotonic() - started:.1f} s. Open:")
        for what, url in _addresses(base, store, experiment, campaign_id, directory):
            say(f"  {what:32s} {url}")
        say("Ctrl-C stops it.")
        server.wait()
        raise OperationalError(f"the MLflow server stopped (exit {server.returncode}); see {log}")
    except KeyboardInterrupt:
        say("\nstopping the MLflow UI")
        return 0
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()


def _setup_ui(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir", help="a campaign directory made by 'ctmevo run' (fixed-task or open-ended)")
    p.add_argument("--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=0, help="port (default: a free one)")


COMMANDS = [Command("ui", "open a campaign's evaluations in the MLflow UI (starts one for a local store)", _setup_ui,
                    cmd_ui)]
