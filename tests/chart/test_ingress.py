"""The Ingress: host from global.agentBackendDomain (template), path and pathType, extraHosts,
tls, defaultBackend, className, annotations and labels (templates), the AWS ALB example."""
from __future__ import annotations

from tests.support import helm as h
from tests.support import k8s, paths


def ingress(objs):
    return objs.get("Ingress")


def on(extra=None):
    return k8s.values({"ingress": {"enabled": True}}, extra or {})


def backend_matches_service(objs, backend):
    svc = objs.get("Service")
    assert backend["service"]["name"] == svc["metadata"]["name"]
    port = backend["service"]["port"]
    http = svc["spec"]["ports"][0]  # the main port comes first, named service.http.name
    assert port.get("name") == http["name"] or port.get("number") == http["port"], port


class TestIngressToggle:
    def test_should_render_no_ingress_by_default(self):
        assert h.render(k8s.values()).of_kind("Ingress") == []

    def test_should_render_one_ingress_when_enabled(self):
        assert len(h.render(on()).of_kind("Ingress")) == 1


class TestMainRule:
    def test_should_use_the_default_agent_backend_domain(self):
        rules = ingress(h.render(on({"global": {"platformExternalDomain": "seqera.example.org"}})))["spec"]["rules"]
        assert [r["host"] for r in rules] == ["ai.seqera.example.org"]

    def test_should_evaluate_the_domain_as_a_template(self):
        objs = h.render(on({"global": {"agentBackendDomain": "agent-{{ .Values.environment }}.example.net"}}))
        assert ingress(objs)["spec"]["rules"][0]["host"] == "agent-production.example.net"

    def test_should_route_the_path_to_the_service(self):
        objs = h.render(on())
        paths_ = ingress(objs)["spec"]["rules"][0]["http"]["paths"]
        assert len(paths_) == 1
        assert paths_[0]["path"] == "/"
        assert paths_[0]["pathType"] == "ImplementationSpecific"
        backend_matches_service(objs, paths_[0]["backend"])

    def test_should_use_the_configured_path_and_path_type(self):
        objs = h.render(on({"ingress": {"path": "/agent", "defaultPathType": "Prefix"}}))
        p = ingress(objs)["spec"]["rules"][0]["http"]["paths"][0]
        assert (p["path"], p["pathType"]) == ("/agent", "Prefix")

    def test_should_follow_a_renamed_service_port(self):
        objs = h.render(on({"service": {"http": {"name": "web", "port": 8080}}}))
        backend_matches_service(objs, ingress(objs)["spec"]["rules"][0]["http"]["paths"][0]["backend"])


class TestIngressOptions:
    def test_should_set_the_class_name(self):
        assert ingress(h.render(on({"ingress": {"ingressClassName": "nginx"}})))["spec"]["ingressClassName"] == "nginx"

    def test_should_omit_an_empty_class_name(self):
        assert "ingressClassName" not in ingress(h.render(on()))["spec"]

    def test_should_evaluate_annotations_and_labels_as_templates(self):
        objs = h.render(on({"ingress": {
            "annotations": {"example.com/env": "{{ .Values.environment }}"},
            "extraLabels": {"exposure": "{{ .Values.environment }}-public"}}}))
        ing = ingress(objs)
        assert k8s.annotations(ing)["example.com/env"] == "production"
        assert k8s.labels(ing)["exposure"] == "production-public"
        assert k8s.labels(ing)["app.kubernetes.io/instance"] == h.RELEASE

    def test_should_evaluate_tls_as_a_template(self):
        objs = h.render(on({"ingress": {"tls": [{
            "hosts": ["{{ tpl .Values.global.agentBackendDomain . }}"],
            "secretName": "{{ .Release.Name }}-tls"}]}}))
        assert ingress(objs)["spec"]["tls"] == [{"hosts": ["ai.example.com"],
                                                 "secretName": f"{h.RELEASE}-tls"}]

    def test_should_evaluate_the_default_backend_as_a_template(self):
        objs = h.render(on({"ingress": {"defaultBackend": {"service": {
            "name": "{{ .Release.Name }}-fallback", "port": {"number": 80}}}}}))
        assert ingress(objs)["spec"]["defaultBackend"] == {
            "service": {"name": f"{h.RELEASE}-fallback", "port": {"number": 80}}}

    def test_should_omit_an_empty_default_backend_and_tls(self):
        spec = ingress(h.render(on()))["spec"]
        assert "defaultBackend" not in spec
        assert not spec.get("tls")


class TestExtraHosts:
    def test_should_add_hosts_defaulting_to_this_service(self):
        objs = h.render(on({"ingress": {"extraHosts": [
            {"host": '{{ printf "alt.%s" .Values.global.platformExternalDomain }}'}]}}))
        rules = ingress(objs)["spec"]["rules"]
        assert [r["host"] for r in rules] == ["ai.example.com", "alt.example.com"]
        extra_paths = rules[1]["http"]["paths"]
        assert extra_paths[0]["path"] == "/"
        assert extra_paths[0]["pathType"] == "ImplementationSpecific"
        backend_matches_service(objs, extra_paths[0]["backend"])

    def test_should_render_explicit_paths_and_backends(self):
        objs = h.render(on({"ingress": {"defaultPathType": "Prefix", "extraHosts": [{
            "host": "docs.example.com",
            "paths": [
                {"path": "/docs", "pathType": "Exact",
                 "serviceName": "{{ .Release.Name }}-docs", "portNumber": 8081},
                {"path": "/other"},
            ]}]}}))
        rule = ingress(objs)["spec"]["rules"][1]
        assert rule["host"] == "docs.example.com"
        first, second = rule["http"]["paths"]
        assert (first["path"], first["pathType"]) == ("/docs", "Exact")
        assert first["backend"]["service"] == {"name": f"{h.RELEASE}-docs", "port": {"number": 8081}}
        assert (second["path"], second["pathType"]) == ("/other", "Prefix")
        backend_matches_service(objs, second["backend"])


class TestAwsAlbExample:
    def test_should_render_node_port_service_and_alb_ingress(self):
        objs = h.render(files=[paths.VALUES_EXAMPLES / "aws-alb-ingress.yaml"])
        assert objs.get("Service")["spec"]["type"] == "NodePort"
        ing = ingress(objs)
        assert ing["spec"]["ingressClassName"] == "alb"
        assert ing["spec"]["rules"][0]["http"]["paths"][0]["path"] == "/*"
        assert k8s.annotations(ing)["alb.ingress.kubernetes.io/target-type"] == "instance"

    def test_should_render_nginx_tls_for_the_configured_host(self):
        objs = h.render(files=[paths.VALUES_EXAMPLES / "nginx-ingress-tls.yaml"])
        ing = ingress(objs)
        assert ing["spec"]["rules"][0]["host"] == "agent.platform.example.com"
        assert ing["spec"]["tls"] == [{"hosts": ["agent.platform.example.com"],
                                       "secretName": "agent-backend-tls"}]
