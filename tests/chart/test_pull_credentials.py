"""Image pull credentials: one dockerconfigjson Secret from global.imageCredentials, and the pod's
imagePullSecrets as the de-duplicated union of every configured source (seed README rules)."""
from __future__ import annotations

import base64

import pytest

from tests.support import helm as h
from tests.support import k8s


def cred(registry, username="robot", password="secret", email="ops@example.com"):
    entry = {"registry": registry, "username": username, "password": password}
    if email is not None:
        entry["email"] = email
    return entry


def pull_secret(objs):
    found = [s for s in objs.of_kind("Secret") if s.get("type") == "kubernetes.io/dockerconfigjson"]
    assert len(found) == 1, [k8s.ident(s) for s in found]
    return found[0]


def pod_pull_secrets(objs) -> list[str]:
    spec = k8s.pod(objs)
    return [s["name"] for s in spec.get("imagePullSecrets", [])]


def sa_pull_secrets(objs) -> list[str]:
    return [s["name"] for s in objs.get("ServiceAccount").get("imagePullSecrets", [])]


class TestDockerConfigSecret:
    def test_should_render_no_pull_secret_without_credentials(self):
        objs = h.render(k8s.values())
        assert not [s for s in objs.of_kind("Secret") if s.get("type") == "kubernetes.io/dockerconfigjson"]
        assert pod_pull_secrets(objs) == []

    def test_should_cover_every_registry_in_one_secret(self):
        objs = h.render(k8s.values({"global": {"imageCredentials": [
            cred("one.example.com", "u1", "p1"), cred("two.example.com:5000", "u2", "p2", None)]}}))
        auths = k8s.dockerconfig(pull_secret(objs))["auths"]
        assert set(auths) == {"one.example.com", "two.example.com:5000"}
        assert auths["one.example.com"]["username"] == "u1"
        assert auths["one.example.com"]["password"] == "p1"
        assert auths["one.example.com"]["email"] == "ops@example.com"
        assert base64.b64decode(auths["one.example.com"]["auth"]).decode() == "u1:p1"
        assert base64.b64decode(auths["two.example.com:5000"]["auth"]).decode() == "u2:p2"

    def test_should_add_the_rendered_secret_to_the_pod(self):
        objs = h.render(k8s.values({"global": {"imageCredentials": [cred("one.example.com")]}}))
        assert pull_secret(objs)["metadata"]["name"] in pod_pull_secrets(objs)

    @pytest.mark.parametrize("password", [
        'with "double" quotes',
        "back\\slash\\\\ and \\n not a newline",
        "unicode: pässwörd ✓ 密码 🙂",
        "json-ish {\"a\": [1, 2]} </script> & % $ ` '",
        "tab\tand\nnewline",
        "{{ .Values.not.a.template }}",
    ], ids=["quotes", "backslashes", "unicode", "json-and-shell", "control-chars", "braces"])
    def test_should_keep_every_password_character_through_real_json(self, password):
        objs = h.render(k8s.values({"global": {"imageCredentials": [
            cred("one.example.com", "ü-user", password)]}}))
        entry = k8s.dockerconfig(pull_secret(objs))["auths"]["one.example.com"]
        assert entry["password"] == password
        assert entry["username"] == "ü-user"
        assert base64.b64decode(entry["auth"]).decode("utf-8") == f"ü-user:{password}"


class TestPodPullSecretUnion:
    def test_should_use_existing_global_secrets(self):
        objs = h.render(k8s.values({"global": {"imageCredentialsSecrets": ["g1", "g2"]}}))
        assert pod_pull_secrets(objs) == ["g1", "g2"]

    def test_should_add_image_pull_secrets_to_the_global_ones_not_replace_them(self):
        objs = h.render(k8s.values({
            "global": {"imageCredentials": [cred("one.example.com")],
                       "imageCredentialsSecrets": ["g1"]},
            "image": {"pullSecrets": ["img1"]},
        }))
        names = pod_pull_secrets(objs)
        assert {pull_secret(objs)["metadata"]["name"], "g1", "img1"} == set(names)

    def test_should_add_the_wait_for_mysql_image_pull_secrets(self):
        objs = h.render(k8s.values({
            "global": {"imageCredentialsSecrets": ["g1"]},
            "initContainerDependencies": {"waitForMySQL": {"image": {"pullSecrets": ["mysql1"]}}},
        }))
        assert set(pod_pull_secrets(objs)) == {"g1", "mysql1"}

    def test_should_deduplicate_the_union(self):
        objs = h.render(k8s.values({
            "global": {"imageCredentialsSecrets": ["shared", "g1", "shared"]},
            "image": {"pullSecrets": ["shared", "img1"]},
            "initContainerDependencies": {"waitForMySQL": {"image": {"pullSecrets": ["img1", "shared"]}}},
            "serviceAccount": {"imagePullSecretNames": ["shared", "sa1"]},
        }))
        names = pod_pull_secrets(objs)
        assert len(names) == len(set(names)), names
        assert set(names) == {"shared", "g1", "img1", "sa1"}

    def test_should_keep_the_documented_order(self):
        objs = h.render(k8s.values({
            "serviceAccount": {"imagePullSecretNames": ["sa1"]},
            "initContainerDependencies": {"waitForMySQL": {"image": {"pullSecrets": ["mysql1"]}}},
            "image": {"pullSecrets": ["img1"]},
            "global": {"imageCredentialsSecrets": ["g1"],
                       "imageCredentials": [cred("one.example.com")]},
        }))
        registry = pull_secret(objs)["metadata"]["name"]
        assert registry == f"{h.RELEASE}-agent-backend-registry"
        assert pod_pull_secrets(objs) == [registry, "g1", "img1", "mysql1", "sa1"]

    def test_should_accept_names_or_objects(self):
        objs = h.render(k8s.values({
            "global": {"imageCredentialsSecrets": [{"name": "g1"}, "g2"]},
            "image": {"pullSecrets": [{"name": "img1"}, "g1"]},
            "serviceAccount": {"imagePullSecretNames": ["sa1"]},
        }))
        assert pod_pull_secrets(objs) == ["g1", "g2", "img1", "sa1"]
        assert sa_pull_secrets(objs) == ["sa1"]

    def test_should_leave_out_the_wait_for_mysql_secrets_when_it_does_not_run(self):
        objs = h.render(k8s.values({"initContainerDependencies": {"waitForMySQL": {
            "enabled": False, "image": {"pullSecrets": ["mysql1"]}}}}))
        assert "mysql1" not in pod_pull_secrets(objs)

    def test_should_put_service_account_pull_secrets_on_the_service_account(self):
        objs = h.render(k8s.values({"serviceAccount": {"imagePullSecretNames": ["sa1", "sa2"]}}))
        assert sa_pull_secrets(objs) == ["sa1", "sa2"]

    def test_should_keep_service_account_pull_secrets_on_a_pod_with_its_own(self):
        # Kubernetes only copies a ServiceAccount's pull secrets to pods that have none.
        objs = h.render(k8s.values({"serviceAccount": {"imagePullSecretNames": ["sa1"]},
                                    "image": {"pullSecrets": ["img1"]}}))
        assert set(pod_pull_secrets(objs)) >= {"sa1", "img1"}

    def test_should_not_put_pod_secrets_on_the_service_account_unasked(self):
        objs = h.render(k8s.values({"image": {"pullSecrets": ["img1"]}}))
        assert "img1" not in sa_pull_secrets(objs)


class TestIncompleteCredentials:
    @pytest.mark.parametrize("missing", ["registry", "username", "password"])
    def test_should_fail_naming_the_incomplete_entry(self, missing):
        entry = cred("one.example.com")
        del entry[missing]
        with pytest.raises(h.HelmError) as e:
            h.render(k8s.values({"global": {"imageCredentials": [entry]}}))
        assert "imageCredentials" in e.value.stderr
        assert missing in e.value.stderr

    @pytest.mark.parametrize("missing", ["registry", "username", "password"])
    def test_should_fail_on_an_empty_field(self, missing):
        entry = cred("one.example.com")
        entry[missing] = ""
        with pytest.raises(h.HelmError) as e:
            h.render(k8s.values({"global": {"imageCredentials": [entry]}}))
        assert "imageCredentials" in e.value.stderr

    def test_should_fail_on_a_registry_listed_twice(self):
        with pytest.raises(h.HelmError) as e:
            h.render(k8s.values({"global": {"imageCredentials": [
                cred("one.example.com", "a"), cred("one.example.com", "b")]}}))
        assert "imageCredentials" in e.value.stderr
        assert "one.example.com" in e.value.stderr
