"""Lineages read from MLflow: the evaluation run of a genome, then its parents' runs, back to the founders.

``lineage(uri, "3f2a9c")`` finds the evaluation run (by run id, or by genome-hash prefix through the tag
``ctmevo.genome_hash``), then walks ``ctmevo.parent_hashes`` back to the founders (runs without parents) inside the
same campaign, and returns a :class:`search.lineage.LineageGraph` (the graph, its walk and renderers live there,
free of MLflow; :func:`search.lineage.lineage_from_records` builds the same graph from a journal).
"""

from __future__ import annotations

import re

from mlflow import MlflowClient
from mlflow.entities import Run
from mlflow.exceptions import MlflowException

from search.lineage import MAX_CANDIDATES, AmbiguousHashError, LineageError, LineageGraph, LineageNode, walk
from search.tracking.client import active_experiments
from search.tracking.client import client as mlflow_client
from search.tracking.payload import (
    TAG_BIRTH,
    TAG_CAMPAIGN,
    TAG_CELL,
    TAG_HASH,
    TAG_INHERITED,
    TAG_OPERATOR,
    TAG_PARENT_HASHES,
    TAG_PARENT_RUN_IDS,
    TAG_STATUS,
)

__all__ = ["lineage"]

_HEX = re.compile(r"^[0-9a-f]+$")


def lineage(tracking_uri: str, run_id_or_hash: str, depth: int | None = None, *,
            campaign: str | None = None) -> LineageGraph:
    """The ancestry of an evaluation run (a run id, or a genome hash or unique prefix of one).

    ``depth`` limits how many generations back to go (``None``: to the founders; ``0``: the run alone).
    ``campaign`` narrows a hash search to one campaign. Raises :class:`LineageError` for an unknown run or
    hash and :class:`AmbiguousHashError` (listing the candidates) for a prefix matching several genomes.
    """
    if depth is not None and depth < 0:
        raise ValueError(f"depth = {depth}: allowed is None (to the founders) or an integer >= 0")
    if campaign is not None and not re.match(r"^[A-Za-z0-9_.:\-]{1,200}$", campaign):
        raise LineageError(f"campaign = {campaign!r}: allowed are 1-200 letters, digits, '_', '.', ':' or '-'")
    client = mlflow_client(tracking_uri)
    start = _resolve(client, tracking_uri, run_id_or_hash.strip().lower(), campaign)
    experiment, camp = start.info.experiment_id, start.data.tags[TAG_CAMPAIGN]

    def fetch(hashes: list[str], children: list[LineageNode]) -> dict[str, LineageNode | None]:
        run_ids = sorted({rid for c in children for rid in c.parent_run_ids})
        return {h: None if run is None else _node(run) for h, run in _fetch(client, experiment, camp, hashes,
                                                                           run_ids).items()}

    graph = walk(_node(start), fetch, depth, tracking_uri)
    graph.experiment_id = experiment
    return graph


def _split(value: str | None) -> list[str]:
    return [v for v in (value or "").split(",") if v]


def _node(run: Run) -> LineageNode:
    tags = run.data.tags
    birth = tags.get(TAG_BIRTH)
    return LineageNode(genome_hash=tags[TAG_HASH], run_id=run.info.run_id, campaign=tags.get(TAG_CAMPAIGN, ""),
                       fitness=run.data.metrics.get("fitness"), operator=tags.get(TAG_OPERATOR, ""),
                       birth=int(birth) if birth and birth.isdigit() else None, status=tags.get(TAG_STATUS, ""),
                       parents=tuple(_split(tags.get(TAG_PARENT_HASHES))), genes=dict(run.data.params),
                       parent_run_ids=tuple(_split(tags.get(TAG_PARENT_RUN_IDS))), cell=tags.get(TAG_CELL),
                       inherited=tags.get(TAG_INHERITED, ""))


def _fetch(client: MlflowClient, experiment: str, campaign: str, hashes: list[str],
           run_ids: list[str]) -> dict[str, Run | None]:
    """Runs for parent ``hashes``: by the run ids the children recorded (batched), else by the hash tag."""
    found: dict[str, Run | None] = {}
    for i in range(0, len(run_ids), 100):
        quoted = ", ".join(f"'{rid}'" for rid in run_ids[i:i + 100])
        for run in client.search_runs([experiment], f"attributes.run_id IN ({quoted})", max_results=1000):
            h = run.data.tags.get(TAG_HASH)
            if h in hashes and run.data.tags.get(TAG_CAMPAIGN) == campaign:
                found[h] = run
    for h in hashes:
        if h not in found:
            hits = client.search_runs([experiment], f"tags.`{TAG_CAMPAIGN}` = '{campaign}' and "
                                      f"tags.`{TAG_HASH}` = '{h}'", order_by=["attributes.start_time ASC"],
                                      max_results=1)
            found[h] = hits[0] if hits else None
    return found


def _resolve(client: MlflowClient, uri: str, key: str, campaign: str | None) -> Run:
    if not key or not _HEX.match(key):
        raise LineageError(f"{key!r} is neither a run id (32 hex digits) nor a genome hash (hex)")
    if len(key) == 32:
        try:
            run = client.get_run(key)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            raise LineageError(f"no run with id {key} in {uri}") from None
        if TAG_HASH not in run.data.tags or TAG_CAMPAIGN not in run.data.tags:
            raise LineageError(f"run {key} in {uri} is not a ctmevo evaluation run (no {TAG_HASH} tag; "
                               "a campaign run has no ancestry)")
        return run
    experiments = active_experiments(client)
    query = f"tags.`{TAG_HASH}` LIKE '{key}%'"
    if campaign:
        query += f" and tags.`{TAG_CAMPAIGN}` = '{campaign}'"
    runs = client.search_runs(experiments, query, order_by=["attributes.start_time ASC"],
                              max_results=200) if experiments else []
    distinct: dict[tuple[str, str], Run] = {}
    for run in runs:
        distinct.setdefault((run.data.tags[TAG_HASH], run.data.tags.get(TAG_CAMPAIGN, "")), run)
    if not distinct:
        where = f" in campaign {campaign}" if campaign else ""
        raise LineageError(f"no evaluation run with genome hash {key!r}{' (prefix)' if len(key) < 16 else ''}"
                           f"{where} in {uri} ({len(experiments)} experiment(s) searched)")
    if len(distinct) > 1:
        raise AmbiguousHashError(key, [
            {"genome_hash": h, "campaign": c, "run_id": r.info.run_id, "fitness": r.data.metrics.get("fitness")}
            for (h, c), r in list(distinct.items())[:MAX_CANDIDATES]])
    return next(iter(distinct.values()))
