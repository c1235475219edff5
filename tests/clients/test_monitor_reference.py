"""The pytest-monitor dialect beside the reference server (monitor-server-api 1.1.0) on
loopback: one scripted sequence of requests (sessions, metrics, contexts; writes, lists,
counts, prefixes, pages, unknown hashes, bad bodies), then two runs of the real
pytest-monitor client and calls of the reference's own `monitor_api` library, sent to both;
every answer compared (status and body) once ids, times and base paths are normalised
(tests/clients/monitor_reference.py). At least 95 % must be identical, and the cases that
differ must be exactly the ones documented in docs/dialects.md (DIFFERENT below)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.clients import monitor_reference as ref
from tests.clients.test_pytest_monitor import PINS as CLIENT_PINS
from tests.conftest import LiveServer, free_port

pytestmark = [pytest.mark.client, pytest.mark.integration]

CTX_A = {
    "h": "ffe1d4a8b0c34e5f9a7b6c5d4e3f2a1b", "cpu_count": 4, "cpu_frequency": 2445.426,
    "cpu_type": "x86_64", "cpu_vendor": "AMD EPYC", "ram_total": 24105,
    "machine_node": "ci-1", "machine_type": "x86_64", "machine_arch": "64bit",
    "system_info": "Linux - 6.1", "python_info": "3.11.7",
}  # fmt: skip
CTX_B = {**CTX_A, "h": "0a1b2c3d4e5f60718293a4b5c6d7e8f9", "machine_node": "ci-2"}
del CTX_B["cpu_vendor"]  # optional: the reference stores ""
S = [
    ("0041724ff4e0adac62b70b4f810c79fc5ad8ba5b", "2020-12-04T23:18:15.661016", {"numpy": "1.17.1"}),
    ("0041724ff4e0eda589fec62b70b4f810c798ba5b", "2020-12-05T08:00:00",
     {"numpy": "1.17.2", "description": "Trying another numpy version."}),
    ("417204ff40e0adac62b70b4f810c79fc5ad8ba5b", "2021-03-01", {}),
    ("9f0c6e2a4b1d8c7e5f3a2b1c0d9e8f7a6b5c4d3e", "2021-03-02T10:11:12.5", {"k": "v"}),
]  # fmt: skip
PATH_H = "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00"  # posted as POST /sessions/<hash>
# What differs, and why (the table in docs/dialects.md says the same).
DIFFERENT = {
    "POST /sessions/ description not an object": "reference's marshaller nulls its message",
    "GET /sessions/count/ (trailing slash)": "ledger serves both slash forms",
    "POST /sessions/ same hash again": "reference 500 (IntegrityError), ledger 409",
    "POST /contexts/ same context again": "reference 500, ledger 201 appending nothing",
    "POST /contexts/ same h, other content": "reference 500, ledger 409",
    "POST /contexts/ missing fields": "reference 500 (KeyError), ledger 400",
    "POST /sessions/ body not an object": "reference 500, ledger 400",
    "POST /sessions/ without scm_ref": "reference 500 (KeyError), ledger takes null",
    "POST /sessions/ run_date with an offset": "ledger stores the UTC instant",
    "POST /metrics/ unknown session": "reference has no foreign key check on SQLite",
    "POST /metrics/ unknown context": "reference has no foreign key check on SQLite",
    "POST /sessions/ run_date not a date": "reference stores it, then 500",
    "GET /sessions/count after a null scm_ref": "reference counts non-null SCM_REF only",
}


def q(path: str, page: Any = None) -> str:
    """`path` with the page size both servers use here, and `page` when given."""
    return f"{path}?per_page={ref.PAGE}" + ("" if page is None else f"&page={page}")


def metric(i: int, session_h: str, context_h: str, **over: Any) -> dict[str, Any]:
    return {
        "session_h": session_h, "context_h": context_h,
        "item_start_time": f"2020-12-04T23:18:{i:02}.5", "item_path": "tests.test_file",
        "item": f"test_{i}", "item_variant": f"test_{i}[{i}]", "item_fs_loc": "tests/test_file.py",
        "kind": "function", "component": "server" if i % 2 else "",
        "total_time": 0.25 * i, "user_time": i, "kernel_time": 0, "cpu_usage": 0.5,
        "mem_usage": -0.25 * i, **over,
    }  # fmt: skip


def writes() -> list[tuple[str, str, str, Any]]:
    """(label, method, path, JSON body) of the writes both servers take."""
    out: list[tuple[str, str, str, Any]] = []
    for ctx in (CTX_A, CTX_B):
        out.append((f"POST /contexts/ {ctx['h'][:4]}", "POST", "/contexts/", ctx))
    for h, run_date, tags in S:
        body = {"session_h": h, "run_date": run_date, "scm_ref": "4914d1", "description": tags}
        out.append((f"POST /sessions/ {h[:16]}", "POST", "/sessions/", body))
    body = {"run_date": "2021-04-01T00:00:00", "scm_ref": "x", "description": {"a": "b"}}
    out.append(("POST /sessions/<hash>", "POST", f"/sessions/{PATH_H}", body))
    plan = [(0, CTX_A), (0, CTX_A), (1, CTX_B), (0, CTX_A), (1, CTX_B), (0, CTX_A), (3, CTX_B)]
    for i, (s, ctx) in enumerate(plan, 1):
        body = metric(i, S[s][0], str(ctx["h"]))
        out.append((f"POST /metrics/ #{i}", "POST", "/metrics/", body))
    return out


def reads() -> list[tuple[str, str, str, Any]]:
    """(label, method, path, None) of the reads: lists, pages, counts, prefixes, unknowns."""
    paths = [q("/sessions/", p) for p in (None, 2, -1, -2, 3, 0, "abc")]
    paths += ["/sessions/count", "/metrics/count", "/contexts/count", q("/contexts/")]
    paths += [q("/metrics/", p) for p in (None, 2, 3, -1, 4)]
    for h in [h for h, _, _ in S] + [PATH_H]:
        paths += [q(f"/sessions/{h}"), q(f"/sessions/{h}/metrics"), f"/sessions/{h}/metrics/count"]
    paths += [
        q("/sessions/0041"),
        q("/sessions/4"),
        q("/sessions/zz"),
        q(f"/sessions/{S[0][0]}/metrics", 2),
    ]
    for h in (CTX_A["h"], CTX_B["h"]):
        paths += [q(f"/contexts/{h}"), q(f"/contexts/{h}/metrics"), f"/contexts/{h}/metrics/count"]
        paths += [q(f"/contexts/{h[:2]}"), q(f"/contexts/{h}/metrics", 2)]
    paths += [q("/contexts/zz"), q("/contexts/zz/metrics"), "/contexts/zz/metrics/count"]
    paths += [q("/sessions/nope/metrics"), "/sessions/nope/metrics/count"]
    return [(f"GET {p}", "GET", p, None) for p in paths]


def after_runs(context_h: str) -> list[tuple[str, str, str, Any]]:
    """Reads of every page once the clients have added theirs (the runs' times and figures
    normalised): the lists, the counts, the runs' context and its metrics."""
    paths = ["/sessions/count", "/metrics/count", "/contexts/count", f"/contexts/{context_h}"]
    paths += [f"/contexts/{context_h}/metrics/count", q("/contexts/")]
    paths += [q("/sessions/", p) for p in (1, 2, 3, 4, -1)]
    paths += [q("/metrics/", p) for p in range(1, 9)]
    paths += [q(f"/contexts/{context_h}/metrics", p) for p in range(1, 6)]
    return [(f"after the runs: GET {p}", "GET", p, None) for p in paths]


def refused() -> list[tuple[str, str, str, Any]]:
    """Bad input both servers refuse alike (and two cases documented as different)."""
    bad = b"{not json"
    wrong = metric(8, S[0][0], str(CTX_A["h"]), kind=3, user_time="fast", kernel_time=None)
    return [
        ("POST /sessions/ not JSON", "POST", "/sessions/", bad),
        ("POST /metrics/ not JSON", "POST", "/metrics/", bad),
        ("POST /contexts/ not JSON", "POST", "/contexts/", bad),
        ("POST /metrics/ empty object", "POST", "/metrics/", {}),
        ("POST /metrics/ wrong types", "POST", "/metrics/", {**wrong, "cpu_usage": True}),
        ("POST /metrics/ ids not strings", "POST", "/metrics/", {**wrong, "session_h": 5}),
        ("POST /sessions/ description not an object", "POST", "/sessions/",
         {"session_h": "d0", "run_date": "2021-01-01", "scm_ref": "x", "description": "{}"}),
        ("GET /sessions/count/ (trailing slash)", "GET", "/sessions/count/", None),
    ]  # fmt: skip


def divergent() -> list[tuple[str, str, str, Any]]:
    """Writes the ledger's rules answer otherwise than the reference does, last: the
    reference stores some of them, and a stored bad run_date breaks its lists (500)."""
    s0, a = S[0][0], str(CTX_A["h"])

    def session(h: str, **over: Any) -> dict[str, Any]:
        return {"session_h": h, "run_date": "2021-05-01T00:00:00", "scm_ref": "x",
                "description": {}, **over}  # fmt: skip

    no_scm = session("noscm0")
    del no_scm["scm_ref"]
    return [
        ("POST /sessions/ with a null scm_ref", "POST", "/sessions/",
         session("null0", scm_ref=None)),
        ("GET /sessions/count after a null scm_ref", "GET", "/sessions/count", None),
        ("POST /sessions/ same hash again", "POST", "/sessions/", session(s0)),
        ("POST /contexts/ same context again", "POST", "/contexts/", CTX_A),
        ("POST /contexts/ same h, other content", "POST", "/contexts/", {**CTX_A, "ram_total": 1}),
        ("POST /contexts/ missing fields", "POST", "/contexts/", {"h": "c3"}),
        ("POST /sessions/ body not an object", "POST", "/sessions/", [1]),
        ("POST /sessions/ without scm_ref", "POST", "/sessions/", no_scm),
        ("POST /sessions/ run_date with an offset", "POST", "/sessions/",
         session("tz0", run_date="2020-12-04T23:18:15+02:00")),
        ("POST /sessions/ tag values not strings", "POST", "/sessions/",
         session("int0", description={"a": 1, "b": True, "c": 1.5})),
        ("POST /metrics/ empty item", "POST", "/metrics/", metric(9, s0, a, item="")),
        ("POST /metrics/ unknown session", "POST", "/metrics/", metric(10, "unknown", a)),
        ("POST /metrics/ unknown context", "POST", "/metrics/", metric(11, s0, "unknownctx")),
        ("POST /sessions/ run_date not a date", "POST", "/sessions/",
         session("bad0", run_date="yesterday")),
    ]  # fmt: skip


def api_calls(sessions: list[str], context_h: str) -> list[list[Any]]:
    """What the `monitor_api` library is asked: the lists and counts, then each session
    (scripted, or one a pytest-monitor run made) and each context, and unknown ones."""
    calls: list[list[Any]] = [
        ["count_sessions"], ["list_sessions"], ["count_contexts"], ["list_contexts"],
        ["count_metrics"], ["list_metrics"], ["get_session", "zz"], ["get_context", "zz"],
        ["list_session_metrics", "zz"], ["list_context_metrics", "zz"],
    ]  # fmt: skip
    for h in [h for h, _, _ in S] + [PATH_H] + sessions:
        calls += [["get_session", h], ["list_session_metrics", h], ["count_metrics", h]]
    for c in (CTX_A["h"], CTX_B["h"], context_h):
        calls += [["get_context", c], ["list_context_metrics", c], ["count_metrics", None, c]]
    return calls


class Side:
    """One server: its base URL, an HTTP client on it, and its normaliser."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.http = httpx.Client(timeout=30)
        self.norm = ref.Normaliser(httpx.URL(base).path)

    def send(self, method: str, path: str, body: Any, measured: bool = False) -> tuple[int, Any]:
        if isinstance(body, bytes):
            kw: dict[str, Any] = {"content": body, "headers": {"content-type": "application/json"}}
        else:
            kw = {} if body is None else {"json": body}
        r = self.http.request(method, self.base + path, **kw)
        return self.norm.answer(r.status_code, r.text, measured)

    def close(self) -> None:
        self.http.close()


class Tally:
    """Every case: its label, and the two normalised answers."""

    def __init__(self) -> None:
        self.cases: list[tuple[str, Any, Any]] = []

    def add(self, label: str, theirs: Any, ours: Any) -> None:
        self.cases.append((label, theirs, ours))

    def scripted(
        self, theirs: Side, ours: Side, steps: list[tuple[str, str, str, Any]], measured: bool
    ) -> None:
        for label, method, path, body in steps:
            a, b = (
                theirs.send(method, path, body, measured),
                ours.send(method, path, body, measured),
            )
            self.add(label, a, b)

    def exchanges(self, what: str, theirs: list[Any], ours: list[Any], t: Side, o: Side) -> None:
        """A client's exchanges with each server, one case each, in the order it made them."""
        for i in range(max(len(theirs), len(ours))):
            a = t.norm.exchange(theirs[i], True) if i < len(theirs) else None
            b = o.norm.exchange(ours[i], True) if i < len(ours) else None
            first = a or b or ("?", "?")
            self.add(f"{what} #{i + 1} {first[0]} {first[1]}", a, b)

    def differing(self) -> dict[str, tuple[Any, Any]]:
        return {label: (a, b) for label, a, b in self.cases if a != b}


@pytest.fixture(scope="module")
def reference_venv() -> Path:
    return ref.pinned_venv("monitor-reference-venv", ref.REFERENCE_PINS)


@pytest.fixture(scope="module")
def client_venv() -> Path:
    return ref.pinned_venv("monitor-venv", CLIENT_PINS)


@pytest.fixture
def reference(reference_venv: Path, tmp_path: Path) -> Iterator[str]:
    proc = ref.start_reference(reference_venv, tmp_path / "reference", port := free_port())
    yield f"http://127.0.0.1:{port}/api/v1"
    proc.terminate()
    proc.wait(timeout=10)


# pytest-monitor's runs: the second finds the context the first posted; the third has more
# tags, a description, a forced component and module-scoped metrics besides the functions'.
RUNS = (
    ("--tag", "k=v"),
    ("--tag", "k=v"),
    ("--description", "nightly", "--tag", "a=b", "--tag", "c=d", "--force-component", "core",
     "--restrict-scope-to", "function,module", "--parametrization-explicit"),
)  # fmt: skip


def client_runs(tally: Tally, theirs: Side, ours: Side, venv: Path, tmp: Path) -> None:
    """pytest-monitor's RUNS, each against each server."""
    for run, options in enumerate(RUNS, 1):
        out: dict[str, tuple[str, list[Any]]] = {}
        for side, name in ((theirs, "reference"), (ours, "ledger")):
            out[name] = ref.run_pytest_monitor(venv, side.base, tmp / f"{name}-run{run}", options)
            side.norm.learn(out[name][1])
        kept = ["Deactivating" not in out[name][0] for name in ("reference", "ledger")]
        tally.add(f"pytest-monitor run {run} kept reporting", *kept)
        tally.exchanges(
            f"pytest-monitor run {run}", out["reference"][1], out["ledger"][1], theirs, ours
        )


def api_runs(tally: Tally, theirs: Side, ours: Side, venv: Path, tmp: Path) -> None:
    """The same `monitor_api` calls on each server: what each returned, and its exchanges."""
    got: dict[str, tuple[list[Any], list[Any]]] = {}
    for side, name in ((theirs, "reference"), (ours, "ledger")):
        calls = api_calls(list(side.norm.generated), side.norm.contexts[0])
        got[name] = ref.run_monitor_api(venv, side.base, tmp / f"{name}-api", calls)
    labels = [theirs.norm.text(f"{c[0]}{tuple(c[1:])}") for c in calls]
    for label, a, b in zip(labels, got["reference"][0], got["ledger"][0], strict=True):
        tally.add(f"monitor_api {label}", theirs.norm.value(a, True), ours.norm.value(b, True))
    tally.exchanges("monitor_api", got["reference"][1], got["ledger"][1], theirs, ours)


def test_the_dialect_answers_as_the_reference_server(
    reference: str, live_server: LiveServer, reference_venv: Path, client_venv: Path,
    tmp_path: Path,
) -> None:  # fmt: skip
    theirs = Side(reference)
    ours = Side(f"{live_server.url}/compat/monitor/k/{live_server.key}/api/v1")
    tally = Tally()
    tally.scripted(theirs, ours, [(f"empty: {c[0]}", *c[1:]) for c in reads()], False)
    tally.scripted(theirs, ours, writes() + reads() + refused(), False)
    client_runs(tally, theirs, ours, client_venv, tmp_path)
    api_runs(tally, theirs, ours, reference_venv, tmp_path)
    tally.scripted(theirs, ours, after_runs(theirs.norm.contexts[0]), True)
    tally.scripted(theirs, ours, divergent(), False)
    theirs.close()
    ours.close()

    differing = tally.differing()
    total, same = len(tally.cases), len(tally.cases) - len(differing)
    print(f"\npytest-monitor dialect vs monitor-server-api 1.1.0: {same}/{total} identical")
    for label, (a, b) in differing.items():
        print(f"  differs: {label}\n    reference {a!r:.300}\n    ledger    {b!r:.300}")
    assert len({label for label, _, _ in tally.cases}) == total  # each case named once
    assert set(differing) == set(DIFFERENT)
    assert same >= 0.95 * total
    assert all(b is None or b[-2] < 500 for _, _, b in tally.cases if isinstance(b, tuple))
