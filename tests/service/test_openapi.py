"""The OpenAPI document describes exactly the routes the app serves."""
from __future__ import annotations

import dataclasses
import re
from importlib import resources

import yaml

from agent_backend.app import create_app
from agent_backend.config import load_config

METHODS = {"get", "post", "put", "patch", "delete"}


def load_document() -> dict:
    text = resources.files("agent_backend").joinpath("openapi.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def app_routes(env) -> set[tuple[str, str]]:
    app = create_app(dataclasses.replace(load_config(env)))  # building the app never touches the DB
    out = set()
    for route in app.router.routes():
        if route.method in ("HEAD", "OPTIONS", "*"):
            continue
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter")
        if path is None:
            continue
        out.add((route.method.lower(), re.sub(r"\{(\w+)(:[^}]*)?\}", r"{\1}", path)))
    return out


def test_document_is_openapi_3():
    doc = load_document()
    assert str(doc["openapi"]).startswith("3.")
    assert doc["info"]["title"] and doc["info"]["version"]


def test_document_matches_route_table(env):
    doc = load_document()
    documented = {(m, p) for p, item in doc["paths"].items() for m in item if m in METHODS}
    served = app_routes(env)
    assert served - documented == set(), "served but not documented"
    assert documented - served == set(), "documented but not served"


def test_every_operation_documents_its_responses(env):
    doc = load_document()
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method not in METHODS:
                continue
            assert op.get("responses"), f"{method.upper()} {path} has no responses"
            if path not in ("/", "/health"):
                assert "401" in {str(k) for k in op["responses"]}, f"{method.upper()} {path} does not document 401"
