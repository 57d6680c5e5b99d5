"""Run notes for a writer that logs one record at a time: the MLflow reads they need, and the writes.

The note's content is decided by :func:`search.tracking.payload.evaluation_note` from plain
:class:`~search.tracking.payload.Relative` nodes; this module only finds those nodes in MLflow (a parent's run
by id or by hash, a run's children by the ``ctmevo.parent_hashes`` tag) for a writer that does not hold the
journal. A writer that holds the journal builds the nodes from records instead (``Relative.of_record``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from mlflow import MlflowClient
from mlflow.entities import Run

import search.tracking.payload as mp

__all__ = ["note_of", "parent_runs", "refresh_parent_notes", "set_experiment_tags"]


def parent_runs(client: MlflowClient, experiment_id: str, campaign: str, hashes: Sequence[str],
                known_ids: Sequence[str] = ()) -> dict[str, Run | None]:
    """The runs of parents ``hashes`` (in order, once each; None for one not in MLflow): one search by run id
    for those in ``known_ids``, one search by hash for each other."""
    hashes = list(dict.fromkeys(hashes))
    ids = sorted({rid for rid in known_ids if rid})
    found: dict[str, Run] = {}
    for i in range(0, len(ids), 100):
        quoted = ", ".join(f"'{rid}'" for rid in ids[i:i + 100])
        for run in client.search_runs([experiment_id], f"attributes.run_id IN ({quoted})", max_results=100):
            found.setdefault(run.data.tags.get(mp.TAG_HASH, ""), run)
    for h in hashes:
        if h not in found:
            runs = client.search_runs([experiment_id], f"tags.`{mp.TAG_CAMPAIGN}` = '{campaign}' and "
                                      f"tags.`{mp.TAG_HASH}` = '{h}'", order_by=["attributes.start_time ASC"],
                                      max_results=1)
            if runs:
                found[h] = runs[0]
    return {h: found.get(h) for h in hashes}


def note_of(client: MlflowClient, experiment_id: str, campaign: str, campaign_run_id: str | None,
            me: mp.Relative, parents: Mapping[str, Run | None]) -> str:
    """``me``'s note: its ``parents`` as given, its children as MLflow has them now (one search, the best first)."""
    children = client.search_runs(
        [experiment_id], f"tags.`{mp.TAG_CAMPAIGN}` = '{campaign}' and "
        f"tags.`{mp.TAG_PARENT_HASHES}` LIKE '%{me.genome_hash}%'", order_by=["metrics.`fitness` DESC"],
        max_results=mp.CHILDREN_SHOWN + 1)
    return mp.evaluation_note(me, experiment_id=experiment_id, campaign_run_id=campaign_run_id,
                              parents={h: mp.Relative.of_run(r) if r else None for h, r in parents.items()},
                              children=[mp.Relative.of_run(r) for r in children])


def refresh_parent_notes(client: MlflowClient, experiment_id: str, campaign: str, campaign_run_id: str | None,
                         parents: Mapping[str, Run | None]) -> None:
    """Rewrite the note of each parent run (after a child's run was written): per parent, one search for its own
    parents, one for its children, one ``set_tag``."""
    for run in parents.values():
        if run is None:
            continue
        me = mp.Relative.of_run(run)
        known = run.data.tags.get(mp.TAG_PARENT_RUN_IDS, "").split(",")
        grand = parent_runs(client, experiment_id, campaign, me.parents, known)
        note = note_of(client, experiment_id, campaign, campaign_run_id, me, grand)
        client.set_tag(run.info.run_id, mp.TAG_NOTE, note)


def set_experiment_tags(client: MlflowClient, experiment_id: str, campaign: str, campaign_run_id: str) -> None:
    """Set :func:`~search.tracking.payload.experiment_tags` where they differ (one read, a write per change)."""
    wanted = mp.experiment_tags(campaign=campaign, experiment_id=experiment_id, campaign_run_id=campaign_run_id)
    have = client.get_experiment(experiment_id).tags
    for key, value in wanted.items():
        if have.get(key) != value:
            client.set_experiment_tag(experiment_id, key, value)
