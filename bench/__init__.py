"""Benchmarks for Session Ledger: baselines measured in the same run as the service.

`bench.run` is the service benchmark (its parts in `bench.part_*`, the server under test in
`bench.server`, the table in `bench.figures`); `bench.baselines` names the baselines and
measures them alone (`bench.baseline_noop`, `bench.baseline_sqlite` over `bench.event_rows`,
`bench.baseline_library`). HTTP load comes from `bench.load` (wrk, or `bench.pyload`) with
scripts from `bench.lua`; `bench.procs` starts and stops processes; `bench.seed` builds the
cached logs; `bench.hostile` is the hostile-load run.
"""
