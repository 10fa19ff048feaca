"""NOTES.txt: after install the user learns how to reach and check the service, and which images
the release pulls (the documented way to list images for vendoring). Never any secret."""
from __future__ import annotations

import subprocess

import pytest

from tests.support import helm as h
from tests.support import k8s, paths


class TestNotes:
    def test_should_tell_how_to_check_the_health_route(self):
        text = h.notes(k8s.values())
        assert "/health" in text
        assert f"svc/{h.RELEASE}-agent-backend" in text
        assert f"--namespace {h.NAMESPACE}" in text

    def test_should_give_the_public_url_when_the_ingress_is_on(self):
        text = h.notes(k8s.values({"ingress": {"enabled": True, "tls": [{"hosts": ["ai.acme.io"]}]},
                                   "global": {"platformExternalDomain": "acme.io"}}))
        assert "  https://ai.acme.io/\n" in text
        assert "SEQERA_AI_BACKEND_URL=https://ai.acme.io seqera ai" in text

    def test_should_point_the_cli_at_the_port_forward_without_an_ingress(self):
        text = h.notes(k8s.values({"ingress": {"enabled": False}}))
        assert "SEQERA_AI_BACKEND_URL=http://127.0.0.1:8002 seqera ai" in text
        assert "SEQERA_AI_BACKEND_URL=https://" not in text

    def test_should_say_seqera_mcp_is_on_and_where(self):
        text = h.notes(k8s.values({"global": {"platformExternalDomain": "acme.io"}}))
        assert "Seqera MCP is on" in text
        assert "  https://mcp.acme.io/mcp\n" in text
        assert 'global.mcpDomain to ""' in text  # how to turn it off

    def test_should_tell_how_to_run_the_helm_test_only_when_it_is_on(self):
        assert f"helm test {h.RELEASE} --namespace {h.NAMESPACE}" in h.notes(k8s.values({"helmTest": {"enabled": True}}))
        assert "helm test" not in h.notes(k8s.values())

    @pytest.mark.parametrize("mcp_domain", ["", "{{ if false }}mcp.acme.io{{ end }}"], ids=["empty", "template"])
    def test_should_say_seqera_mcp_is_off_and_how_to_turn_it_on(self, mcp_domain):
        text = h.notes(k8s.values({"global": {"platformExternalDomain": "acme.io", "mcpDomain": mcp_domain}}))
        assert "Seqera MCP is off" in text
        assert "Seqera MCP is on" not in text and "/mcp" not in text
        assert "set global.mcpDomain to the host where Seqera MCP listens" in text

    @staticmethod
    def listed_images(text: str) -> list[str]:
        """The indented lines under the "Images ...:" heading of the notes."""
        lines = text.splitlines()
        heading = [i for i, line in enumerate(lines) if line.startswith("Images") and line.rstrip().endswith(":")]
        assert len(heading) == 1, f"no single 'Images ...:' heading in NOTES:\n{text}"
        out = []
        for line in lines[heading[0] + 1:]:
            if not line.startswith("  ") or not line.strip():
                break
            out.append(line.strip())
        return out

    def test_should_list_the_chart_images(self, values_file):
        listed = self.listed_images(h.notes(files=[values_file]))
        objs = h.render(files=[values_file])
        chart_images = {k8s.app_container(objs)["image"]} | {
            c["image"] for c in k8s.init_containers(objs) if c["name"] in ("wait-for-mysql", "db-migration")}
        assert len(listed) == len(set(listed)), listed
        assert set(listed) == chart_images


class TestNotesScheme:
    """The Ingress URLs say https:// only where TLS is configured for that host, else http://."""

    @staticmethod
    def notes(ingress: dict) -> str:
        return h.notes(k8s.values({"ingress": {"enabled": True, **ingress},
                                   "global": {"platformExternalDomain": "acme.io"}}))

    def test_should_print_http_without_tls(self):
        text = self.notes({})
        assert "  http://ai.acme.io/\n" in text
        assert "SEQERA_AI_BACKEND_URL=http://ai.acme.io seqera ai" in text
        assert "https://ai.acme.io" not in text
        assert "no ingress.tls entry covers this host" in text

    @pytest.mark.parametrize("hosts", [["ai.acme.io"], ["{{ tpl .Values.global.agentBackendDomain . }}"], None],
                             ids=["host", "host-template", "no-hosts-covers-all"])
    def test_should_print_https_when_tls_covers_the_host(self, hosts):
        entry = {"secretName": "ai-tls"} | ({"hosts": hosts} if hosts is not None else {})
        text = self.notes({"tls": [entry]})
        assert "  https://ai.acme.io/\n" in text
        assert "SEQERA_AI_BACKEND_URL=https://ai.acme.io seqera ai" in text
        assert "http://ai.acme.io" not in text
        assert "no ingress.tls entry covers" not in text

    def test_should_decide_per_host(self):
        text = self.notes({"tls": [{"secretName": "x-tls", "hosts": ["x.acme.io"]}],
                           "extraHosts": [{"host": "x.acme.io"}, {"host": "y.acme.io"}]})
        assert "  http://ai.acme.io/\n" in text
        assert "  https://x.acme.io\n" in text
        assert "  http://y.acme.io\n" in text

    def test_should_print_https_behind_an_alb_with_a_certificate(self):
        text = self.notes({"annotations": {"alb.ingress.kubernetes.io/certificate-arn": "arn:aws:acm:x"}})
        assert "SEQERA_AI_BACKEND_URL=https://ai.acme.io seqera ai" in text

    @pytest.mark.parametrize("example", ["nginx-ingress-tls.yaml", "aws-alb-ingress.yaml"])
    def test_should_print_https_for_the_tls_examples(self, example):
        text = h.notes(files=[paths.VALUES_EXAMPLES / example])
        assert "SEQERA_AI_BACKEND_URL=https://" in text
        assert "SEQERA_AI_BACKEND_URL=http://" not in text


class TestImageListingCommand:
    """The README's "Vendoring images" command, `make images VALUES=<file>`, prints every image the pods
    will pull, one per line and nothing else (what `skopeo copy` is fed)."""

    @staticmethod
    def readme_command() -> str:
        readme = (paths.CHART / "README.md").read_text()
        section = readme.split("To list every image", 1)[1]
        block = section.split("```console", 1)[1].split("```", 1)[0]
        return block.strip()

    @staticmethod
    def make_images(values_file: str, *make_args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["make", "-s", "images", f"VALUES={values_file}", *make_args], capture_output=True,
                              text=True, cwd=paths.ROOT, timeout=600)

    def test_the_readme_names_make_images(self):
        assert self.readme_command() == "make images VALUES=my-values.yaml"

    @pytest.mark.parametrize("example", sorted(p.name for p in paths.VALUES_EXAMPLES.glob("*.yaml")))
    def test_should_list_every_pod_image(self, example):
        result = self.make_images(f"values-examples/{example}")
        assert result.returncode == 0, result.stderr
        objs = h.render(files=[paths.VALUES_EXAMPLES / example])
        expected = {c["image"] for o in objs if k8s.pod_spec(o) is not None
                    for c in k8s.all_containers(k8s.pod_spec(o))}
        assert result.stdout.splitlines() == sorted(expected)  # nothing else on stdout

    def test_should_apply_set_after_the_values_file(self):
        # the vendoring steps list the chart's images at their source registry this way
        example = paths.VALUES_EXAMPLES / "private-registry.yaml"
        overrides = "global.imageRegistry=,image.registry=upstream.example.com"
        result = self.make_images(str(example), f"SET={overrides}")
        assert result.returncode == 0, result.stderr
        objs = h.render(files=[example], set_=[overrides])
        expected = {c["image"] for o in objs if k8s.pod_spec(o) is not None
                    for c in k8s.all_containers(k8s.pod_spec(o))}
        assert result.stdout.splitlines() == sorted(expected)
        assert any(i.startswith("upstream.example.com/") for i in expected)

    def test_should_name_a_missing_values_file(self):
        result = self.make_images("no-such-values.yaml")
        assert result.returncode != 0 and "no such values file: no-such-values.yaml" in result.stderr
        assert result.stdout == ""


class TestNotesSafety:
    def test_should_never_print_a_secret(self):
        text = h.notes(k8s.sentinel_values({"ingress": {"enabled": True}}))
        for s in k8s.SENTINELS.values():
            for form in k8s.encodings(s):
                assert form not in text

    def test_should_be_printed_for_the_examples(self):
        for example in sorted(paths.VALUES_EXAMPLES.glob("*.yaml")):
            assert "/health" in h.notes(files=[example]), example.name
