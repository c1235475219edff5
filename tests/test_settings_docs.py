"""docs/operations.md's configuration table names every LEDGER_* variable the code reads,
with its default."""

from __future__ import annotations

import functools
import re
from dataclasses import fields

from domain.rules import Limits
from persistence.settings import BodyLimits
from tests.conftest import ROOT

NAME = re.compile(r"LEDGER_[A-Z_]*[A-Z]")
# Where the code that reads settings lives: the shipped packages, the benchmark, the examples.
SOURCES = ("domain", "persistence", "projections", "replay", "api", "bench", "examples")


@functools.cache
def names_in_code() -> frozenset[str]:
    """Every LEDGER_* name in the code, with the LEDGER_MAX_* names made from the limits'
    fields (persistence/settings.py `_from_env`)."""
    found: set[str] = set()
    for package in SOURCES:
        for path in (ROOT / package).rglob("*.py"):
            found.update(NAME.findall(path.read_text()))
    found.update(NAME.findall((ROOT / "dev.py").read_text()))
    found.update(f"LEDGER_{f.name.upper()}" for f in fields(BodyLimits))
    found.update(f"LEDGER_MAX_{f.name.upper()}" for f in fields(Limits))
    return frozenset(n for n in found if not n.endswith("_MAX"))


def documented() -> dict[str, str]:
    """The configuration table's rows: variable -> default cell."""
    rows: dict[str, str] = {}
    for line in (ROOT / "docs" / "operations.md").read_text().splitlines():
        m = re.match(r"\| `(LEDGER_[A-Z_]+)` \| ([^|]+) \|", line)
        if m:
            rows[m.group(1)] = m.group(2).strip()
    return rows


def test_every_setting_in_the_code_is_in_the_operations_table() -> None:
    missing = sorted(names_in_code() - set(documented()))
    assert not missing, f"add to docs/operations.md's configuration table: {missing}"


def test_every_row_names_a_real_setting_and_a_default() -> None:
    rows = documented()
    assert not sorted(set(rows) - names_in_code()), "documented but read nowhere"
    assert all(default for default in rows.values())
