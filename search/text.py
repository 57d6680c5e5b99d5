"""How numbers look wherever ``search`` shows them: live view, status, lineage, model cards."""

from __future__ import annotations

from typing import Any

__all__ = ["fmt"]


def fmt(value: Any, digits: int = 4) -> str:
    """A short readable form: ``—`` for a missing value, 4 significant digits for floats, thousands separators
    for large whole numbers (``12,800``), everything else as ``str``."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1e4 and value.is_integer() else f"{value:.{digits}g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
