"""Testmo's shapes: the session as Testmo answers it (`row`, its counts), the expands, the
error shape (`{"message", "errors"}`) and the checks of the list's parameters."""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse

from api.dialects.common import time_param
from api.problems import register_renderer, text_fields
from domain.errors import InvalidCommandError
from projections.present import iso

PREFIX = "/compat/testmo/api/v1"

EXPANDS = ("configs", "field_values", "issues", "milestones", "states", "statuses", "templates",
           "users")  # fmt: skip
SORTS = {"sessions:id": "number", "sessions:name": "name", "sessions:created_at": "started_at",
         "sessions:started_at": "started_at", "sessions:updated_at": "updated_at",
         "sessions:closed_at": "ended_at"}  # fmt: skip
# (count slot, name, is_passed, is_failed, is_final): Testmo's default statuses after
# Untested; the status id is the slot + 1.
SLOTS = [(1, "Passed", True, False, True), (2, "Failed", False, True, True),
         (3, "Retest", False, False, False), (4, "Blocked", False, False, True),
         (5, "Skipped", False, False, True)]  # fmt: skip
SLOT_OF = {name.lower(): slot for slot, name, *_ in SLOTS} | {f"status{n}": n for n in range(1, 25)}
NOT_FINAL = {3}
UNTESTED = {"id": 1, "name": "Untested", "system_name": "untested", "color": None,
            "aliases": ["untested"], "is_untested": True, "is_passed": False,
            "is_failed": False, "is_final": False}  # fmt: skip
# Filters on things the ledger never records: any value matches no session.
ABSENT_FILTERS = ("assignee_id", "config_id", "milestone_id", "state_id", "template_id")


def _render_error(status: int, code: str, detail: str, field: str | None) -> Response:
    errors = {field: [detail]} if field else {}
    return JSONResponse({"message": detail, "errors": errors}, status_code=status)


register_renderer(PREFIX, _render_error, 422, text_fields("message", "errors"))


def _user_id(actor: str | None) -> int | None:
    return int(actor) if actor and actor.isdigit() else None


def counts(result_counts: dict[str, int]) -> dict[str, int]:
    slots = dict.fromkeys(range(1, 25), 0)
    for name, n in result_counts.items():
        slot = SLOT_OF.get(name.lower())
        if slot is not None:
            slots[slot] += n
    out = {"untested_count": result_counts.get("untested", 0)}
    out |= {f"status{s}_count": n for s, n in slots.items()}
    out["success_count"] = slots[1]
    out["failure_count"] = slots[2]
    out["completed_count"] = sum(n for s, n in slots.items() if s not in NOT_FINAL)
    out["total_count"] = sum(result_counts.values())
    return out


def row(doc: dict[str, Any]) -> dict[str, Any]:
    """A ledger session (detail document) as a Testmo session."""
    project = doc.get("project")
    # Only the start and keepalives happened: Testmo shows a never-updated session as null.
    untouched = doc["version"] <= 1 + doc.get("keepalives", 0)
    return {
        "id": doc["number"],
        "project_id": int(project) if project and project.isdigit() else project,
        "template_id": None, "config_id": None, "milestone_id": None, "state_id": None,
        "assignee_id": None, "estimate": None, "forecast": None, "elapsed": None,
        "name": doc.get("name"),
        "is_started": True,
        "is_closed": doc["ended_at"] is not None,
        "issues": [],
        "tags": [f"{k}:{v}" if v else k for k, v in sorted((doc.get("tags") or {}).items())],
        **counts(doc.get("result_counts") or {}),
        "started_at": iso(doc.get("started_at")),
        "created_at": iso(doc.get("started_at")),
        "created_by": _user_id(doc.get("created_by")),
        "updated_at": None if untouched else iso(doc.get("updated_at")),
        "updated_by": None if untouched else _user_id(doc.get("updated_by")),
        "closed_at": iso(doc.get("ended_at")),
        "closed_by": _user_id(doc.get("closed_by")),
    }  # fmt: skip


def parse_expands(request: Request) -> list[str]:
    """`expands=a,b` and repeated `expands=a&expands=b` both work."""
    names = [
        n.strip()
        for v in request.query_params.getlist("expands")
        for n in v.split(",")
        if n.strip()
    ]
    bad = [n for n in names if n not in EXPANDS]
    if bad:
        raise InvalidCommandError(
            f"unknown expands {', '.join(bad)}; one of {', '.join(EXPANDS)}", field="expands"
        )
    return list(dict.fromkeys(names))


def _status(slot: int, name: str, passed: bool, failed: bool, final: bool) -> dict[str, Any]:
    return {
        "id": slot + 1, "name": name, "system_name": name.lower().replace(" ", ""),
        "color": None,  # an instance's colours are its own: the ledger has none
        "aliases": list(dict.fromkeys([name.lower(), f"status{slot}"])),  # the names counted
        "is_untested": False, "is_passed": passed, "is_failed": failed, "is_final": final,
    }  # fmt: skip


def statuses(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Untested, the default statuses, and the custom slots the rows count."""
    custom = sorted(
        {n for r in rows for n in range(6, 25) if r[f"status{n}_count"]}
    )  # slots past the defaults
    return [
        dict(UNTESTED),
        *(_status(*s) for s in SLOTS),
        *(_status(n, f"Status{n}", False, False, True) for n in custom),
    ]


def expand(names: list[str], rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in names:
        if name == "users":
            ids = {r[k] for r in rows for k in ("created_by", "updated_by", "closed_by")}
            out["users"] = [{"id": i, "name": str(i)} for i in sorted(i for i in ids if i)]
        elif name == "statuses":
            out["statuses"] = statuses(rows)
        else:
            out[name] = []  # no session references a config, milestone, template...
    return out


def time_filter(value: str | None, field: str) -> float | None:
    return time_param(value, field, "must be an ISO 8601 time")


def parse_ids(value: str | None, field: str) -> tuple[str, ...]:
    items = tuple(v.strip() for v in (value or "").split(",") if v.strip())
    if not all(v.isdigit() for v in items):
        raise InvalidCommandError(f"{field} must be comma-separated integer ids", field=field)
    return items


def parse_closed(value: str | None) -> bool | None:
    if value is None or value == "":
        return None
    if value.lower() in ("1", "true"):
        return True
    if value.lower() in ("0", "false"):
        return False
    raise InvalidCommandError("is_closed must be 0, 1, true or false", field="is_closed")
