#!/usr/bin/env python3
"""`make images VALUES=<file>`: every image reference the chart will pull for that values file, one per
line and nothing else (the vendoring list: pipe it into `skopeo copy`). The chart is rendered with the
pinned helm, every object validated (tests/support/helm.py), and the images are read from every pod the
release can run: the Deployment's init and app containers, the `helm test` pod, pod-bearing
`extraDeploy` objects. A values file that the chart refuses prints helm's message on stderr, exit 1.

`make images VALUES=<file> SET=<key=value,...>` also passes SET to helm as `--set`, after the file (the
chart README's vendoring steps list the images at their upstream registry this way)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support import helm, k8s  # noqa: E402


def images(values_file: Path, set_: list[str] | None = None) -> list[str]:
    return sorted(k8s.pod_images(helm.render(files=[values_file], set_=set_)))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(usage="make images VALUES=<values file> [SET=<key=value,...>]")
    parser.add_argument("values", nargs="?", default="")
    parser.add_argument("--set", action="append", dest="set_", help="as helm's --set")
    args = parser.parse_args(argv)
    if not args.values:
        parser.print_usage(sys.stderr)
        return 2
    values_file = Path(args.values).resolve()
    if not values_file.is_file():
        print(f"no such values file: {args.values}", file=sys.stderr)
        return 2
    try:
        print("\n".join(images(values_file, args.set_)))
    except helm.HelmError as exc:
        print(exc.stderr.strip() or str(exc), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
