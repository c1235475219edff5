"""Which values of a session's events are personal, and what erasure leaves of a session.

A personal value is one the log keeps sealed: the store records a salted commitment to it in
the event (so the hash chain, the Merkle leaves and every proof cover the commitment), and
the value itself where it can be destroyed (persistence/sealing.py). `personal_slots` names
the places of such values in an event's payload; `erased_value` is what a destroyed one
reads as; `scrubbed` is the session state once every personal value of it is gone, which
the `Erased` event applies, and which a fold of the erased events reaches by itself.

Personal: the actor (`by`), the user and the users and participants, the name, remarks,
status and stop reasons, annotation texts, artifact titles, and the values of the tags and
attributes whose keys are named personal (settings: LEDGER_PERSONAL_KEYS). Ids, times,
statuses, kinds, sizes and hashes are not.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

Slot = tuple[str, ...]

DEFAULT_PERSONAL_KEYS = ("email", "user", "username", "lambdatest.account")
# The detail fields a start or an update may carry that hold personal values.
PERSONAL_DETAILS = ("user", "name", "remarks", "users", "participants")
LIST_DETAILS = frozenset({"users", "participants"})
MAPPINGS = ("tags", "attributes")
# Top-level personal fields per event type (besides the details and mappings above).
PERSONAL_FIELDS: dict[str, tuple[str, ...]] = {
    "Started": ("by", *PERSONAL_DETAILS),
    "DetailsUpdated": ("by",),
    "StatusChanged": ("by", "reason"),
    "ArtifactAttached": ("by", "title"),
    "Annotated": ("by", "text"),
    "Stopped": ("by", "reason"),
    "Deleted": ("by", "reason"),
}
SEALED_TYPES = frozenset(PERSONAL_FIELDS)
# The state fields that hold personal values: what `scrubbed` gives and `Erased` may set.
ERASABLE = frozenset(
    {*PERSONAL_DETAILS, *MAPPINGS, "annotations", "artifacts", "end_reason", "created_by",
     "updated_by", "closed_by"}
)  # fmt: skip
# Where a stop's own reason ends up; "expired" is the server's, never a client's.
SERVER_END_REASONS = frozenset({"stopped", "expired"})
_NOTHING: tuple[Any, ...] = (None, "", [])  # nothing personal to seal


def personal_slots(
    event_type: str, payload: dict[str, Any], personal_keys: Iterable[str]
) -> Iterator[Slot]:
    """The slots of `payload` holding personal values (present, not null, not empty)."""
    for name in PERSONAL_FIELDS.get(event_type, ()):
        if payload.get(name) not in _NOTHING:
            yield (name,)
    keys = tuple(personal_keys)
    if event_type == "Started":
        yield from _mapping_slots((), payload, keys)
    elif event_type == "DetailsUpdated" and isinstance(payload.get("changes"), dict):
        changes = payload["changes"]
        for name in PERSONAL_DETAILS:
            if changes.get(name) not in _NOTHING:
                yield ("changes", name)
        yield from _mapping_slots(("changes",), changes, keys)


def _mapping_slots(base: Slot, holder: dict[str, Any], keys: tuple[str, ...]) -> Iterator[Slot]:
    for mapping in MAPPINGS:
        values = holder.get(mapping)
        if isinstance(values, dict):
            for key in keys:
                if values.get(key) not in _NOTHING:
                    yield (*base, mapping, key)


def erased_value(slot: Slot) -> Any:
    """What a destroyed value reads as: an empty list for a list field, else null (a
    mapping's entry is dropped instead: see `is_mapping_entry`)."""
    return [] if slot[-1] in LIST_DETAILS else None


def is_mapping_entry(slot: Slot) -> bool:
    """A slot inside tags or attributes: erased, the entry goes, not just its value."""
    return len(slot) >= 2 and slot[-2] in MAPPINGS


def scrubbed(state: dict[str, Any], personal_keys: Iterable[str]) -> dict[str, Any]:
    """The fields of `state` that hold personal values, as they are once those are erased:
    what a fold of the session's events reads after erasure, whatever the events held."""
    keys = frozenset(personal_keys)
    end_reason = state.get("end_reason")
    out: dict[str, Any] = {name: erased_value((name,)) for name in PERSONAL_DETAILS}
    out.update(
        {
            "created_by": None,
            "updated_by": None,
            "closed_by": None,
            "end_reason": end_reason
            if end_reason is None or end_reason in SERVER_END_REASONS
            else "stopped",
            "annotations": [{**a, "text": None} for a in state.get("annotations", [])],
            "artifacts": [{**a, "title": None} for a in state.get("artifacts", [])],
        }
    )
    for mapping in MAPPINGS:
        out[mapping] = {k: v for k, v in state.get(mapping, {}).items() if k not in keys}
    return out


def blob_names(state: dict[str, Any]) -> list[str]:
    """The content hashes of the session's logs and artifacts, in order, each once."""
    shas = [x.get("sha256") for x in (*state.get("logs", []), *state.get("artifacts", []))]
    return list(dict.fromkeys(s for s in shas if isinstance(s, str)))
