"""What can go wrong with a tracking store, as errors the rest of ctmevo catches without importing MLflow."""

from __future__ import annotations

__all__ = ["TrackingURIError", "TrackingUnavailable"]


class TrackingURIError(RuntimeError):
    """The tracking URI cannot be used at start-up (bad scheme, unreachable server, unwritable store)."""

    def __init__(self, uri: str, reason: str) -> None:
        self.uri, self.reason = uri, reason
        super().__init__(f"MLflow tracking URI {uri!r} is unusable: {reason}. Check tracking.uri in the "
                         "campaign file (e.g. sqlite:///<dir>/mlflow.db or http://host:port) and that the "
                         "server is up.")


class TrackingUnavailable(RuntimeError):
    """The store did not answer (connection refused, timeout, locked database): try the same batch later."""
