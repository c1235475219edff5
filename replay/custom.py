"""`ledger replay run FILE.py`: fold the whole log through an analyst's own projection.

The interface (see examples/my_projection.py) -- a plain Python module defining:

    def initial() -> State                      # the starting state (any object)
    def apply(state: State, event: dict) -> State | None
        # called once per event in log order; return the new state, or None after
        # changing `state` in place
    def result(state: State) -> JSON-able       # optional; the state itself otherwise

Each event is a fresh dict {position, stream_id, version, type, schema_version, recorded_at
(epoch seconds), payload (dict, upcast to the current schema)}. Optional `TYPES = {...}`
limits the events delivered. The module only ever sees copies read from the log: it cannot
touch the production views or the events.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

from domain.session import upcast
from persistence.store import EventStore
from replay.source import Point, ReplayError


def load_projection(path: str) -> ModuleType:
    p = Path(path)
    if not p.is_file():
        raise ReplayError(f"no projection file {path}")
    spec = importlib.util.spec_from_file_location(f"ledger_projection_{p.stem}", p)
    if spec is None or spec.loader is None:
        raise ReplayError(f"cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name in ("initial", "apply"):
        if not callable(getattr(module, name, None)):
            raise ReplayError(f"{path} must define {name}() (see `ledger replay run --help`)")
    return module


def run_projection(store: EventStore, module: ModuleType, until: Point, after: int = 0) -> Any:
    """Fold the log (after `after`, up to `until`) through the module; returns its result."""
    types = getattr(module, "TYPES", None)
    wanted = set(types) if types else None
    state = module.initial()
    for e in store.iter_all(after=after, until=until.position):
        if wanted is not None and e.type not in wanted:
            continue
        event = {**e.record(), "payload": upcast(e.type, e.schema_version, e.data())}
        new = module.apply(state, event)
        if new is not None:
            state = new
    finish = getattr(module, "result", None)
    return finish(state) if callable(finish) else state
