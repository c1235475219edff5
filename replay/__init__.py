"""Replay and audit tools for analysts and auditors: they only read the log (and write
fresh tables or files), reusing the domain fold and the projection classes.

`from replay import open_ledger` is the analysts' Python API (replay/analysis.py), imported
on first use so that the CLI's start-up does not pay for it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from replay.analysis import AsOfWarning, Ledger, open_ledger

__all__ = ["AsOfWarning", "Ledger", "open_ledger"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from replay import analysis

        return getattr(analysis, name)
    raise AttributeError(f"module 'replay' has no attribute {name!r}")
