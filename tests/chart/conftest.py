"""Fixtures shared by the chart tests: which helm, and which values files exist."""
from __future__ import annotations

import pytest

from tests.support import helm as helm_support
from tests.support import paths


@pytest.fixture(params=helm_support.HELMS)
def helm(request) -> str:
    """Each pinned helm binary in turn ("helm4", "helm3"); a missing binary fails, never skips."""
    helm_support.helm_binary(request.param)
    return request.param


def pytest_generate_tests(metafunc):
    # `values_file`: every values file, found by globbing, so new examples are picked up.
    if "values_file" in metafunc.fixturenames:
        files = helm_support.values_files()
        assert files, "no values files found"
        metafunc.parametrize("values_file", files,
                             ids=[str(f.relative_to(paths.ROOT)) for f in files])
