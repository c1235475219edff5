"""The OpenAPI document as a client generator reads it: every component name and every
operationId names one thing (so no generated model or function is silently dropped), every
native operation documents its answer and its problem+json refusals, and the answers are
what the document says."""

from __future__ import annotations

import base64
import typing
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import jsonschema_rs
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from pydantic import BaseModel

from api.app import LedgerAPI, create_app
from persistence.settings import Settings


def _app(tmp_path: Path) -> LedgerAPI:
    return create_app(Settings(database_url=f"sqlite:///{tmp_path}/ledger.db"))


def _models(annotation: Any, seen: set[type[BaseModel]]) -> None:
    """Every pydantic model `annotation` names, through unions, containers and fields."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if annotation in seen:
            return
        seen.add(annotation)
        for field in annotation.model_fields.values():
            _models(field.annotation, seen)
        return
    for arg in typing.get_args(annotation):
        _models(arg, seen)


def test_no_two_models_share_a_component_name(tmp_path: Path) -> None:
    app = _app(tmp_path)
    seen: set[type[BaseModel]] = set()
    for route in app.routes:
        if isinstance(route, APIRoute) and route.include_in_schema:
            fields = [route.body_field, route.response_field, *route.response_fields.values()]
            fields += [p for p in route.dependant.body_params]
            for field in fields:
                if field is not None:
                    _models(field.field_info.annotation, seen)
            for response in route.responses.values():
                _models(response.get("model"), seen)
    by_name: dict[str, set[str]] = defaultdict(set)
    for model in seen:
        by_name[model.__name__].add(f"{model.__module__}.{model.__qualname__}")
    clashes = {name: where for name, where in by_name.items() if len(where) > 1}
    assert not clashes, clashes
    schemas = app.openapi()["components"]["schemas"]
    # A clash that slipped through shows as pydantic's module-qualified fallback name.
    assert not [name for name in schemas if "__" in name]
    assert {m.__name__ for m in seen} <= set(schemas)


def test_every_operation_id_is_unique(tmp_path: Path) -> None:
    paths = _app(tmp_path).openapi()["paths"]
    ids = Counter(op["operationId"] for methods in paths.values() for op in methods.values())
    assert len(ids) > 50  # the native API and the five dialects
    assert [name for name, n in ids.items() if n > 1] == []


def _native_operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, op)
        for path, methods in doc["paths"].items()
        if path.startswith("/v1/")
        for method, op in methods.items()
    ]


def test_every_native_operation_documents_its_answer_and_its_problems(tmp_path: Path) -> None:
    doc = _app(tmp_path).openapi()
    problem = doc["components"]["schemas"]["Problem"]
    assert set(problem["required"]) == {"type", "title", "status", "detail"}
    assert "field" in problem["properties"]
    for path, method, op in _native_operations(doc):
        where = f"{method.upper()} {path}"
        success = [code for code in op["responses"] if code.startswith("2")]
        assert len(success) == 1, where
        content = op["responses"][success[0]]["content"]
        schema = next(iter(content.values()))["schema"]
        assert schema.get("$ref") or schema.get("type") == "string", where
        refusals = {code: r for code, r in op["responses"].items() if code[0] in "45"}
        assert {"401", "403", "503"} <= set(refusals), where
        for code, r in refusals.items():
            assert r["content"] == {
                "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
            }, (where, code)


def _conforms(doc: dict[str, Any], path: str, method: str, response: Any) -> None:
    """`response`'s body is what the document says that operation answers with its status."""
    documented = doc["paths"][path][method]["responses"][str(response.status_code)]
    media = response.headers["content-type"].split(";")[0]
    schema = {**documented["content"][media]["schema"], "components": doc["components"]}
    jsonschema_rs.validator_for(schema).validate(response.json())


def test_native_answers_are_what_the_document_says(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    sid = "/v1/sessions/{session_id}"
    calls: list[tuple[str, str, str, dict[str, Any] | None]] = [
        ("post", "/v1/sessions", "/v1/sessions", {"id": "s1", "project": "web"}),
        ("post", sid + "/keepalive", "/v1/sessions/s1/keepalive", {"path": "/a"}),
        ("post", sid + "/hide", "/v1/sessions/s1/hide", {}),
        ("post", sid + "/results", "/v1/sessions/s1/results", {"status": "passed"}),
        ("post", sid + "/annotations", "/v1/sessions/s1/annotations", {"text": "note"}),
        ("post", sid + "/artifacts", "/v1/sessions/s1/artifacts", {"kind": "file", "url": "u"}),
        ("post", sid + "/stop", "/v1/sessions/s1/stop", None),
        ("post", sid + "/keepalive", "/v1/sessions/s1/keepalive", {}),  # 409: stopped
        ("get", sid, "/v1/sessions/s1", None),
        ("get", sid, "/v1/sessions/ghost", None),  # 404
        ("get", "/v1/sessions", "/v1/sessions?project=web", None),
        ("get", "/v1/sessions", "/v1/sessions?sort=nope", None),  # 422
        ("get", "/v1/sessions/count", "/v1/sessions/count", None),
        ("get", "/v1/stats", "/v1/stats?by=project", None),
        ("get", sid + "/events", "/v1/sessions/s1/events", None),
        ("get", "/v1/events", "/v1/events?limit=3", None),
        ("get", "/v1/ledger/digest", "/v1/ledger/digest", None),
        ("get", "/v1/log/leaves", "/v1/log/leaves?start=0&end=2", None),
        (
            "get",
            "/v1/log/proof/inclusion",
            "/v1/log/proof/inclusion?leaf_index=0&tree_size=3",
            None,
        ),
        ("get", "/v1/log/proof/consistency", "/v1/log/proof/consistency?first=1&second=3", None),
    ]
    statuses = []
    for method, path, url, body in calls:
        response = client.request(method, url, json=body)
        _conforms(doc, path, method, response)
        statuses.append(response.status_code)
    assert statuses[7:12] == [409, 200, 404, 200, 422]
    assert client.get("/v1/sessions/s1").json()["status"] == "completed"
    unauthorised = client.get("/v1/sessions", headers={"Authorization": "Bearer nope"})
    _conforms(doc, "/v1/sessions", "get", unauthorised)


def test_bad_input_is_documented_as_each_api_answers_it(client: TestClient, admin_key: str) -> None:
    """No operation documents FastAPI's own 422 body; each dialect documents its system's
    status and error shape, and a real refusal there matches what is documented."""
    doc = client.get("/openapi.json").json()
    assert "HTTPValidationError" not in str(doc)
    auth = {"Authorization": "Basic " + base64.b64encode(f"admin:{admin_key}".encode()).decode()}
    ot = {"Authorization": f"OpenTera {admin_key}"}
    calls = [
        ("/compat/canopsis/api/v2/sessions", "/compat/canopsis/api/v2/sessions?limit=0", auth, 400),
        (
            "/compat/lambdatest/automation/api/v1/sessions",
            "/compat/lambdatest/automation/api/v1/sessions?limit=x",
            auth,
            400,
        ),
        (
            "/compat/testmo/api/v1/projects/{project_id}/sessions",
            "/compat/testmo/api/v1/projects/x/sessions?page=0",
            {},
            422,
        ),
        (
            "/compat/monitor/api/v1/sessions/",
            "/compat/monitor/api/v1/sessions/?per_page=x",
            {},
            400,
        ),
        (
            "/compat/opentera/api/user/sessions",
            "/compat/opentera/api/user/sessions?id_session=x",
            ot,
            400,
        ),
        ("/v1/sessions", "/v1/sessions?limit=0", {}, 422),
    ]
    for path, url, headers, status in calls:
        operation = doc["paths"][path]["get"]
        assert str(status) in operation["responses"], path
        response = client.get(url, headers=headers)
        assert response.status_code == status, (url, response.text)
        _conforms(doc, path, "get", response)
