"""The optional objects (PodDisruptionBudget, HorizontalPodAutoscaler, NetworkPolicy, the `helm test`
Pod): none is rendered by default, and each renders exactly once when enabled, on both helms.
What each renders is in its own module (test_pdb.py, test_hpa.py, test_network_policy.py,
test_helm_test_hook.py)."""
from __future__ import annotations

import pytest

from tests.support import helm as h
from tests.support import k8s

OPTIONAL = {
    "PodDisruptionBudget": {"podDisruptionBudget": {"enabled": True}, "extraOptionsSpec": {"replicas": 2}},
    "HorizontalPodAutoscaler": {"autoscaling": {"enabled": True}, "resources": {"requests": {"cpu": "100m"}}},
    "NetworkPolicy": {"networkPolicy": {"enabled": True}},
    "Pod": {"helmTest": {"enabled": True}},
}


class TestOptionalObjects:
    def test_should_render_none_of_them_by_default(self):
        objs = h.render(k8s.values())
        assert [o["kind"] for o in objs if o["kind"] in OPTIONAL] == []

    @pytest.mark.parametrize("kind", OPTIONAL)
    def test_should_render_one_when_enabled(self, kind, helm):
        assert len(h.render(k8s.values(OPTIONAL[kind]), helm=helm).of_kind(kind)) == 1
