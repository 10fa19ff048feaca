"""Every key the contract documents as "Evaluated as a template" really is: one case per key, and
a check that the list of cases covers every such key of the seed README's values table."""
from __future__ import annotations

import re

import pytest

from tests.support import helm as h
from tests.support import k8s, paths

SEED_README = paths.ROOT / "tests" / "chart" / "contract" / "seed-chart-readme.md"  # copy of the contract
T = "{{ .Release.Name }}-{{ .Values.environment }}"  # a template...
R = f"{h.RELEASE}-production"                       # ...and what it renders to


def ingress_on(extra):
    return k8s.merge({"ingress": {"enabled": True}}, extra)


def by_kind_label(kind, key):
    return lambda objs: {k8s.labels(o).get(key) for o in objs.of_kind(kind)}


def by_kind_annotation(kind, key):
    return lambda objs: {k8s.annotations(o).get(key) for o in objs.of_kind(kind)}


# key -> (values, read(objs), expected)
CASES = {
    "global.agentBackendDomain": (
        ingress_on({"global": {"agentBackendDomain": "{{ .Values.environment }}.agents.example.com"}}),
        lambda o: o.get("Ingress")["spec"]["rules"][0]["host"], "production.agents.example.com"),
    "global.mcpDomain": (
        {"global": {"mcpDomain": "mcp-{{ .Values.environment }}.example.com"}},
        lambda o: o.get("ConfigMap")["data"]["SEQERA_MCP_URL"], "https://mcp-production.example.com/mcp"),
    "image.tag": (
        {"image": {"tag": "{{ .Values.environment }}"}},
        lambda o: k8s.app_container(o)["image"].rsplit(":", 1)[1], "production"),
    "service.extraOptions": (
        {"service": {"extraOptions": {"sessionAffinity": '{{ "Client" }}IP'}}},
        lambda o: o.get("Service")["spec"]["sessionAffinity"], "ClientIP"),
    "initContainers": (
        {"initContainers": [{"name": "u", "image": "busybox", "command": ["echo", T]}]},
        lambda o: k8s.init_containers(o)[0]["command"][1], R),
    "podLabels": ({"podLabels": {"x": T}},
                  lambda o: o.get("Deployment")["spec"]["template"]["metadata"]["labels"]["x"], R),
    "podAnnotations": ({"podAnnotations": {"x": T}},
                       lambda o: o.get("Deployment")["spec"]["template"]["metadata"]["annotations"]["x"], R),
    "extraOptionsSpec": ({"extraOptionsSpec": {"strategy": {"type": '{{ "Recreate" }}'}}},
                         lambda o: o.get("Deployment")["spec"]["strategy"]["type"], "Recreate"),
    "extraOptionsTemplateSpec": ({"extraOptionsTemplateSpec": {"nodeSelector": {"pool": T}}},
                                 lambda o: k8s.pod(o)["nodeSelector"]["pool"], R),
    "extraVolumes": (
        {"extraVolumes": [{"name": "v", "configMap": {"name": T}}],
         "extraVolumeMounts": [{"name": "v", "mountPath": "/v"}]},
        lambda o: [v for v in k8s.pod(o)["volumes"] if v["name"] == "v"][0]["configMap"]["name"], R),
    "extraVolumeMounts": (
        {"extraVolumes": [{"name": "v", "emptyDir": {}}],
         "extraVolumeMounts": [{"name": "v", "mountPath": "/data/{{ .Values.environment }}"}]},
        lambda o: [m for m in k8s.app_container(o)["volumeMounts"] if m["name"] == "v"][0]["mountPath"],
        "/data/production"),
    **{f"{p}.httpGet.port": (
        k8s.merge({"startupProbe": {"enabled": True}}, {p: {"httpGet": {"port": "{{ add 8000 2 }}"}}}),
        (lambda name: lambda o: k8s.app_container(o)[name]["httpGet"]["port"])(p), 8002)
       for p in ("startupProbe", "readinessProbe", "livenessProbe")},
    "ingress.defaultBackend": (
        ingress_on({"ingress": {"defaultBackend": {"service": {"name": T, "port": {"number": 80}}}}}),
        lambda o: o.get("Ingress")["spec"]["defaultBackend"]["service"]["name"], R),
    "ingress.extraHosts": (
        ingress_on({"ingress": {"extraHosts": [{"host": "{{ .Values.environment }}.example.com"}]}}),
        lambda o: o.get("Ingress")["spec"]["rules"][1]["host"], "production.example.com"),
    "ingress.annotations": (ingress_on({"ingress": {"annotations": {"x": T}}}),
                            lambda o: k8s.annotations(o.get("Ingress"))["x"], R),
    "ingress.extraLabels": (ingress_on({"ingress": {"extraLabels": {"x": T}}}),
                            lambda o: k8s.labels(o.get("Ingress"))["x"], R),
    "ingress.tls": (ingress_on({"ingress": {"tls": [{"secretName": T, "hosts": ["a.example.com"]}]}}),
                    lambda o: o.get("Ingress")["spec"]["tls"][0]["secretName"], R),
    "secretLabels": ({"secretLabels": {"x": T}}, by_kind_label("Secret", "x"), {R}),
    "secretAnnotations": ({"secretAnnotations": {"x": T}}, by_kind_annotation("Secret", "x"), {R}),
    "configMapLabels": ({"configMapLabels": {"x": T}}, by_kind_label("ConfigMap", "x"), {R}),
    "configMapAnnotations": ({"configMapAnnotations": {"x": T}},
                             by_kind_annotation("ConfigMap", "x"), {R}),
    "extraDeploy": (
        {"extraDeploy": [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": T}, "data": {}}]},
        lambda o: R in o.names("ConfigMap"), True),
}


def seed_template_keys() -> set[str]:
    """Keys whose description in the seed README's values table says they are templates."""
    keys = set()
    for line in SEED_README.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 4 and re.search(r"evaluated as (a )?template", cells[-1], re.I):
            keys.add(cells[0])
    return keys


class TestTemplateKeys:
    def test_should_cover_every_templated_key_of_the_contract(self):
        seed = seed_template_keys()
        assert len(seed) >= 20, seed
        assert not seed - set(CASES), f"no tpl case for {sorted(seed - set(CASES))}"

    @pytest.mark.parametrize("key", sorted(CASES))
    def test_should_evaluate_as_a_template(self, key):
        values, read, expected = CASES[key]
        assert read(h.render(k8s.values(values))) == expected


class TestEvaluatedToTheEnd:
    """A value that refers to another template (global.agentBackendDomain and global.mcpDomain are
    printf templates on global.platformExternalDomain) is evaluated until no template remains."""

    FILE = h.TEST_VALUES / "templates-to-the-end.yaml"

    def test_should_render_the_domains_wherever_they_are_referred_to(self, helm):
        objs = h.render(files=[self.FILE], helm=helm)
        ai, mcp = "ai.platform.example.com", "mcp.platform.example.com"
        ingress = objs.get("Ingress")
        assert ingress["spec"]["tls"][0]["hosts"] == [ai, f"x.{ai}"]
        assert [r["host"] for r in ingress["spec"]["rules"]] == [ai, f"x.{ai}"]
        assert k8s.annotations(ingress)["example.com/mcp-host"] == mcp
        assert k8s.labels(ingress)["example.com/host"] == ai
        pod = objs.get("Deployment")["spec"]["template"]["metadata"]
        assert pod["labels"]["example.com/host"] == ai
        assert pod["annotations"]["example.com/mcp-url"] == f"https://{mcp}/mcp"
        assert objs.get("ConfigMap", f"{h.RELEASE}-domains")["data"]["host"] == ai
        assert "{{" not in objs.text

    @staticmethod
    def chain(length: int) -> dict:
        """podLabels l1 -> l2 -> ... -> l<length> = "end": l1 needs length - 1 passes of tpl."""
        labels = {f"l{i}": f"{{{{ .Values.podLabels.l{i + 1} }}}}" for i in range(1, length)}
        return {"podLabels": {**labels, f"l{length}": "end"}}

    def test_should_follow_a_chain_of_five_templates(self):
        objs = h.render(k8s.values(self.chain(6)))
        assert objs.get("Deployment")["spec"]["template"]["metadata"]["labels"]["l1"] == "end"

    def test_should_refuse_a_chain_longer_than_the_passes_naming_the_key(self):
        with pytest.raises(h.HelmError) as e:
            h.render(k8s.values(self.chain(7)))
        assert "podLabels.l1 still holds a template after 5 passes" in e.value.stderr
        assert "podLabels.l2" not in e.value.stderr  # l2 needs five passes: it renders


class TestTemplatedNumbers:
    """A templated value in a field the Kubernetes schema types integer, int-or-string or boolean
    gets that type; a string field keeps a string, digits or not (templated-numbers.yaml)."""

    FILE = h.TEST_VALUES / "templated-numbers.yaml"

    def test_should_type_the_fields_of_every_templated_section(self, helm):
        objs = h.render(files=[self.FILE], helm=helm)  # validated: "2" for replicas would fail
        spec = objs.get("Deployment")["spec"]
        assert (spec["replicas"], spec["revisionHistoryLimit"]) == (2, 3)
        assert spec["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": "25%"}
        pod = k8s.pod(objs)
        assert (pod["terminationGracePeriodSeconds"], pod["enableServiceLinks"]) == (30, False)
        init = k8s.init_containers(objs)[0]
        assert init["securityContext"]["runAsUser"] == 101
        assert init["securityContext"]["allowPrivilegeEscalation"] is False
        volume = [v for v in pod["volumes"] if v["name"] == "settings"][0]
        assert volume["configMap"]["defaultMode"] == 420
        mount = [m for m in k8s.app_container(objs)["volumeMounts"] if m["name"] == "settings"][0]
        assert mount["readOnly"] is True
        assert objs.get("Service")["spec"]["publishNotReadyAddresses"] is True
        assert objs.get("Ingress")["spec"]["defaultBackend"]["service"]["port"]["number"] == 80

    def test_should_keep_strings_where_kubernetes_wants_strings(self):
        objs = h.render(files=[self.FILE])
        assert k8s.pod(objs)["nodeSelector"]["example.com/pool"] == "7"
        assert k8s.init_containers(objs)[0]["env"] == [{"name": "PORT", "value": "80"}]

    def test_should_name_only_types_the_generated_table_knows(self):
        """A section typed with a name the table lacks would silently stay untyped."""
        table = (paths.CHART / "templates" / "_k8s-types.tpl").read_text()
        types = set(re.findall(r'^"(\w+)": ', table, re.MULTILINE))
        used = set()
        for template in (paths.CHART / "templates").glob("*"):
            used |= set(re.findall(r'"agent-backend\.tpl\.typed" \(dict .*?"type" "(?:\[\])?(\w+)"',
                                   template.read_text()))
        assert used and used <= types, used - types
