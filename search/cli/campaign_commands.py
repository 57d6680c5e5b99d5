"""Campaign sub-commands of ``ctmevo``: run, resume, status, sync, lineage, relocate."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from search.cli.base import Command, UsageError, campaign_store, open_campaign, say

if TYPE_CHECKING:
    from search.campaign.loop import Campaign
    from search.lineage import LineageGraph


def _run_campaign(campaign: Campaign, *, offline: bool) -> int:
    from search.errors import CampaignStorageError, SearchError
    from search.tracking.errors import TrackingURIError
    from search.views.summary import summarise
    from workers import ClusterUnreachable, PoolDisconnected, WorkersConfigError

    root = campaign.paths.root
    try:
        campaign.run(offline_ok=offline)
    except CampaignStorageError as exc:
        print(f"ctmevo: {exc}.\nThe campaign stopped; its journal holds every evaluation recorded before. Free "
              f"space or fix the permissions, then: ctmevo resume {root}", file=sys.stderr)
        return 1
    except SearchError as exc:
        raise UsageError(str(exc)) from None
    except WorkersConfigError as exc:  # e.g. a request no node of the cluster can ever hold
        raise UsageError(f"{exc}\nNothing was evaluated. Fix workers.* in {campaign.paths.config}, then: "
                         f"ctmevo resume {root}") from None
    except ClusterUnreachable as exc:
        print(f"ctmevo: cannot reach the Ray cluster: {exc}\nNothing was evaluated. Start the cluster or fix "
              f"workers.address in {campaign.paths.config}, then: ctmevo resume {root}", file=sys.stderr)
        return 1
    except PoolDisconnected as exc:
        print(f"ctmevo: lost the Ray cluster: {exc}\nEvery completed evaluation is saved. When the cluster is "
              f"back: ctmevo resume {root}", file=sys.stderr)
        return 1
    except TrackingURIError as exc:
        raise UsageError(f"{exc}\nNothing was evaluated. Start the tracking server or fix tracking.uri in "
                         f"{campaign.paths.config}, then: ctmevo resume {root}  (or ctmevo resume {root} "
                         "--offline to run now and send the records later with ctmevo sync)") from None
    except KeyboardInterrupt:
        say(f"\nStopped after {campaign.progress.done} evaluations; the state is saved.\n"
            f"Continue with:  ctmevo resume {root}")
        return 130
    best = next(iter(summarise(root, top=1).best), None)  # as `ctmevo status` ranks it, from the index
    uri = campaign.tracking_uri
    say(f"\nCampaign '{campaign.config.name}' finished: {campaign.progress.done} evaluations "
        f"({campaign.progress.failures} failed) in {campaign.progress.elapsed_s:.0f} s.")
    say(f"  campaign directory : {root}")
    if best is not None:
        h, seeds, rung = best["hash"], best["seeds"], best["rung"]
        how = f" (mean of {seeds} seeds, rung {rung})" if seeds > 1 else (
            f" (rung {rung})" if len(campaign.jobs.rungs) > 1 else "")
        say(f"  best genome        : {h}  fitness {best['fitness']:.4f}{how}  (ctmevo lineage {h} --campaign {root})")
    say(f"  archive picture    : {campaign.paths.plots / 'archive.png'}")
    say(f"  archive table      : {campaign.paths.archive_csv}")
    if uri.startswith("sqlite:///"):
        say(f"  MLflow UI          : ctmevo ui {root}  (starts it on a free port and prints where to look: the "
            "evaluations best first, the campaign run, the analysis pages)")
    else:
        from search.tracking.client import campaign_url

        say(f"  MLflow             : {uri}")
        url = campaign_url(uri, campaign.config.tracking.experiment or campaign.config.name, campaign.campaign_id)
        if url:
            say(f"  then open          : {url}  (the evaluations, best first)")
    finish = _finish_report(campaign)
    if finish.get("mlflow_left"):
        say(f"  not yet in MLflow  : {finish['mlflow_left']:,} evaluation(s), kept in the journal; send them "
            f"with: ctmevo sync {root}")
    elif finish.get("mlflow_behind_at_end"):
        say(f"  MLflow             : {finish['mlflow_behind_at_end']:,} record(s) behind when the last evaluation "
            f"ended, all sent {finish['drain_s']:.1f} s later")
    return 0


def _finish_report(campaign: Campaign) -> dict:
    from search.journal import read_json

    path = campaign.paths.consumer_cursor("finish")
    try:
        return dict(read_json(path))
    except (FileNotFoundError, ValueError):
        return {}


def cmd_run(args: argparse.Namespace) -> int:
    from search.campaign.config import check_places, load_campaign_config
    from search.campaign.create import start
    from search.errors import SearchError

    try:
        config = load_campaign_config(Path(args.file))  # every message about the file before anything is created
        check_places(config, source=str(args.file), directory=Path(args.dir) if args.dir else None,
                     field="--dir" if args.dir else "output_dir")
        _check_cluster_answers(config.workers, source=str(args.file))
        if config.open_ended is not None:
            from search.cli.open_ended_commands import run_open_ended

            return run_open_ended(config, directory=Path(args.dir) if args.dir else None, fresh=args.fresh)
        campaign = start(Path(args.file), directory=Path(args.dir) if args.dir else None, fresh=args.fresh)
    except (SearchError, FileNotFoundError) as exc:
        raise UsageError(str(exc)) from None
    return _run_campaign(campaign, offline=args.offline)


def _check_cluster_answers(workers: dict, *, source: str) -> None:
    """Before the campaign directory exists: a ``workers.address`` where nothing answers is an operational
    failure (exit 1) that a plain re-run fixes once the cluster is up."""
    from search.cli.base import OperationalError
    from workers.reach import address_problem

    address = workers.get("address")
    if workers.get("backend", "ray") != "ray" or not isinstance(address, str):
        return
    if address == "auto":
        from workers.cluster_info import bootstrap_address

        address = bootstrap_address(address)
    problem = address_problem(address)
    if problem is not None:
        raise OperationalError(f"{source}: workers.address = {workers['address']!r}: {problem}. Nothing was "
                               "created: start the Ray cluster (ray start --head) or fix workers.address, then run "
                               "the same command again")


def cmd_resume(args: argparse.Namespace) -> int:
    from search.paths import is_open_ended

    if is_open_ended(Path(args.dir)):
        from search.cli.open_ended_commands import resume_open_ended

        return resume_open_ended(Path(args.dir))
    spent = None if args.more else _spent_already(Path(args.dir))  # from the index: no replay of the journal
    if spent is None:
        campaign = open_campaign(args.dir)
        if campaign.finished() and not args.more:
            spent = campaign.spent()
    if spent is not None:
        say(f"{args.dir}: the campaign has already spent its budget (evaluations: {spent}); raise "
            "the budget (evaluations, steps or wall_time_s) in campaign.yaml to continue")
        return 0
    return _run_campaign(campaign, offline=args.offline)


def _spent_already(root: Path) -> str | None:
    """What a campaign whose budget is spent has spent, read from its index (O(1) of its size); None when it is
    not spent, or the index cannot say (then the campaign is opened, which words any problem)."""
    from search.views.summary import summarise

    try:
        s = summarise(root, top=0)
    except Exception:
        return None
    return s.spent() if s.finished and not s.running else None


def cmd_status(args: argparse.Namespace) -> int:
    from genome import Genome
    from search.cli.base import snapshot_hint
    from search.errors import SearchError
    from search.journal import JournalCorruptError, SnapshotCorruptError
    from search.paths import is_open_ended
    from search.records import fmt
    from search.views.summary import summarise

    if is_open_ended(Path(args.dir)):
        from search.cli.open_ended_commands import status_open_ended

        return status_open_ended(Path(args.dir))
    try:
        s = summarise(Path(args.dir), top=args.top)
    except SnapshotCorruptError as exc:
        what = f"{exc.path}: damaged ({exc.reason})" if exc.reason.startswith("no ") else str(exc)
        raise UsageError(f"{what}; {snapshot_hint(Path(args.dir), exc.path)}") from None
    except (SearchError, JournalCorruptError) as exc:
        raise UsageError(str(exc)) from None
    state = "running now" if s.running else ("finished" if s.finished else "stopped")
    say(f"campaign {s.name} ({s.campaign_id}) in {s.root}: {state}")
    pending = "" if s.running or (s.finished and not s.pending) else (
        f", not run (the budget was spent) {s.pending}" if s.finished else f", to re-submit on resume {s.pending}")
    say(f"  evaluations: {s.spent()}, failed {s.failures}{pending}, elapsed {s.elapsed_s:.0f} s")
    for key, value in s.metrics.items():
        say(f"  {key}: {fmt(value)}")
    if s.best:
        say("  best genomes:")
        for b in s.best:
            g = Genome.from_dict(b["genes"])
            how = f" ({b['seeds']} seeds)" if b["seeds"] > 1 else ""
            rung = f" rung {b['rung']}" if b["rung"] else ""
            say(f"    {b['hash']}  fitness {b['fitness']:.4f}{how}{rung}  {g.sizes()} cell={b['cell']}")
    say(f"  archive picture: {s.root / 'plots' / 'archive.png'}")
    lag = f"{s.mlflow_behind:,} evaluation(s) not yet sent" if s.mlflow_behind else "up to date"
    say(f"  tracking: {s.tracking_uri} (MLflow {lag})")
    if s.mlflow_behind and not s.running:
        say(f"  send them: ctmevo sync {s.root}")
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    from search.cli.base import OperationalError
    from search.tracking.errors import TrackingUnavailable, TrackingURIError
    from search.views.reporter import sync
    from search.views.summary import summarise

    if summarise(Path(args.dir)).running:
        raise UsageError(f"{args.dir} is running right now: it sends its records to MLflow itself (see "
                         f"'ctmevo status {args.dir}')")
    campaign = open_campaign(args.dir)
    total, uri = campaign.progress.done, campaign.tracking_uri
    waiting = summarise(Path(args.dir)).mlflow_behind
    try:
        left, error = sync(campaign, finished=campaign.finished())
    except (TrackingUnavailable, TrackingURIError) as exc:
        raise OperationalError(f"the MLflow tracking server at {uri} does not answer ({exc}); nothing was sent: "
                               f"{waiting} evaluation(s) still wait in {campaign.paths.journal}. Start the tracking "
                               f"server (or fix tracking.uri in {campaign.paths.config}), then run again: "
                               f"ctmevo sync {args.dir}") from None
    if left:
        raise OperationalError(f"{total - left} of {total} evaluation(s) are in MLflow at {campaign.tracking_uri}; "
                               f"{left} could not be sent ({error}). Run 'ctmevo sync {args.dir}' again.")
    say(f"all {total} evaluation(s) of {campaign.campaign_id} are in MLflow at {campaign.tracking_uri}")
    return 0


def _depth(text: str) -> int:
    """``--depth``: a whole number >= 0."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: allowed is a whole number >= 0 (generations back)")
    return value


def _index_lineage(args: argparse.Namespace, uri: str) -> LineageGraph | None:
    """The lineage from the campaign's index (see :func:`search.views.index.index_lineage`), or None."""
    import sqlite3

    from search.journal import JournalCorruptError
    from search.views.lookups import index_lineage

    try:
        return index_lineage(Path(args.campaign), args.campaign_id, args.run, args.depth, tracking_uri=uri)
    except (sqlite3.Error, OSError, JournalCorruptError):
        return None  # MLflow, then the journal, answer instead


def cmd_lineage(args: argparse.Namespace) -> int:
    graph = None
    if args.campaign and not args.tracking_uri:  # the campaign's index knows every run id: MLflow is not asked
        args.campaign_id, store = campaign_store(args.campaign)
        gone = store.startswith("sqlite:///") and not Path(store[len("sqlite:///"):]).exists()
        graph = None if gone else _index_lineage(args, store)  # a store that is gone: the journal says so
    graph = graph or _mlflow_lineage(args)
    if args.format == "tree":
        say(graph.to_tree_text())
        return 0
    out = Path(args.out or f"lineage-{args.run[:16]}.{args.format}")
    if args.format == "dot":
        out.write_text(graph.to_dot())
    elif args.format == "html":
        from search.tracking.family import lineage_page

        out.write_text(lineage_page(graph))
    else:
        graph.to_png(out)
    say(f"wrote {out}")
    return 0


def _mlflow_lineage(args: argparse.Namespace) -> LineageGraph:
    """The lineage from MLflow's runs; from the campaign's journal (no run ids) when MLflow cannot be read."""
    from search.campaign.checks import tracking_uri_problem
    from search.cli.base import OperationalError
    from search.lineage import LineageError, lineage_from_records
    from search.tracking.client import down_reason, is_transient, server_down
    from search.tracking.lineages import lineage

    uri = args.tracking_uri  # explicit --tracking-uri, then --campaign, then $MLFLOW_TRACKING_URI
    if args.campaign:
        args.campaign_id, store = campaign_store(args.campaign)
        uri = uri or store
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI")
    if uri is None:
        raise UsageError("say where the runs are: --tracking-uri URI (or --campaign DIR, or MLFLOW_TRACKING_URI)")
    problem = tracking_uri_problem(uri)
    if problem:
        raise UsageError(f"--tracking-uri = {uri!r}: {problem}")
    try:
        if args.campaign and uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).exists():
            raise FileNotFoundError(f"{uri[len('sqlite:///'):]} does not exist")  # never create an empty store
        return lineage(uri, args.run, depth=args.depth, campaign=args.campaign_id)
    except LineageError as exc:
        raise UsageError(str(exc)) from None
    except Exception as exc:
        if not (is_transient(exc) or isinstance(exc, FileNotFoundError)):
            raise
        if not args.campaign:
            raise OperationalError(f"{server_down(uri, exc)}. Start it (or check --tracking-uri), then run the "
                                   "command again") from None
        campaign = open_campaign(args.campaign)
        print(f"ctmevo lineage: MLflow at {uri} cannot be read ({down_reason(exc)}); "
              f"the lineage comes from {campaign.paths.journal} (no run ids)", file=sys.stderr)
        try:
            return lineage_from_records(campaign.records, args.run, depth=args.depth)
        except LineageError as inner:
            raise UsageError(str(inner)) from None


def cmd_relocate(args: argparse.Namespace) -> int:
    from search.tracking.relocate import relocate_store

    target = Path(args.dir)
    database = target if target.is_file() else target / "mlflow.db"
    if not database.is_file():
        raise UsageError(f"{target}: no MLflow store here (expected a campaign directory holding mlflow.db, or the "
                         "database file); a campaign tracked on an MLflow server needs no relocation")
    try:
        changes = relocate_store(database, old=args.old)
    except Exception as exc:  # a locked or damaged database
        raise UsageError(f"{database}: cannot rewrite artifact locations: {exc}") from None
    if not changes:
        say(f"{database}: artifact locations already point at {database.parent / 'mlartifacts'}; nothing to do")
    for change in changes:
        rows = ", ".join(f"{k} {v}" for k, v in change.rows.items())
        say(f"{database}: artifact locations moved from {change.old} to {change.new} ({rows})")
    return 0


def _setup_relocate(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir", help="a campaign directory moved or copied from elsewhere (or its mlflow.db)")
    p.add_argument("--from", dest="old", metavar="OLD_ROOT", help="the artifact root recorded before the move "
                   "(default: every .../mlartifacts root its experiments record)")


def _setup_run(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="campaign YAML file (see experiments/)")
    p.add_argument("--dir", help="campaign directory (default: output_dir from the file, or campaigns/NAME)")
    p.add_argument("--fresh", action="store_true", help="delete an earlier campaign in that directory first")
    _add_offline(p)


def _add_offline(p: argparse.ArgumentParser) -> None:
    p.add_argument("--offline", action="store_true",
                   help="start even if the MLflow server is unreachable; the records wait in the journal and are sent "
                   "when it answers (or by 'ctmevo sync')")


def _setup_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir", help="a campaign directory made by 'ctmevo run'")


def _setup_resume(p: argparse.ArgumentParser) -> None:
    _setup_dir(p)
    _add_offline(p)
    p.add_argument("--more", action="store_true", help=argparse.SUPPRESS)


def _setup_status(p: argparse.ArgumentParser) -> None:
    _setup_dir(p)
    p.add_argument("--top", type=int, default=5, help="how many of the best genomes to list (default 5)")


def _setup_lineage(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="an MLflow run id, or a genome hash (or a unique prefix of one)")
    p.add_argument("--depth", type=_depth, default=None, help="generations to go back (default: to the founders)")
    p.add_argument("--format", choices=("tree", "dot", "html", "png"), default="tree")
    p.add_argument("--out", help="output file for dot/html/png (default lineage-RUN.FORMAT)")
    p.add_argument("--tracking-uri", default=None,
                   help="MLflow tracking URI (default: the --campaign's store, else $MLFLOW_TRACKING_URI)")
    p.add_argument("--campaign", help="read the tracking URI from this campaign directory")
    p.set_defaults(campaign_id=None)


COMMANDS = [
    Command("run", "start a search campaign from a YAML file", _setup_run, cmd_run),
    Command("resume", "continue a stopped campaign exactly where it stopped", _setup_resume, cmd_resume),
    Command("status", "summarise a running or stopped campaign", _setup_status, cmd_status),
    Command("sync", "send MLflow the evaluations it lacks (after the tracking server was away)", _setup_dir,
            cmd_sync),
    Command("lineage", "print or draw the ancestry of an evaluated genome", _setup_lineage, cmd_lineage),
    Command("relocate", "point a moved campaign's MLflow store at the artifacts beside it (also done "
            "automatically when ctmevo opens a moved store)", _setup_relocate, cmd_relocate),
]
