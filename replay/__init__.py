"""Replay and audit tools for analysts and auditors: they only read the log (and write
fresh tables or files), reusing the domain fold and the projection classes."""
