"""One version: pyproject.toml's, which the package metadata carries (agent_backend.__version__) and the
chart's appVersion (the image tag it defaults to) and the OpenAPI document repeat."""
from __future__ import annotations

import tomllib
from importlib import resources

import yaml

import agent_backend
from tests.support import paths


def test_the_package_metadata_carries_pyprojects_version():
    pyproject = tomllib.loads((paths.SERVICE / "pyproject.toml").read_text())
    assert agent_backend.__version__ == pyproject["project"]["version"]


def test_the_charts_app_version_is_the_services():
    chart = yaml.safe_load((paths.CHART / "Chart.yaml").read_text())
    assert str(chart["appVersion"]) == agent_backend.__version__


def test_the_openapi_document_is_the_services_version():
    doc = yaml.safe_load(resources.files("agent_backend").joinpath("openapi.yaml").read_text(encoding="utf-8"))
    assert str(doc["info"]["version"]) == agent_backend.__version__
