"""One module per seed system's session API: a translation into the ledger's commands and
views, owning no tables."""
