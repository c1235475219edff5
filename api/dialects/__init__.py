"""One package per seed system's session API, each exposing a `router`: a translation into
the ledger's commands and views, owning no tables. Every package has the same shape:
`__init__` (joins the job modules' routers into `router`), `shape` (fields, checks, the error
shape, paths) and one module per job; what they all share is api/dialects/common.py
(credentials from the request gate, commands through `api.deps.execute`, views through
`common.read_views`)."""
