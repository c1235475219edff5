"""The ledger's domain: the Session aggregate, its events and rules, the event store and
the command service that ties them together. Imports nothing from api/ or projections/."""
