"""Fixtures of the contract tests; they live in tests/contract/examples.py with the helpers."""
from tests.contract.examples import deploy, example, server  # noqa: F401  (pytest fixtures)
