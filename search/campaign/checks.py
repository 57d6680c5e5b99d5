"""Checks of the values in a campaign file that name something outside it: a tracking store and a folder.

:func:`tracking_uri_problem` judges a tracking URI by its form alone (nothing is contacted);
:func:`check_output_dir` tells whether a campaign directory can be created and written. The schema
(:mod:`search.campaign.config`) calls them while it reads a file and before a campaign writes anything; each
error names the field, the value and what is allowed.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path
from urllib.parse import urlparse

from search.errors import FieldError
from search.paths import directory_problem

__all__ = ["TRACKING_SCHEMES", "check_output_dir", "tracking_uri_problem"]

TRACKING_SCHEMES = ("sqlite", "http", "https", "file", "postgresql", "mysql", "mssql", "databricks",
                    "databricks-uc", "uc")
_TRACKING_ALLOWED = "sqlite:///PATH, http(s)://HOST:PORT, postgresql://..., mysql://..., file:///PATH or databricks"


def tracking_uri_problem(uri: str) -> str | None:
    """Why MLflow cannot use ``uri`` as a tracking store, judged from its form alone (nothing is contacted)."""
    if not uri.strip():
        return f"allowed is {_TRACKING_ALLOWED}"
    parsed = urlparse(uri)
    scheme = parsed.scheme.lower()
    if len(scheme) <= 1:  # a plain path (or a Windows drive letter): MLflow's file store
        return None
    engine = scheme.split("+", 1)[0]
    if engine not in TRACKING_SCHEMES and scheme not in _plugin_schemes():
        return f"unknown scheme {scheme!r}: allowed is {_TRACKING_ALLOWED}"
    if engine in ("http", "https") and not parsed.netloc:
        return f"no host: allowed is {engine}://HOST:PORT"
    if engine == "sqlite" and not uri.startswith("sqlite:///"):
        return "allowed is sqlite:///PATH (three slashes, then the database file; an in-memory store loses the runs)"
    return None


def _plugin_schemes() -> set[str]:
    """Tracking-store schemes that installed MLflow plugins add."""
    try:
        return {ep.name for ep in entry_points(group="mlflow.tracking_store")}
    except Exception:  # a broken plugin's metadata must not break validation
        return set()


def check_output_dir(root: Path, *, source: str, field: str = "output_dir") -> None:
    """:class:`FieldError` when the campaign directory ``root`` cannot be created or written (see
    :func:`search.paths.directory_problem`): ``"<source>: <field> = <root>: allowed is …"``, or
    ``"<field> = <root>: …"`` when ``source`` is empty (a command-line option such as ``--dir``)."""
    problem = directory_problem(Path(root))
    if problem is not None:
        raise FieldError(f"{source}: {field}" if source else field, str(root),
                         f"a directory you can create and write to ({problem})")
