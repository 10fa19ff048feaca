"""The NetworkPolicy (off by default: test_optional_objects.py): selects the app pods; ingress only to the http port, from the
peers given (and the helm test pod); egress only to DNS, MySQL, Platform, Seqera MCP (while on),
Anthropic and LangSmith, each rule limited to its port and to the peers given (every address when none
are). The refusals (an ipBlock with a selector, a DNS name as a CIDR, an empty or misspelt peer) are
data in tests/chart/invalid/network-policy-*.yaml."""
from __future__ import annotations

from tests.support import helm as h
from tests.support import k8s, paths

INGRESS_NGINX = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}
KUBE_DNS = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}


def on(np=None, extra=None):
    return k8s.values({"networkPolicy": {"enabled": True, **(np or {})}}, extra or {})


def policy(values=None, files=()):
    return h.render(values, files=files).get("NetworkPolicy")


def ports(rule) -> list[tuple[int, str]]:
    return [(p["port"], p["protocol"]) for p in rule["ports"]]


def egress_to(pol, port, protocol="TCP"):
    """The egress rules that open `port`."""
    return [r for r in pol["spec"]["egress"] if (port, protocol) in ports(r)]


class TestSelection:
    def test_should_apply_to_the_app_pods_in_both_directions(self):
        objs = h.render(on())
        pol = objs.get("NetworkPolicy")
        assert pol["spec"]["podSelector"] == objs.get("Deployment")["spec"]["selector"]
        assert pol["spec"]["policyTypes"] == ["Ingress", "Egress"]
        assert k8s.labels(pol)["app.kubernetes.io/instance"] == h.RELEASE


class TestIngress:
    def test_should_open_only_the_http_container_port(self):
        objs = h.render(on({}, {"service": {"http": {"port": 8080, "targetPort": 9000}}}))
        (rule,) = objs.get("NetworkPolicy")["spec"]["ingress"]
        (http,) = [p for p in k8s.app_container(objs)["ports"] if p["name"] == "http"]
        assert ports(rule) == [(http["containerPort"], "TCP")] == [(9000, "TCP")]

    def test_should_allow_every_source_to_that_port_when_no_peer_is_given(self):
        (rule,) = policy(on({}, {"helmTest": {"enabled": True}}))["spec"]["ingress"]
        assert "from" not in rule

    def test_should_allow_only_the_peers_given(self):
        (rule,) = policy(on({"ingress": {"from": [INGRESS_NGINX]}}))["spec"]["ingress"]
        assert rule["from"] == [INGRESS_NGINX]

    def test_should_also_allow_the_helm_test_pod_when_it_is_on(self):
        objs = h.render(on({"ingress": {"from": [INGRESS_NGINX]}}, {"helmTest": {"enabled": True}}))
        (rule,) = objs.get("NetworkPolicy")["spec"]["ingress"]
        assert rule["from"][0] == INGRESS_NGINX
        test_pod = objs.get("Pod")
        (extra,) = rule["from"][1:]
        assert set(extra) == {"podSelector"}
        assert extra["podSelector"]["matchLabels"].items() <= k8s.labels(test_pod).items()


class TestEgress:
    def test_should_open_only_the_ports_of_the_services_the_app_calls(self):
        pol = policy(on())
        assert all(r.get("ports") for r in pol["spec"]["egress"]), "an egress rule without ports opens every port"
        opened = {p for r in pol["spec"]["egress"] for p in ports(r)}
        assert opened == {(53, "UDP"), (53, "TCP"), (3306, "TCP"), (443, "TCP")}

    def test_should_resolve_names_through_the_cluster_dns_by_default(self):
        (rule,) = egress_to(policy(on()), 53, "UDP")
        assert rule["to"] == [KUBE_DNS] and ports(rule) == [(53, "UDP"), (53, "TCP")]

    def test_should_reach_mysql_on_database_port_at_the_peers_given(self):
        peers = [{"ipBlock": {"cidr": "10.30.0.0/24"}}]
        (rule,) = egress_to(policy(on({"egress": {"database": {"to": peers}}}, {"database": {"port": 3307}})), 3307)
        assert rule["to"] == peers and ports(rule) == [(3307, "TCP")]

    def test_should_allow_the_database_port_to_every_address_by_default(self):
        """database.host is a DNS name, which a NetworkPolicy cannot name: the default rule is the port."""
        (rule,) = egress_to(policy(on()), 3306)
        assert "to" not in rule

    def test_should_reach_anthropic_and_langsmith_on_public_addresses_by_default(self):
        https = egress_to(policy(on()), 443)
        public = [r for r in https if "to" in r]
        assert len(public) == 2, https  # anthropic, langsmith; platform and mcp: every address
        for rule in public:
            cidrs = {p["ipBlock"]["cidr"]: p["ipBlock"]["except"] for p in rule["to"]}
            assert set(cidrs) == {"0.0.0.0/0", "::/0"}
            assert {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"} <= set(cidrs["0.0.0.0/0"])

    def test_should_use_the_port_a_domain_names(self):
        pol = policy(on({}, {"global": {"platformExternalDomain": "platform.example.com:8443",
                                        "mcpDomain": "mcp.example.com:9443"}}))
        assert len(egress_to(pol, 8443)) == 1 and len(egress_to(pol, 9443)) == 1

    def test_should_leave_seqera_mcp_out_while_it_is_off(self):
        peers = [{"ipBlock": {"cidr": "10.40.0.11/32"}}]
        with_mcp = policy(on({"egress": {"mcp": {"to": peers}}}))
        without = policy(on({"egress": {"mcp": {"to": peers}}}, {"global": {"mcpDomain": ""}}))
        assert [r for r in with_mcp["spec"]["egress"] if r.get("to") == peers]
        assert not [r for r in without["spec"]["egress"] if r.get("to") == peers]
        assert len(without["spec"]["egress"]) == len(with_mcp["spec"]["egress"]) - 1

    def test_should_append_extra_rules_evaluated_as_templates(self):
        extra = [{"to": [{"ipBlock": {"cidr": '{{ printf "10.50.0.%d/32" 15 }}'}}],
                  "ports": [{"port": 3128, "protocol": "TCP"}]}]
        pol = policy(on({"egress": {"extra": extra}}))
        assert pol["spec"]["egress"][-1] == {"to": [{"ipBlock": {"cidr": "10.50.0.15/32"}}],
                                             "ports": [{"port": 3128, "protocol": "TCP"}]}

    def test_should_give_a_templated_port_of_an_extra_rule_its_number_type(self):
        # A port string must be a named port: the API server refuses "3306".
        extra = [{"ports": [{"port": "{{ .Values.database.port }}", "endPort": "{{ add 1 3306 }}"}]}]
        pol = policy(on({"egress": {"extra": extra}}))
        assert pol["spec"]["egress"][-1] == {"ports": [{"port": 3306, "endPort": 3307}]}


class TestNetworkPolicyExample:
    def test_should_admit_the_ingress_controller_and_the_test_pod(self):
        objs = h.render(files=[paths.VALUES_EXAMPLES / "network-policy.yaml"])
        (rule,) = objs.get("NetworkPolicy")["spec"]["ingress"]
        assert len(rule["from"]) == 2
        assert rule["from"][1]["podSelector"]["matchLabels"].items() <= k8s.labels(objs.get("Pod")).items()

    def test_should_reach_the_in_cluster_mysql_by_selector(self):
        pol = h.render(files=[paths.VALUES_EXAMPLES / "network-policy.yaml"]).get("NetworkPolicy")
        (rule,) = egress_to(pol, 3306)
        assert rule["to"] == [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "mysql"}}}]
