"""Sensitive values: plain text goes into the chart's Secret, existing Secrets are referenced by
name and key and never copied, and no sensitive string appears anywhere outside a Secret."""
from __future__ import annotations

import json

import pytest

from tests.support import helm as h
from tests.support import k8s, paths

# credential -> (plain value key, existing Secret name key, existing Secret key key, env var)
CREDENTIALS = {
    "database": ("database.password", "database.existingSecretName", "database.existingSecretKey",
                 "AGENT_BACKEND_DB_PASSWORD"),
    "anthropic": ("anthropicApiKey", "anthropicApiKeyExistingSecretName",
                  "anthropicApiKeyExistingSecretKey", "ANTHROPIC_API_KEY"),
    "langchain": ("langchainApiKey", "langchainApiKeyExistingSecretName",
                  "langchainApiKeyExistingSecretKey", "LANGCHAIN_API_KEY"),
}


def nested(dotted: str, value) -> dict:
    out = value
    for part in reversed(dotted.split(".")):
        out = {part: out}
    return out


def use_existing(credential: str, secret_name: str, key: str | None = None) -> dict:
    """Values switching one credential from plain text to an existing Secret."""
    plain, name_key, key_key, _ = CREDENTIALS[credential]
    v = k8s.merge(nested(plain, ""), nested(name_key, secret_name))
    if key is not None:
        v = k8s.merge(v, nested(key_key, key))
    return v


def chart_secrets(objs) -> list[dict]:
    """Opaque Secrets the chart created (not pull-credential Secrets)."""
    return [o for o in objs.of_kind("Secret") if o.get("type", "Opaque") == "Opaque"]


def app_secret_refs(objs) -> dict[str, dict]:
    env = k8s.resolved_env(k8s.app_container(objs), objs)
    return {name: env.get(name) for *_, name in CREDENTIALS.values()}


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
        for *_, var in CREDENTIALS.values():
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
        for *_, var in CREDENTIALS.values():
            assert data[var] == tricky, var


class TestExistingSecrets:
    @pytest.mark.parametrize("credential", sorted(CREDENTIALS))
    def test_should_reference_the_existing_secret_by_name_and_default_key(self, credential):
        objs = h.render(k8s.values(use_existing(credential, "my-existing")))
        var = CREDENTIALS[credential][3]
        assert app_secret_refs(objs)[var] == {"secret": "my-existing", "key": var}

    @pytest.mark.parametrize("credential", sorted(CREDENTIALS))
    def test_should_use_the_configured_key_of_the_existing_secret(self, credential):
        objs = h.render(k8s.values(use_existing(credential, "vault-synced", "custom-key")))
        var = CREDENTIALS[credential][3]
        assert app_secret_refs(objs)[var] == {"secret": "vault-synced", "key": "custom-key"}

    @pytest.mark.parametrize("credential", sorted(CREDENTIALS))
    def test_should_omit_the_key_from_the_chart_secret(self, credential):
        objs = h.render(k8s.values(use_existing(credential, "my-existing")))
        var = CREDENTIALS[credential][3]
        for secret in chart_secrets(objs):
            assert var not in k8s.secret_data(secret), k8s.ident(secret)
        others = [v for c, (*_, v) in CREDENTIALS.items() if c != credential]
        data = k8s.secret_data(chart_secrets(objs)[0])
        assert set(others) <= set(data)

    def test_should_render_no_chart_secret_data_when_every_credential_is_external(self):
        v = k8s.values(*(use_existing(c, f"ext-{c}") for c in CREDENTIALS))
        objs = h.render(v)
        for secret in chart_secrets(objs):
            data = k8s.secret_data(secret)
            assert not set(data) & {var for *_, var in CREDENTIALS.values()}, k8s.ident(secret)
        refs = app_secret_refs(objs)
        for credential, (*_, var) in CREDENTIALS.items():
            assert refs[var] == {"secret": f"ext-{credential}", "key": var}
        # the existing Secrets are referenced, never rendered (copied) by the chart
        rendered = set(objs.names("Secret"))
        assert not rendered & {f"ext-{c}" for c in CREDENTIALS}

    def test_should_never_look_up_cluster_secrets(self):
        for tpl in (paths.CHART / "templates").rglob("*"):
            if tpl.is_file():
                assert "lookup" not in tpl.read_text(), f"{tpl.name} uses lookup"

    def test_should_reference_the_existing_db_secret_from_init_containers_too(self):
        objs = h.render(k8s.values(use_existing("database", "db-creds", "pw")))
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
        assert set(k8s.secret_data(secret)) == {var for *_, var in CREDENTIALS.values()}
        refs = app_secret_refs(objs)
        assert {r["secret"] for r in refs.values()} == {secret["metadata"]["name"]}
