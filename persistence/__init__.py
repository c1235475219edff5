"""Adapters around the pure domain: the event store (SQLite or PostgreSQL), the blob store,
SQLite checkpoints, process runtime helpers, the command service with its group-commit
writer (`persistence.ledger`), and the settings every process reads."""
