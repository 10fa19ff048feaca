# Two commands matter: `make demo` and `make test`. Both install what they need first (ci/setup.sh).
SHELL := /bin/bash
PY := .venv/bin/python
# Two workers: the machines here have two cores.
PYTEST_ARGS ?= -n 2

.PHONY: setup test demo bench docs images package image publish

setup:
	@ci/setup.sh

# The images the tests run are built (or found in the cache) first, outside pytest's per-test hang bound.
test: setup
	$(PY) -m tests.support.image
	$(PY) -m pytest $(PYTEST_ARGS)

demo: setup
	$(PY) ci/demo.py $(if $(ONCE),--once,)

bench: setup
	$(PY) ci/bench.py

# Regenerate values.yaml, values.schema.json and the chart README from schema/, the chart's CHANGELOG.md copy
# and Chart.yaml's Artifact Hub annotations from CHANGELOG.md (tests fail when they drift).
docs: setup
	$(PY) schema/generate.py

# Every image the chart pulls for VALUES (and SET, helm --set syntax), one per line and nothing else: the
# vendoring list (README).
images:
	@ci/setup.sh >&2
	@$(PY) ci/images.py $(VALUES) $(if $(SET),--set '$(SET)',)

# The chart as dist/agent-backend-<version>.tgz, reproducible, CHANGELOG.md inside; signed (.prov) when
# HELM_SIGN_KEY and HELM_SIGN_KEYRING are set (ci/package.py says how).
package: setup
	$(PY) ci/package.py

# The service image without a Docker daemon (root: mmdebstrap): dist/image/ (OCI layout, tag = appVersion),
# dist/agent-backend-<appVersion>.oci.tar and its package list; reproducible, cached on its inputs
# (FRESH=1 rebuilds). ci/image.py says how.
image: setup
	$(PY) ci/image.py $(if $(FRESH),--fresh,)

# The chart (oci://REGISTRY/charts/agent-backend:<version>) and the image
# (REGISTRY/<image.repository>:<appVersion>) pushed to REGISTRY=<host[:port][/path]>; plain HTTP only on
# loopback; credentials from `helm registry login` and `skopeo login` (ci/publish.py says how).
publish: setup package image
	$(PY) ci/publish.py $(REGISTRY)
