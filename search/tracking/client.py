"""How ctmevo talks to an MLflow tracking store: client settings, experiments, artifact roots, links.

Every module of :mod:`search.tracking` and :mod:`search.export` that opens a client goes through
:func:`client`, so the HTTP retry defaults (:data:`HTTP_DEFAULTS`: a dead server costs about two seconds, not
minutes) and the artifact location of local stores (:func:`artifact_root`) are decided once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Param, ViewType
from mlflow.exceptions import MlflowException

from search.tracking.relocate import follow_moved_store

__all__ = ["HTTP_DEFAULTS", "active_experiments", "artifact_root", "campaign_run", "campaign_url", "client",
           "configure_http_defaults", "down_reason", "ensure_experiment", "first_line", "is_transient", "paged_runs",
           "run_link", "scoped_tracking_uri", "server_down"]

HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                 "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
                 "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",  # no "View run" lines over the live view
                 "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}  # no download bars in the CLI
_CLIENT_ERRORS = {"INVALID_PARAMETER_VALUE", "RESOURCE_ALREADY_EXISTS", "RESOURCE_DOES_NOT_EXIST",
                  "INVALID_STATE", "BAD_REQUEST", "MALFORMED_REQUEST", "INVALID_REQUEST"}


log = logging.getLogger("ctmevo.tracking")


def configure_http_defaults() -> None:
    """Set :data:`HTTP_DEFAULTS` in ``os.environ`` where the user has not set them (read per request)."""
    for key, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(key, value)


def client(uri: str) -> MlflowClient:
    """An MLflow client for ``uri`` (tracking and registry), with :data:`HTTP_DEFAULTS` applied; for a
    ``sqlite:///`` store the database's folder is created first, and a store that moved is pointed at the
    artifacts beside it (:func:`search.tracking.relocate.follow_moved_store`)."""
    configure_http_defaults()
    artifact_root(uri)
    follow_moved_store(uri)  # a campaign directory moved or copied: its artifacts are where the database is now
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def artifact_root(uri: str) -> str | None:
    """Where a new experiment of ``uri`` keeps artifacts: ``mlartifacts`` beside a ``sqlite:///`` database
    (whose folder is created); ``None`` (the server's default) for other stores."""
    if not uri.startswith("sqlite:///"):
        return None
    db = Path(uri[len("sqlite:///"):]).expanduser().resolve()
    db.parent.mkdir(parents=True, exist_ok=True)
    return (db.parent / "mlartifacts").as_uri()


def ensure_experiment(mlflow: MlflowClient, uri: str, name: str) -> str:
    """The id of experiment ``name`` in ``uri``, created (or restored, if deleted) when needed."""
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is None:
        try:
            return mlflow.create_experiment(name, artifact_root(uri))
        except MlflowException as exc:  # created meanwhile by another process
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            experiment = mlflow.get_experiment_by_name(name)
            assert experiment is not None
    if experiment.lifecycle_stage == "deleted":
        mlflow.restore_experiment(experiment.experiment_id)
    return experiment.experiment_id


def active_experiments(mlflow: MlflowClient) -> list[str]:
    """Ids of every active experiment (all pages)."""
    ids: list[str] = []
    token = None
    while True:
        page = mlflow.search_experiments(view_type=ViewType.ACTIVE_ONLY, max_results=1000, page_token=token)
        ids.extend(e.experiment_id for e in page)
        token = page.token
        if not token:
            return ids


def paged_runs(mlflow: MlflowClient, experiment_id: str, filter_string: str) -> Iterator[Any]:
    """Every run of ``experiment_id`` matching ``filter_string``, a page of 1,000 at a time."""
    token = None
    while True:
        page = mlflow.search_runs([experiment_id], filter_string, max_results=1000, page_token=token)
        yield from page
        token = page.token
        if not token:
            return


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` looks like the store being away (retry later), not MLflow rejecting the data."""
    if isinstance(exc, MlflowException):
        return exc.error_code not in _CLIENT_ERRORS
    if isinstance(exc, (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)):
        return False
    return isinstance(exc, (OSError, TimeoutError)) or type(exc).__name__ == "OperationalError"


def first_line(exc: BaseException) -> str:
    """``Type: first line of the message`` (at most 300 characters), for one-line warnings."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300] if text else ''}"


_DOWN_REASONS = (("Connection refused", "connection refused"), ("Name or service not known", "unknown host"),
                 ("nodename nor servname", "unknown host"), ("timed out", "timed out"),
                 ("Read timed out", "timed out"), ("Max retries exceeded", "no answer"),
                 ("Connection reset", "connection reset"), ("Remote end closed", "connection closed"),
                 ("database is locked", "database locked"), ("unable to open database", "cannot open the database"))


def down_reason(exc: BaseException) -> str:
    """Why a tracking store does not answer, in a few words: the connection-refused / timed-out / unknown-host
    buried in MLflow's long retry message, else the exception's first line."""
    text = str(exc)
    return next((short for needle, short in _DOWN_REASONS if needle in text), None) or first_line(exc)


def server_down(uri: str, exc: BaseException) -> str:
    """One line saying that the tracking store at ``uri`` does not answer, and why (:func:`down_reason`)."""
    return f"the MLflow tracking server at {uri} does not answer ({down_reason(exc)})"


@contextlib.contextmanager
def scoped_tracking_uri(uri: str) -> Iterator[None]:
    """Point MLflow's fluent API at ``uri`` for a block, then restore it and ``MLFLOW_TRACKING_URI``.

    ``mlflow.set_tracking_uri`` also writes the environment variable, which child processes inherit; without
    the restore, a later ``ctmevo`` subprocess would silently track into another store.
    """
    import mlflow

    env_before = os.environ.get("MLFLOW_TRACKING_URI")
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous)
        if env_before is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = env_before


def run_link(uri: str | None, experiment_id: str | None, run_id: str | None) -> str | None:
    """A browser link for http(s) tracking servers; None for local stores."""
    if not (uri and run_id and experiment_id) or not uri.startswith(("http://", "https://")):
        return None
    return f"{uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"


def campaign_url(uri: str, experiment_name: str, campaign_id: str) -> str | None:
    """The UI address of a campaign's evaluations, best first (under the server's address, or ``mlflow ui``'s
    default ``http://127.0.0.1:5000`` for a local store); None when the experiment cannot be read."""
    from search.tracking.notes import experiment_url, ui_base

    try:
        experiment = client(uri).get_experiment_by_name(experiment_name)
    except Exception:  # the server is away: the caller prints what it can without the link
        return None
    return None if experiment is None else experiment_url(ui_base(uri), experiment.experiment_id, campaign_id)


def campaign_run(client: Any, experiment_id: str, campaign_id: str, config: Mapping[str, Any]) -> str:
    """The campaign run of ``campaign_id`` (found, marked RUNNING again on resume; else created), with the campaign
    file as params (those not logged yet: MLflow params cannot change) and ``config.yaml``; returns its id."""
    import yaml

    import search.tracking.payload as mp

    runs = client.search_runs([experiment_id], f"tags.`{mp.TAG_KIND}` = 'campaign' and tags.`{mp.TAG_CAMPAIGN}` = "
                              f"'{campaign_id}'", order_by=["attributes.start_time ASC"], max_results=5)
    if runs:
        run_id = runs[0].info.run_id
        if runs[0].info.status != "RUNNING":  # a resumed campaign
            client.update_run(run_id, status="RUNNING")
        existing = runs[0].data.params
    else:
        tags = {mp.TAG_KIND: "campaign", mp.TAG_CAMPAIGN: campaign_id}
        run_id, existing = client.create_run(experiment_id, run_name=campaign_id, tags=tags).info.run_id, {}
    flat = mp.flatten_config(config)
    changed = sorted(k for k, v in flat.items() if k in existing and existing[k] != v  # a budget may grow
                     and not k.startswith("budget."))
    if changed:
        log.warning("campaign config changed since it was first logged (%s); MLflow params cannot change, see "
                    "config.yaml for the current values", ", ".join(changed[:10]))
    for _, params, _ in mp.batches(params=[Param(k, v) for k, v in flat.items() if k not in existing]):
        client.log_batch(run_id, params=params)
    client.log_text(run_id, yaml.safe_dump(json.loads(json.dumps(config, default=str)), sort_keys=False),
                    "config.yaml")
    return run_id
