"""The ledger's pure domain: the Session and ExecutionContext aggregates, their past-tense
events and fold (state.py), the commands, the input rules (rules.py), the decision step
(decide.py) and the named errors. No I/O: it imports nothing of the other packages, nor any
database, web, file or thread library (tests/test_architecture.py checks it)."""
