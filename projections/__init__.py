"""Read models built only from the event log: list, detail, count and stats views, the
runner that applies events to them exactly once, and the queries that read them."""
