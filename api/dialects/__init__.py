"""One module (or package) per seed system's session API, each exposing a `router`: a
translation into the ledger's commands and views, owning no tables. They share one shape
(api/dialects/common.py): credentials from the request gate, commands through
`api.deps.execute`, views through `common.read_views`."""
