"""Labels, selectors and annotations: standard labels everywhere, selectors that only ever match
this release's pods, commonLabels/commonAnnotations on every object, per-kind extras."""
from __future__ import annotations

import pytest
import yaml

from tests.support import helm as h
from tests.support import k8s
from tests.support import paths

STANDARD = ("app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/managed-by",
            "helm.sh/chart", "app.kubernetes.io/version")


UPSTREAM_0_1_4 = yaml.safe_load(
    (paths.ROOT / "tests" / "chart" / "contract" / "upstream-0.1.4-selector.yaml").read_text())["cases"]


def pod_labels(objs) -> dict:
    return objs.get("Deployment")["spec"]["template"]["metadata"]["labels"]


def matches(selector: dict, lbls: dict) -> bool:
    return all(lbls.get(k) == v for k, v in selector.items())


def everything_on():
    """Values that make the chart render every kind of object it can."""
    return k8s.values({
        "ingress": {"enabled": True},
        "global": {"imageCredentials": [{"registry": "r.example.com", "username": "u", "password": "p"}]},
    })


class TestStandardLabels:
    def test_should_put_standard_labels_on_every_object(self):
        objs = h.render(everything_on())
        for obj in objs:
            lbls = k8s.labels(obj)
            assert set(STANDARD) <= set(lbls), (k8s.ident(obj), lbls)
            assert lbls["app.kubernetes.io/instance"] == h.RELEASE
            assert lbls["app.kubernetes.io/managed-by"] == "Helm"

    def test_should_put_every_object_in_the_release_namespace(self):
        for obj in h.render(everything_on()):
            assert obj["metadata"].get("namespace") == h.NAMESPACE, k8s.ident(obj)

    def test_should_honour_name_and_fullname_overrides(self):
        objs = h.render(k8s.values({"nameOverride": "ab"}))
        assert pod_labels(objs)["app.kubernetes.io/name"] == "ab"
        objs = h.render(k8s.values({"fullnameOverride": "custom-name"}))
        assert objs.get("Deployment")["metadata"]["name"] == "custom-name"


class TestSelectors:
    def test_should_not_select_another_releases_pods(self):
        one = h.render(k8s.values(), release="one")
        two = h.render(k8s.values(), release="two")
        for a, b in ((one, two), (two, one)):
            assert not matches(a.get("Deployment")["spec"]["selector"]["matchLabels"], pod_labels(b))
            assert not matches(a.get("Service")["spec"]["selector"], pod_labels(b))
            assert matches(a.get("Deployment")["spec"]["selector"]["matchLabels"], pod_labels(a))

    def test_should_give_two_releases_distinct_object_names(self):
        one = h.render(k8s.values(), release="one")
        two = h.render(k8s.values(), release="two")
        assert not {k8s.ident(o) for o in one} & {k8s.ident(o) for o in two}

    def test_should_keep_the_selector_stable_when_labels_are_added(self):
        base = h.render(k8s.values())
        more = h.render(k8s.values({"podLabels": {"team": "ai"}, "commonLabels": {"cost": "x"}}))
        # Deployment selectors are immutable: extra labels must never reach them.
        assert (base.get("Deployment")["spec"]["selector"]
                == more.get("Deployment")["spec"]["selector"])
        assert base.get("Service")["spec"]["selector"] == more.get("Service")["spec"]["selector"]

    def test_should_not_let_pod_labels_break_the_selector(self):
        objs = h.render(k8s.values({"podLabels": {"app.kubernetes.io/instance": "hijack",
                                                  "app.kubernetes.io/name": "other"}}))
        selector = objs.get("Deployment")["spec"]["selector"]["matchLabels"]
        assert matches(selector, pod_labels(objs))
        assert selector["app.kubernetes.io/instance"] == h.RELEASE


class TestUpgradeFromUpstream:
    """`helm upgrade` of a release of upstream's 0.1.4 patches its Deployment in place: same name, same
    (immutable) selector, or the API server refuses the upgrade."""

    @pytest.mark.parametrize("case", UPSTREAM_0_1_4,
                             ids=[f"{c['release']}-{'-'.join(c['values']) or 'defaults'}" for c in UPSTREAM_0_1_4])
    def test_should_render_upstream_0_1_4s_deployment_name_and_selector(self, case, helm):
        dep = h.render(k8s.values(case["values"]), release=case["release"], helm=helm).get("Deployment")
        assert dep["metadata"]["name"] == case["name"]
        assert dep["spec"]["selector"]["matchLabels"] == case["matchLabels"]


class TestCommonLabelsAndAnnotations:
    def test_should_put_common_labels_and_annotations_on_every_object(self):
        objs = h.render(k8s.merge(everything_on(), {
            "commonLabels": {"team": "ai-platform"},
            "commonAnnotations": {"owner": "ai@example.com"},
            "extraDeploy": [{"apiVersion": "v1", "kind": "ConfigMap",
                             "metadata": {"name": "extra"}, "data": {"a": "b"}}],
        }))
        assert len(objs) >= 6
        for obj in objs:
            assert k8s.labels(obj).get("team") == "ai-platform", k8s.ident(obj)
            assert k8s.annotations(obj).get("owner") == "ai@example.com", k8s.ident(obj)

    def test_should_put_common_labels_on_the_pod_template(self):
        objs = h.render(k8s.values({"commonLabels": {"team": "ai-platform"}}))
        assert pod_labels(objs)["team"] == "ai-platform"

    def test_should_not_let_common_labels_override_standard_ones(self):
        objs = h.render(k8s.values({"commonLabels": {"app.kubernetes.io/instance": "x"}}))
        for obj in objs:
            assert k8s.labels(obj)["app.kubernetes.io/instance"] == h.RELEASE, k8s.ident(obj)


class TestPerKindLabels:
    def test_should_label_and_annotate_pods(self):
        objs = h.render(k8s.values({"podLabels": {"team": "{{ .Values.environment }}"},
                                    "podAnnotations": {"note": "{{ .Release.Name }}"}}))
        meta = objs.get("Deployment")["spec"]["template"]["metadata"]
        assert meta["labels"]["team"] == "production"
        assert meta["annotations"]["note"] == h.RELEASE

    @pytest.mark.parametrize("kind,prefix", [("Secret", "secret"), ("ConfigMap", "configMap")])
    def test_should_label_and_annotate_secrets_and_configmaps(self, kind, prefix):
        objs = h.render(k8s.merge(everything_on(), {
            f"{prefix}Labels": {"kind-label": "{{ .Values.environment }}"},
            f"{prefix}Annotations": {"kind-annotation": "{{ .Release.Name }}"},
        }))
        for obj in objs:
            has = k8s.labels(obj).get("kind-label") == "production"
            has_annotation = k8s.annotations(obj).get("kind-annotation") == h.RELEASE
            assert has == (obj["kind"] == kind), k8s.ident(obj)
            assert has_annotation == (obj["kind"] == kind), k8s.ident(obj)
