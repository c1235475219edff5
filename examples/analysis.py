# %% [markdown]
# # Analysing a ledger from Python
#
# A notebook in `# %%` cells (Jupyter, VS Code and Spyder open it as one; `python3
# examples/analysis.py [LEDGER]` runs it whole). It opens a ledger read-only, so it can run
# beside a live server: nothing here can change the log or the views.
#
# `LEDGER` is a SQLite file or a database URL; without it, `LEDGER_DATABASE_URL` as for the
# `ledger` command (default `var/ledger.db`). pandas is optional: `pip install pandas`.

# %%
from __future__ import annotations

import sys
from collections import Counter
from datetime import date

from replay import open_ledger

where = sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("-") else None
ledger = open_ledger(where)
head = ledger.head()
print(f"log head: {head.size} events, root {head.root_base64}")

# %% [markdown]
# ## The events, one by one
# Each is an `Event`: position and leaf index, stream (session) id and version, type, when
# it was recorded (UTC), its payload (upcast to the current schema) and its chain hash.

# %%
kinds = Counter(e.type for e in ledger.events())
print("events by type:", dict(kinds.most_common()))
first = next(iter(ledger.events()), None)
if first is not None:
    print("first event:", first.position, first.type, first.stream_id, first.recorded_at)

# %% [markdown]
# ## Stats as of a past moment
# The same numbers `ledger replay stats --as-of` prints: the log replayed up to that point
# through the live projection classes. `as_of` takes a date, a datetime, epoch seconds (a
# float) or a log position (an int).

# %%
as_of = date.fromisoformat(sys.argv[2]) if len(sys.argv) > 2 else None
stats = ledger.stats(as_of=as_of, by=["day", "status"])
print(f"as of log position {stats.point.position}: {stats.active_now} active")
for g in stats.groups:
    print(" ", g["key"]["day"], g["key"]["status"], g["count"], "sessions")

# %% [markdown]
# ## DataFrames
# `to_pandas()` (or `to_polars()`) on events, sessions or stats; times are UTC datetimes.

# %%
try:
    sessions = ledger.sessions(as_of=as_of).to_pandas()
except ImportError as exc:
    print(exc)
else:
    print(sessions[["id", "status", "project", "duration"]].to_string(index=False))
    by_project = sessions.groupby("project", dropna=False)["duration"].agg(["count", "mean"])
    print(by_project)

# %%
ledger.close()
