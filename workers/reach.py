"""Does anything answer at a Ray cluster's address? Asked before ``ray.init``, which waits minutes on a dead one.

``ray.init(address="host:port")`` keeps retrying a GCS that does not answer (several minutes with Ray's
defaults), so a mistyped ``workers.address`` or a stopped head node looked like a hang. :func:`address_problem`
opens one TCP connection with a short timeout first and says what went wrong, in words.
"""

from __future__ import annotations

import socket

__all__ = ["REACH_TIMEOUT_S", "address_problem", "host_port"]

REACH_TIMEOUT_S = 5.0


def host_port(address: str) -> tuple[str, int] | None:
    """``(host, port)`` of ``"host:port"`` or ``"ray://host:port"`` (IPv6 in brackets), else ``None``."""
    text = address.strip()
    if text.startswith("ray://"):
        text = text[len("ray://"):]
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


def address_problem(address: str, *, timeout_s: float = REACH_TIMEOUT_S) -> str | None:
    """``None`` when a TCP connection to ``address`` opens within ``timeout_s``; else why not, in words.

    Addresses that are not ``host:port`` (``"auto"``) are left to Ray (``None``).
    """
    target = host_port(address)
    if target is None:
        return None
    host, port = target
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return None
    except socket.gaierror as exc:
        return f"the host name {host!r} does not resolve ({exc.strerror or exc})"
    except TimeoutError:
        return f"nothing answered on {host}:{port} within {timeout_s:g} s"
    except ConnectionRefusedError:
        return f"connection refused on {host}:{port} (no Ray head node listens there)"
    except OSError as exc:
        return f"cannot connect to {host}:{port} ({exc.strerror or exc})"
