"""Files shared by every HTML page of a tracking store: one copy of plotly.js per store, not one per page.

The copy is an artifact of one run (``ctmevo.kind = assets``, ``ctmevo.asset = plotly-<version>``) in the
experiment :data:`EXPERIMENT`, created the first time a campaign connects to the store. Analysis pages
(:mod:`search.views.analysis`) load it from ``<server>/get-artifact?path=plotly.min.mjs&run_uuid=<run>``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from search.tracking.client import ensure_experiment

__all__ = ["EXPERIMENT", "PLOTLY_FILE", "plotly_run", "plotly_source"]

EXPERIMENT = "ctmevo-assets"
TAG_ASSET = "ctmevo.asset"
PLOTLY_FILE = "plotly.min.mjs"  # .mjs: MLflow serves it as text/javascript (a .js artifact is sent as text/plain)


def plotly_source() -> Path:
    """plotly.js as the installed plotly package ships it."""
    import plotly

    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def plotly_run(client: Any, uri: str) -> str:
    """The id of the run holding this plotly version's ``plotly.min.mjs`` in ``uri``'s store (made if missing)."""
    import plotly

    from search.tracking.payload import TAG_KIND, TAG_NOTE

    experiment_id = ensure_experiment(client, uri, EXPERIMENT)
    name = f"plotly-{plotly.__version__}"
    found = client.search_runs([experiment_id], f"tags.`{TAG_ASSET}` = '{name}' and attributes.status = 'FINISHED'",
                               max_results=1)
    if found:
        return found[0].info.run_id
    run = client.create_run(experiment_id, run_name=name, tags={
        TAG_KIND: "assets", TAG_ASSET: name,
        TAG_NOTE: f"plotly.js {plotly.__version__}, shared by the analysis pages of every ctmevo campaign in this "
                  "store (they load it from here instead of embedding 4.8 MB each)."})
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / PLOTLY_FILE
        copy.write_bytes(plotly_source().read_bytes())
        client.log_artifact(run.info.run_id, str(copy))
    client.set_terminated(run.info.run_id, "FINISHED")  # only a complete copy is ever found
    return run.info.run_id
