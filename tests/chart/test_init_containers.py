"""Init containers: user ones first, then wait-for-MySQL, then the DB migration; toggles, commands,
and the database password only ever through the environment."""
from __future__ import annotations

import pytest

from tests.support import helm as h
from tests.support import k8s

USER_INIT = [
    {"name": "first-user-init", "image": "busybox:1.36", "command": ["true"]},
    {"name": "second-user-init", "image": "busybox:1.36", "command": ["echo", "{{ .Release.Name }}"]},
]


def kinds_in_order(objs) -> list[str]:
    """Each init container classified as user / wait / migrate, in pod order."""
    app_image = k8s.app_container(objs)["image"]
    out = []
    for c in k8s.init_containers(objs):
        if c["name"] in {u["name"] for u in USER_INIT}:
            out.append("user")
        elif c["image"] == app_image:
            out.append("migrate")
        elif "mysql" in c["image"]:
            out.append("wait")
        else:
            out.append(f"unknown:{c['name']}")
    return out


def argv(container) -> str:
    return " ".join([*container.get("command", []), *container.get("args", [])])


class TestOrder:
    def test_should_run_wait_then_migrate_by_default(self):
        assert kinds_in_order(h.render(k8s.values())) == ["wait", "migrate"]

    def test_should_run_user_init_containers_first(self):
        objs = h.render(k8s.values({"initContainers": USER_INIT}))
        assert kinds_in_order(objs) == ["user", "user", "wait", "migrate"]
        assert [c["name"] for c in k8s.init_containers(objs)[:2]] == ["first-user-init", "second-user-init"]

    def test_should_evaluate_user_init_containers_as_templates(self):
        objs = h.render(k8s.values({"initContainers": USER_INIT}), release="tpl-rel")
        assert k8s.init_containers(objs)[1]["command"] == ["echo", "tpl-rel"]

    def test_should_give_every_init_container_a_unique_name(self):
        objs = h.render(k8s.values({"initContainers": USER_INIT}))
        names = [c["name"] for c in k8s.init_containers(objs)] + [k8s.app_container(objs)["name"]]
        assert len(names) == len(set(names)), names


class TestToggles:
    def test_should_drop_wait_when_dependencies_are_disabled(self):
        objs = h.render(k8s.values({"initContainerDependencies": {"enabled": False}}))
        assert kinds_in_order(objs) == ["migrate"]

    def test_should_drop_wait_when_wait_for_mysql_is_disabled(self):
        objs = h.render(k8s.values({"initContainerDependencies": {"waitForMySQL": {"enabled": False}}}))
        assert kinds_in_order(objs) == ["migrate"]

    def test_should_need_both_flags_to_run_wait(self):
        objs = h.render(k8s.values({"initContainerDependencies": {
            "enabled": False, "waitForMySQL": {"enabled": True}}}))
        assert "wait" not in kinds_in_order(objs)

    def test_should_keep_user_init_containers_when_dependencies_are_off(self):
        objs = h.render(k8s.values({"initContainers": USER_INIT,
                                    "initContainerDependencies": {"enabled": False}}))
        assert kinds_in_order(objs) == ["user", "user", "migrate"]


class TestMigrationContainer:
    def test_should_run_init_sh_by_default(self):
        c = k8s.migration_container(h.render(k8s.values()))
        assert c["command"] == ["./init.sh"]
        assert not c.get("args")

    def test_should_run_the_configured_command(self):
        c = k8s.migration_container(h.render(k8s.values({"dbMigrationInitContainer": {
            "command": ["python", "-m", "agent_backend.migrate", "--dry-run"]}})))
        assert c["command"] == ["python", "-m", "agent_backend.migrate", "--dry-run"]

    def test_should_get_the_database_settings_and_password(self):
        objs = h.render(k8s.values({"database": {"port": 3307}}))
        env = k8s.resolved_env(k8s.migration_container(objs), objs)
        assert env["AGENT_BACKEND_DB_HOST"]["value"] == "mysql.db.svc"
        assert env["AGENT_BACKEND_DB_PORT"]["value"] == "3307"
        assert env["AGENT_BACKEND_DB_NAME"]["value"] == "agent_backend"
        assert env["AGENT_BACKEND_DB_USER"]["value"] == "agent"
        assert env["AGENT_BACKEND_DB_PASSWORD"]["key"] == "AGENT_BACKEND_DB_PASSWORD"
        assert "secret" in env["AGENT_BACKEND_DB_PASSWORD"]

    def test_should_apply_resources_and_security_context(self):
        c = k8s.migration_container(h.render(k8s.values({"dbMigrationInitContainer": {
            "resources": {"limits": {"memory": "300Mi"}}}})))
        assert c["resources"]["limits"]["memory"] == "300Mi"
        assert c["securityContext"]["runAsUser"] == 101
        assert c["securityContext"]["readOnlyRootFilesystem"] is True


class TestWaitForMySQL:
    def test_should_use_the_configured_connection(self):
        objs = h.render(k8s.values({"database": {"host": "db.example", "port": 3310}}))
        c = k8s.wait_container(objs)
        env = k8s.resolved_env(c, objs)
        text = argv(c) + " " + " ".join(str(v.get("value", "")) for v in env.values())
        for expected in ("db.example", "3310", "agent", "agent_backend"):
            assert expected in text, expected

    @staticmethod
    def password_refs(container) -> dict[str, dict]:
        return {name: e["valueFrom"]["secretKeyRef"] for name, e in k8s.env(container).items()
                if "secretKeyRef" in e.get("valueFrom", {})}

    def test_should_get_the_password_from_the_chart_secret_via_env(self):
        objs = h.render(k8s.values())
        refs = self.password_refs(k8s.wait_container(objs))
        assert len(refs) == 1, refs
        (var, ref), = refs.items()
        secret = objs.get("Secret", ref["name"])
        assert k8s.secret_data(secret)[ref["key"]] == "db-password"
        assert var in argv(k8s.wait_container(objs)), "the script should read the password variable"

    def test_should_get_the_password_from_the_existing_secret_via_env(self):
        objs = h.render(k8s.values({"database": {"password": "", "existingSecretName": "db-ext",
                                                 "existingSecretKey": "pw"}}))
        refs = self.password_refs(k8s.wait_container(objs))
        assert list(refs.values()) == [{"name": "db-ext", "key": "pw"}]

    @pytest.mark.parametrize("extra", [{}, {"initContainers": USER_INIT}])
    def test_should_never_put_the_password_on_a_command_line(self, extra):
        objs = h.render(k8s.values({"database": {"password": "ARGV-SENTINEL-93"}}, extra))
        spec = k8s.pod(objs)
        for c in k8s.all_containers(spec):
            assert "ARGV-SENTINEL-93" not in argv(c), c["name"]

    def test_should_run_a_real_query_in_a_loop(self):
        c = k8s.wait_container(h.render(k8s.values()))
        script = argv(c)
        assert "mysql" in script
        assert "SELECT" in script.upper()
        assert any(word in script for word in ("until", "while")), script

    def test_should_apply_resources_and_security_context(self):
        c = k8s.wait_container(h.render(k8s.values({"initContainerDependencies": {"waitForMySQL": {
            "resources": {"requests": {"cpu": "10m"}}}}})))
        assert c["resources"]["requests"]["cpu"] == "10m"
        assert c["securityContext"]["runAsNonRoot"] is True
