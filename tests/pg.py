"""The throwaway PostgreSQL cluster the tests start: it lives in bench/pgcluster.py, since
the benchmark starts one too (and bench/ must not import from tests/)."""

from bench.pgcluster import PgCluster, find_bindir

__all__ = ["PgCluster", "find_bindir"]
