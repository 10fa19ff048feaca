"""The Service: type, the named http port, nodePort only where allowed, extraServices, extraOptions."""
from __future__ import annotations

import pytest

from tests.support import helm as h
from tests.support import k8s


def service(objs):
    return objs.get("Service")


def http_port(objs):
    ports = [p for p in service(objs)["spec"]["ports"] if p["name"] == "http"]
    assert len(ports) == 1, service(objs)["spec"]["ports"]
    return ports[0]


class TestServiceDefaults:
    def test_should_be_cluster_ip_on_port_80(self):
        objs = h.render(k8s.values())
        svc = service(objs)
        assert svc["spec"]["type"] == "ClusterIP"
        port = http_port(objs)
        assert port["port"] == 80
        assert "nodePort" not in port

    def test_should_follow_a_changed_target_port(self):
        objs = h.render(k8s.values({"service": {"http": {"targetPort": 9100, "port": 8080}}}))
        assert http_port(objs)["port"] == 8080
        http = [p for p in k8s.app_container(objs)["ports"] if p["name"] == "http"][0]
        assert http["containerPort"] == 9100

    def test_should_name_the_port_from_values(self):
        objs = h.render(k8s.values({"service": {"http": {"name": "web"}}}))
        assert [p["name"] for p in service(objs)["spec"]["ports"]] == ["web"]


class TestNodePort:
    @pytest.mark.parametrize("service_type", ["NodePort", "LoadBalancer"])
    def test_should_set_the_node_port_where_the_type_allows_it(self, service_type):
        objs = h.render(k8s.values({"service": {"type": service_type, "http": {"nodePort": 31000}}}))
        assert service(objs)["spec"]["type"] == service_type
        assert http_port(objs)["nodePort"] == 31000

    @pytest.mark.parametrize("service_type", ["NodePort", "LoadBalancer"])
    def test_should_leave_the_node_port_to_kubernetes_when_unset(self, service_type):
        objs = h.render(k8s.values({"service": {"type": service_type}}))
        assert "nodePort" not in http_port(objs)

    def test_should_refuse_a_node_port_on_cluster_ip(self):
        with pytest.raises(h.HelmError) as e:
            h.render(k8s.values({"service": {"http": {"nodePort": 31000}}}))
        assert "service.http.nodePort" in e.value.stderr


class TestExtraServices:
    def test_should_append_extra_ports(self):
        objs = h.render(k8s.values({"service": {"extraServices": [
            {"name": "metrics", "port": 9090, "targetPort": 9090, "protocol": "TCP"},
            {"name": "admin", "port": 9091, "targetPort": "admin"},
        ]}}))
        ports = service(objs)["spec"]["ports"]
        assert [p["name"] for p in ports] == ["http", "metrics", "admin"]
        assert ports[1] == {"name": "metrics", "port": 9090, "targetPort": 9090, "protocol": "TCP"}
        assert ports[2]["targetPort"] == "admin"


class TestExtraOptions:
    def test_should_merge_extra_options_under_spec_as_templates(self):
        objs = h.render(k8s.values({"service": {"type": "LoadBalancer", "extraOptions": {
            "externalTrafficPolicy": '{{ if eq .Values.environment "production" }}Local{{ else }}Cluster{{ end }}',
            "loadBalancerSourceRanges": ["10.0.0.0/8"],
            "sessionAffinity": "ClientIP",
        }}}))
        spec = service(objs)["spec"]
        assert spec["externalTrafficPolicy"] == "Local"
        assert spec["loadBalancerSourceRanges"] == ["10.0.0.0/8"]
        assert spec["sessionAffinity"] == "ClientIP"
        assert spec["type"] == "LoadBalancer"

    def test_should_keep_the_selector_with_extra_options(self):
        objs = h.render(k8s.values({"service": {"extraOptions": {"clusterIP": "None"}}}))
        spec = service(objs)["spec"]
        assert spec["clusterIP"] == "None"
        assert spec["selector"]["app.kubernetes.io/instance"] == h.RELEASE

    @pytest.mark.parametrize("owned", [
        {"type": "NodePort"}, {"selector": {"a": "b"}}, {"ports": []},
    ], ids=["type", "selector", "ports"])
    def test_should_refuse_to_override_fields_the_chart_owns(self, owned):
        with pytest.raises(h.HelmError) as e:
            h.render(k8s.values({"service": {"extraOptions": owned}}))
        assert "service.extraOptions" in e.value.stderr
