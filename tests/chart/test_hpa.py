"""The HorizontalPodAutoscaler (autoscaling/v2; off by default: test_optional_objects.py): scales the chart's Deployment between
minReplicas and maxReplicas on CPU and/or memory utilization; the Deployment then carries no replica
count of its own. The refusals (extraOptionsSpec.replicas, a target without its request, no target,
min above max) are data in tests/chart/invalid/hpa-*.yaml."""
from __future__ import annotations

from tests.support import helm as h
from tests.support import k8s, paths

REQUESTS = {"resources": {"requests": {"cpu": "250m", "memory": "256Mi"}}}


def on(hpa=None, extra=None):
    return k8s.values(REQUESTS, {"autoscaling": {"enabled": True, **(hpa or {})}}, extra or {})


def targets(hpa) -> dict[str, int]:
    return {m["resource"]["name"]: m["resource"]["target"]["averageUtilization"] for m in hpa["spec"]["metrics"]}


class TestAutoscalerSpec:
    def test_should_scale_the_charts_deployment(self):
        objs = h.render(on())
        ref = objs.get("HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]
        assert ref == {"apiVersion": "apps/v1", "kind": "Deployment", "name": objs.get("Deployment")["metadata"]["name"]}

    def test_should_use_the_default_bounds_and_cpu_target(self):
        spec = h.render(on()).get("HorizontalPodAutoscaler")["spec"]
        assert (spec["minReplicas"], spec["maxReplicas"]) == (2, 5)
        assert targets(h.render(on()).get("HorizontalPodAutoscaler")) == {"cpu": 80}

    def test_should_target_cpu_and_memory_as_set(self, helm):
        hpa = h.render(on({"targetCPUUtilizationPercentage": 60, "targetMemoryUtilizationPercentage": 75}),
                       helm=helm).get("HorizontalPodAutoscaler")
        assert targets(hpa) == {"cpu": 60, "memory": 75}
        assert all(m["type"] == "Resource" and m["resource"]["target"]["type"] == "Utilization"
                   for m in hpa["spec"]["metrics"])

    def test_should_target_memory_only_with_cpu_at_zero(self):
        values = on({"targetCPUUtilizationPercentage": 0, "targetMemoryUtilizationPercentage": 70})
        values["resources"] = {"requests": {"memory": "256Mi"}}  # no CPU request needed then
        hpa = h.render(values).get("HorizontalPodAutoscaler")
        assert targets(hpa) == {"memory": 70}

    def test_should_pass_the_behavior(self):
        behavior = {"scaleDown": {"stabilizationWindowSeconds": 600}}
        spec = h.render(on({"behavior": behavior})).get("HorizontalPodAutoscaler")["spec"]
        assert spec["behavior"] == behavior
        assert "behavior" not in h.render(on()).get("HorizontalPodAutoscaler")["spec"]

    def test_should_leave_the_replica_count_to_the_autoscaler(self):
        """No replicas on the Deployment: helm upgrade must not reset what the autoscaler chose."""
        assert "replicas" not in h.render(on()).get("Deployment")["spec"]

    def test_should_carry_the_charts_labels(self):
        hpa = h.render(on(extra={"commonLabels": {"team": "ai"}})).get("HorizontalPodAutoscaler")
        assert k8s.labels(hpa)["team"] == "ai" and k8s.labels(hpa)["app.kubernetes.io/instance"] == h.RELEASE

    def test_should_be_in_the_autoscaling_example(self):
        objs = h.render(files=[paths.VALUES_EXAMPLES / "autoscaling.yaml"])
        hpa = objs.get("HorizontalPodAutoscaler")
        assert targets(hpa) == {"cpu": 75, "memory": 80}
        assert "replicas" not in objs.get("Deployment")["spec"]
