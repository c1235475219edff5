"""The standard views, in the order a batch applies them: the one list the runner is given
(`all_views`) and the classes a second bulk loader may build on its own (`STANDARD_VIEWS`).
Each view is its own module (`view_detail`, `view_list`, `view_count`, `view_stats`) and
implements the one projection protocol (`projections/projection.py`)."""

from __future__ import annotations

from projections.projection import Projection
from projections.view_count import CountView
from projections.view_detail import DetailView
from projections.view_list import ListView
from projections.view_stats import StatsView

# In dependency order: stats reads list rows back when a cell's max leaves it.
STANDARD_VIEWS: tuple[type[Projection], ...] = (DetailView, ListView, CountView, StatsView)


def all_views() -> list[Projection]:
    """In dependency order: stats reads list rows back when a cell's max leaves it."""
    return [kind() for kind in STANDARD_VIEWS]
