"""Startup, readiness and liveness probes of the app container, exactly as the values say."""
from __future__ import annotations

import pytest

from tests.support import helm as h
from tests.support import k8s

PROBES = ("startupProbe", "readinessProbe", "livenessProbe")
FIELDS = ("initialDelaySeconds", "periodSeconds", "timeoutSeconds", "failureThreshold")
# Seed README defaults (the chart's contract).
DEFAULTS = {
    "startupProbe": {"initialDelaySeconds": 5, "periodSeconds": 10, "timeoutSeconds": 3,
                     "failureThreshold": 5, "successThreshold": 1},
    "readinessProbe": {"initialDelaySeconds": 5, "periodSeconds": 5, "timeoutSeconds": 3,
                       "failureThreshold": 5, "successThreshold": 1},
    "livenessProbe": {"initialDelaySeconds": 5, "periodSeconds": 10, "timeoutSeconds": 3,
                      "failureThreshold": 10, "successThreshold": 1},
}


def probe(objs, name):
    return k8s.app_container(objs).get(name)


def enabled_all():
    return {"startupProbe": {"enabled": True}}


class TestProbeDefaults:
    def test_should_enable_readiness_and_liveness_but_not_startup_by_default(self):
        objs = h.render(k8s.values())
        assert probe(objs, "readinessProbe") is not None
        assert probe(objs, "livenessProbe") is not None
        assert probe(objs, "startupProbe") is None

    @pytest.mark.parametrize("name", PROBES)
    def test_should_render_the_documented_defaults(self, name):
        p = probe(h.render(k8s.values(enabled_all())), name)
        assert p["httpGet"] == {"path": "/health", "port": 8002}
        for field, value in DEFAULTS[name].items():
            assert p[field] == value, (name, field)

    @pytest.mark.parametrize("name", PROBES)
    def test_should_not_leak_the_enabled_flag_into_the_probe(self, name):
        p = probe(h.render(k8s.values(enabled_all())), name)
        assert "enabled" not in p


class TestProbeFields:
    @pytest.mark.parametrize("name", PROBES)
    @pytest.mark.parametrize("field", FIELDS)
    def test_should_render_each_timing_field_from_values(self, name, field):
        objs = h.render(k8s.values(enabled_all(), {name: {field: 17}}))
        p = probe(objs, name)
        assert p[field] == 17
        others = {f: p[f] for f in FIELDS if f != field}
        assert others == {f: DEFAULTS[name][f] for f in FIELDS if f != field}

    def test_should_render_readiness_success_threshold(self):
        assert probe(h.render(k8s.values({"readinessProbe": {"successThreshold": 3}})),
                     "readinessProbe")["successThreshold"] == 3

    @pytest.mark.parametrize("name", PROBES)
    def test_should_render_the_path(self, name):
        objs = h.render(k8s.values(enabled_all(), {name: {"httpGet": {"path": "/health?deep=1"}}}))
        assert probe(objs, name)["httpGet"]["path"] == "/health?deep=1"


class TestProbePort:
    @pytest.mark.parametrize("name", PROBES)
    def test_should_follow_the_target_port_through_the_template(self, name):
        objs = h.render(k8s.values(enabled_all(), {"service": {"http": {"targetPort": 9000}}}))
        assert probe(objs, name)["httpGet"]["port"] == 9000  # an integer, not "9000"
        ports = k8s.app_container(objs)["ports"]
        assert {"name": "http", "containerPort": 9000} in [
            {k: p[k] for k in ("name", "containerPort")} for p in ports]

    @pytest.mark.parametrize("name", PROBES)
    def test_should_accept_a_named_port(self, name):
        objs = h.render(k8s.values(enabled_all(), {name: {"httpGet": {"port": "http"}}}))
        assert probe(objs, name)["httpGet"]["port"] == "http"

    @pytest.mark.parametrize("name", PROBES)
    def test_should_evaluate_any_template_in_the_port(self, name):
        port = '{{ add .Values.service.http.targetPort 1 }}'
        objs = h.render(k8s.values(enabled_all(), {name: {"httpGet": {"port": port}}}))
        assert probe(objs, name)["httpGet"]["port"] == 8003


class TestProbeToggles:
    @pytest.mark.parametrize("name", ["readinessProbe", "livenessProbe"])
    def test_should_omit_a_disabled_probe(self, name):
        objs = h.render(k8s.values({name: {"enabled": False}}))
        assert probe(objs, name) is None
        other = ({"readinessProbe", "livenessProbe"} - {name}).pop()
        assert probe(objs, other) is not None

    def test_should_render_the_startup_probe_when_enabled(self):
        assert probe(h.render(k8s.values(enabled_all())), "startupProbe") is not None

    def test_should_render_no_probe_when_all_are_disabled(self):
        objs = h.render(k8s.values({p: {"enabled": False} for p in PROBES}))
        container = k8s.app_container(objs)
        assert not set(PROBES) & set(container)

    def test_should_not_probe_init_containers(self):
        objs = h.render(k8s.values(enabled_all()))
        for c in k8s.init_containers(objs):
            assert not set(PROBES) & set(c), c["name"]
