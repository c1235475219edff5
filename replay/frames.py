"""Tables of records for the analysts' Python API (replay/analysis.py): rows as dicts, and
the same rows as a pandas or Polars DataFrame when that package is installed (neither is a
dependency of the ledger; a clear ImportError says what to install)."""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from types import ModuleType
from typing import Any

import orjson

# Columns whose values are JSON objects (dicts). pandas keeps them as objects; Polars gets
# them as JSON text, since their fields differ from row to row (`.str.json_decode()`).
JSON_COLUMNS = frozenset({"payload", "tags", "attributes", "visible_time", "results"})


def _module(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise ImportError(
            f"to_{name}() needs {name}, which the ledger does not install: pip install {name}"
        ) from exc


class Table:
    """Rows of one shape: `records()` gives them as dicts of `columns`; `to_pandas()` and
    `to_polars()` as a DataFrame (times as timezone-aware UTC datetimes)."""

    columns: tuple[str, ...] = ()

    def records(self) -> Iterable[dict[str, Any]]:
        raise NotImplementedError

    def to_pandas(self) -> Any:
        """A pandas DataFrame of `records()`, one column per name in `columns`."""
        pd = _module("pandas")
        return pd.DataFrame.from_records(list(self.records()), columns=list(self.columns))

    def to_polars(self) -> Any:
        """A Polars DataFrame of `records()`; JSON-object columns as JSON text."""
        pl = _module("polars")
        rows = [
            tuple(
                orjson.dumps(r[c]).decode() if c in JSON_COLUMNS and r[c] is not None else r[c]
                for c in self.columns
            )
            for r in self.records()
        ]
        return pl.DataFrame(rows, schema=list(self.columns), orient="row", infer_schema_length=None)
