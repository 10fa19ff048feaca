"""checksum/config and checksum/secret pod annotations change exactly when their inputs change,
so `helm upgrade` rolls the pods on a config or credential change and only then."""
from __future__ import annotations

import hashlib

import pytest

from tests.support import helm as h
from tests.support import k8s


def checksums(values) -> dict[str, str]:
    meta = h.render(values).get("Deployment")["spec"]["template"]["metadata"]
    ann = meta.get("annotations") or {}
    return {k: ann.get(k) for k in ("checksum/config", "checksum/secret")}


class TestChecksums:
    def test_should_be_stable_for_the_same_values(self):
        assert checksums(k8s.values()) == checksums(k8s.values())

    @pytest.mark.parametrize("change", [
        {"logLevel": "DEBUG"},
        {"environment": "development"},
        {"anthropicModel": "claude-other"},
        {"database": {"host": "other-db"}},
        {"database": {"port": 3307}},
        {"global": {"platformExternalDomain": "other.example.com"}},
    ], ids=["logLevel", "environment", "model", "db-host", "db-port", "domain"])
    def test_should_change_checksum_config_only_when_config_changes(self, change):
        before, after = checksums(k8s.values()), checksums(k8s.values(change))
        assert before["checksum/config"] != after["checksum/config"]
        assert before["checksum/secret"] == after["checksum/secret"]

    @pytest.mark.parametrize("change", [
        {"database": {"password": "rotated"}},
        {"anthropicApiKey": "rotated"},
        {"langchainApiKey": "rotated"},
    ], ids=["db-password", "anthropic", "langchain"])
    def test_should_change_checksum_secret_only_when_a_secret_changes(self, change):
        before, after = checksums(k8s.values()), checksums(k8s.values(change))
        assert before["checksum/secret"] != after["checksum/secret"]
        assert before["checksum/config"] == after["checksum/config"]

    def test_should_change_checksum_secret_when_switching_to_an_existing_secret(self):
        before = checksums(k8s.values())
        after = checksums(k8s.values({"anthropicApiKey": "", "anthropicApiKeyExistingSecretName": "ext"}))
        assert before["checksum/secret"] != after["checksum/secret"]

    def test_should_not_reveal_the_secret_in_the_checksum(self):
        sums = checksums(k8s.values({"database": {"password": "pw"}}))
        assert hashlib.sha256(b"pw").hexdigest() not in sums.values()

    def test_should_keep_checksums_with_user_pod_annotations(self):
        sums = checksums(k8s.values({"podAnnotations": {"checksum/config": "user", "a": "b"}}))
        assert sums["checksum/config"] not in (None, "user")
