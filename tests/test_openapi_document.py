"""The OpenAPI document as a client generator reads it: every component name and every
operationId names one thing, so no generated model or function is silently dropped."""

from __future__ import annotations

import typing
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from fastapi.routing import APIRoute
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
