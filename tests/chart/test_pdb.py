"""The PodDisruptionBudget (off by default: test_optional_objects.py): minAvailable or maxUnavailable (numbers or percentages,
maxUnavailable 1 when neither is set), the Deployment's own selector, labels from the chart's helpers.
The refusals (both set, a budget that blocks every drain) are data in tests/chart/invalid/pdb-*.yaml."""
from __future__ import annotations

import pytest

from tests.support import helm as h
from tests.support import k8s, paths


def on(pdb=None, extra=None):
    return k8s.values({"podDisruptionBudget": {"enabled": True, **(pdb or {})},
                       "extraOptionsSpec": {"replicas": 3}}, extra or {})


class TestPodDisruptionBudgetSpec:
    def test_should_select_exactly_the_deployments_pods(self):
        objs = h.render(on())
        pdb, dep = objs.get("PodDisruptionBudget"), objs.get("Deployment")
        assert pdb["spec"]["selector"] == dep["spec"]["selector"]
        assert pdb["metadata"]["name"] == dep["metadata"]["name"]

    def test_should_allow_one_pod_down_when_neither_bound_is_set(self):
        spec = h.render(on()).get("PodDisruptionBudget")["spec"]
        assert spec["maxUnavailable"] == 1 and "minAvailable" not in spec

    @pytest.mark.parametrize("key,value", [("minAvailable", 2), ("minAvailable", "50%"),
                                           ("maxUnavailable", 2), ("maxUnavailable", "25%")])
    def test_should_render_the_bound_you_set_as_its_type(self, key, value, helm):
        """A number stays a number (the API server takes a string only as a percentage), on both helms."""
        spec = h.render(on({key: value}), helm=helm).get("PodDisruptionBudget")["spec"]
        other = "maxUnavailable" if key == "minAvailable" else "minAvailable"
        assert spec[key] == value and other not in spec, spec

    def test_should_pass_the_unhealthy_pod_eviction_policy(self):
        spec = h.render(on({"unhealthyPodEvictionPolicy": "AlwaysAllow"})).get("PodDisruptionBudget")["spec"]
        assert spec["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
        assert "unhealthyPodEvictionPolicy" not in h.render(on()).get("PodDisruptionBudget")["spec"]

    def test_should_accept_min_available_below_the_autoscalers_floor(self):
        values = k8s.values({"podDisruptionBudget": {"enabled": True, "minAvailable": 1},
                             "autoscaling": {"enabled": True, "minReplicas": 2},
                             "resources": {"requests": {"cpu": "100m"}}})
        assert h.render(values).get("PodDisruptionBudget")["spec"]["minAvailable"] == 1

    def test_should_count_templated_replicas(self):
        """extraOptionsSpec.replicas is evaluated as a template before it is compared."""
        with pytest.raises(h.HelmError) as e:
            h.render(on({"minAvailable": 3}, {"extraOptionsSpec": {"replicas": "{{ 1 | add 2 }}"}}))
        assert "podDisruptionBudget.minAvailable 3 would block every node drain with 3 replica(s)" in e.value.stderr

    def test_should_carry_common_labels_and_annotations(self):
        objs = h.render(on(extra={"commonLabels": {"team": "ai"}, "commonAnnotations": {"owner": "ops"}}))
        pdb = objs.get("PodDisruptionBudget")
        assert k8s.labels(pdb)["team"] == "ai" and k8s.annotations(pdb)["owner"] == "ops"
        assert k8s.labels(pdb)["app.kubernetes.io/instance"] == h.RELEASE

    def test_should_be_in_the_autoscaling_example(self):
        spec = h.render(files=[paths.VALUES_EXAMPLES / "autoscaling.yaml"]).get("PodDisruptionBudget")["spec"]
        assert spec["minAvailable"] == 1
