"""Sensitive values: plain text goes into the chart's Secret, existing Secrets are referenced by
name and key and never copied, and no sensitive string appears anywhere outside a Secret. The tests'
credential table (tests/support/credentials.py) is checked against the chart's and the service's."""
from __future__ import annotations

import json
import shutil

import pytest
import yaml

from agent_backend.config import SECRET_VARS
from tests.support import helm as h
from tests.support import k8s, paths
from tests.support.credentials import CREDENTIALS, Credential, at


def nested(dotted: str, value) -> dict:
    out = value
    for part in reversed(dotted.split(".")):
        out = {part: out}
    return out


def use_existing(credential: Credential, secret_name: str, key: str | None = None) -> dict:
    """Values switching one credential from plain text to an existing Secret."""
    v = k8s.merge(nested(credential.value_path, ""), nested(credential.name_path, secret_name))
    if key is not None:
        v = k8s.merge(v, nested(credential.key_path, key))
    return v


def credential_id(credential: Credential) -> str:
    return credential.id


# One more template for a copy of the chart: prints the chart's credential table into a ConfigMap.
CREDENTIALS_PROBE = """apiVersion: v1
kind: ConfigMap
metadata:
  name: credentials-probe
data:
  credentials: {{ include "agent-backend.secrets.credentials" . | toJson }}
"""


def chart_credentials(values: dict, tmp_path) -> list[dict]:
    """agent-backend.secrets.credentials as the chart renders it for `values` (a copy of the chart,
    in tmp_path, with CREDENTIALS_PROBE added)."""
    chart = tmp_path / "agent-backend"
    shutil.copytree(paths.CHART, chart)
    (chart / "templates" / "credentials-probe.yaml").write_text(CREDENTIALS_PROBE)
    probe = h.render(values, chart=chart).get("ConfigMap", "credentials-probe")
    return yaml.safe_load(probe["data"]["credentials"])


def chart_secrets(objs) -> list[dict]:
    """Opaque Secrets the chart created (not pull-credential Secrets)."""
    return [o for o in objs.of_kind("Secret") if o.get("type", "Opaque") == "Opaque"]


def app_secret_refs(objs) -> dict[str, dict]:
    env = k8s.resolved_env(k8s.app_container(objs), objs)
    return {c.env: env.get(c.env) for c in CREDENTIALS}


class TestPlainTextSecrets:
    def test_should_store_plain_values_in_the_chart_secret_under_contract_keys(self):
        objs = h.render(k8s.values())
        secrets = chart_secrets(objs)
        assert len(secrets) == 1, [k8s.ident(s) for s in secrets]
        data = k8s.secret_data(secrets[0])
        assert data["AGENT_BACKEND_DB_PASSWORD"] == "db-password"
        assert data["ANTHROPIC_API_KEY"] == "anthropic-key"
        assert data["LANGCHAIN_API_KEY"] == "langchain-key"

    def test_should_reference_the_chart_secret_with_secret_key_ref(self):
        objs = h.render(k8s.values())
        secret_name = chart_secrets(objs)[0]["metadata"]["name"]
        container = k8s.app_container(objs)
        env = k8s.env(container)
        for var in (c.env for c in CREDENTIALS):
            ref = k8s.dig(env, var, "valueFrom", "secretKeyRef")
            assert ref and (ref["name"], ref["key"]) == (secret_name, var), (var, env.get(var))

    @pytest.mark.parametrize("tricky", [
        "pä$$\"wörd'\\n{{ not a template }}",
        "  leading and trailing spaces  ",
        "multi\nline\n",
        "0123",
        "true",
        "- not: a list",
    ], ids=["unicode-quotes-braces", "spaces", "newlines", "leading-zero", "yaml-bool", "yaml-syntax"])
    def test_should_store_plain_values_byte_for_byte(self, tricky):
        objs = h.render(k8s.values({"database": {"password": tricky}, "anthropicApiKey": tricky,
                                    "langchainApiKey": tricky}))
        data = k8s.secret_data(chart_secrets(objs)[0])
        for var in (c.env for c in CREDENTIALS):
            assert data[var] == tricky, var


class TestExistingSecrets:
    @pytest.mark.parametrize("credential", CREDENTIALS, ids=credential_id)
    def test_should_reference_the_existing_secret_by_name_and_default_key(self, credential):
        objs = h.render(k8s.values(use_existing(credential, "my-existing")))
        var = credential.env
        assert app_secret_refs(objs)[var] == {"secret": "my-existing", "key": var}

    @pytest.mark.parametrize("credential", CREDENTIALS, ids=credential_id)
    def test_should_use_the_configured_key_of_the_existing_secret(self, credential):
        objs = h.render(k8s.values(use_existing(credential, "vault-synced", "custom-key")))
        var = credential.env
        assert app_secret_refs(objs)[var] == {"secret": "vault-synced", "key": "custom-key"}

    @pytest.mark.parametrize("credential", CREDENTIALS, ids=credential_id)
    def test_should_omit_the_key_from_the_chart_secret(self, credential):
        objs = h.render(k8s.values(use_existing(credential, "my-existing")))
        var = credential.env
        for secret in chart_secrets(objs):
            assert var not in k8s.secret_data(secret), k8s.ident(secret)
        others = [c.env for c in CREDENTIALS if c != credential]
        data = k8s.secret_data(chart_secrets(objs)[0])
        assert set(others) <= set(data)

    def test_should_render_no_chart_secret_data_when_every_credential_is_external(self):
        v = k8s.values(*(use_existing(c, f"ext-{c.id}") for c in CREDENTIALS))
        objs = h.render(v)
        for secret in chart_secrets(objs):
            data = k8s.secret_data(secret)
            assert not set(data) & {c.env for c in CREDENTIALS}, k8s.ident(secret)
        refs = app_secret_refs(objs)
        for c in CREDENTIALS:
            assert refs[c.env] == {"secret": f"ext-{c.id}", "key": c.env}
        # the existing Secrets are referenced, never rendered (copied) by the chart
        rendered = set(objs.names("Secret"))
        assert not rendered & {f"ext-{c.id}" for c in CREDENTIALS}

    def test_should_never_look_up_cluster_secrets(self):
        for tpl in (paths.CHART / "templates").rglob("*"):
            if tpl.is_file():
                assert "lookup" not in tpl.read_text(), f"{tpl.name} uses lookup"

    def test_should_reference_the_existing_db_secret_from_init_containers_too(self):
        (database,) = [c for c in CREDENTIALS if c.id == "database"]
        objs = h.render(k8s.values(use_existing(database, "db-creds", "pw")))
        for c in k8s.init_containers(objs):
            for name, ref in k8s.resolved_env(c, objs).items():
                if "secret" in ref and ref["key"] in ("pw", "AGENT_BACKEND_DB_PASSWORD"):
                    assert ref == {"secret": "db-creds", "key": "pw"}, (c["name"], name)


class TestNoSecretOutsideSecrets:
    @pytest.mark.parametrize("extra", [
        {},
        {"startupProbe": {"enabled": True}, "ingress": {"enabled": True},
         "service": {"type": "NodePort"}},
    ], ids=["defaults", "ingress-nodeport-startup"])
    def test_should_keep_every_sentinel_inside_secret_data_only(self, extra):
        objs = h.render(k8s.sentinel_values(extra))
        leaks = []
        for obj in objs:
            if obj["kind"] == "Secret":
                meta = json.dumps(obj["metadata"])
                leaks += [(k8s.ident(obj) + " metadata", s) for s in k8s.SENTINELS.values()
                          for form in k8s.encodings(s) if form in meta]
                continue
            text = json.dumps(obj, ensure_ascii=False)
            leaks += [(k8s.ident(obj), s) for s in k8s.SENTINELS.values()
                      for form in k8s.encodings(s) if form in text]
        assert not leaks, leaks
        everything = "\n".join(k8s.secret_payload(s) for s in objs.of_kind("Secret"))
        for name, s in k8s.SENTINELS.items():
            assert s in everything, f"{name} sentinel missing from every Secret"

    def test_should_not_leak_into_helm_output_outside_secret_documents(self):
        objs = h.render(k8s.sentinel_values())
        docs = objs.text.split("\n---")
        outside = [d for d in docs if "\nkind: Secret" not in "\n" + d]
        for doc in outside:
            for s in k8s.SENTINELS.values():
                for form in k8s.encodings(s):
                    assert form not in doc, f"{s} found in:\n{doc[:400]}"


class TestExamples:
    def test_should_keep_every_credential_external_in_the_existing_secrets_example(self):
        objs = h.render(files=[paths.VALUES_EXAMPLES / "existing-secrets.yaml"])
        assert chart_secrets(objs) == []
        assert objs.of_kind("Secret") == []
        assert app_secret_refs(objs) == {
            "AGENT_BACKEND_DB_PASSWORD": {"secret": "agent-backend-db", "key": "AGENT_BACKEND_DB_PASSWORD"},
            "ANTHROPIC_API_KEY": {"secret": "agent-backend-api-keys", "key": "ANTHROPIC_API_KEY"},
            "LANGCHAIN_API_KEY": {"secret": "agent-backend-api-keys", "key": "LANGCHAIN_API_KEY"},
        }
        pod = k8s.pod(objs)
        assert [s["name"] for s in pod["imagePullSecrets"]] == ["cr-seqera-io"]

    def test_should_store_every_credential_in_the_chart_secret_in_the_minimal_example(self):
        objs = h.render(files=[paths.VALUES_EXAMPLES / "minimal.yaml"])
        (secret,) = chart_secrets(objs)
        assert set(k8s.secret_data(secret)) == {c.env for c in CREDENTIALS}
        refs = app_secret_refs(objs)
        assert {r["secret"] for r in refs.values()} == {secret["metadata"]["name"]}


class TestCredentialTable:
    def test_should_list_exactly_the_services_secret_variables(self):
        assert sorted(c.env for c in CREDENTIALS) == sorted(SECRET_VARS)

    @pytest.mark.parametrize("external", [False, True], ids=["plain", "existing-secrets"])
    def test_should_match_the_charts_credential_table(self, external, tmp_path):
        """Same credentials, in the same order, with the same values paths, each read from its path."""
        values = k8s.values(*(use_existing(c, f"ext-{c.id}", f"key-{c.id}") for c in CREDENTIALS if external))
        effective = k8s.merge(yaml.safe_load((paths.CHART / "values.yaml").read_text()), values)
        expected = [{"env": c.env, "valuePath": c.value_path, "namePath": c.name_path, "keyPath": c.key_path,
                     "value": at(effective, c.value_path), "existingName": at(effective, c.name_path),
                     "existingKey": at(effective, c.key_path)} for c in CREDENTIALS]
        assert chart_credentials(values, tmp_path) == expected
