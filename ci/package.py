#!/usr/bin/env python3
"""`make package`: the chart as `dist/agent-backend-<version>.tgz`, reproducible, with its CHANGELOG.md.

Reproducible: helm writes each file's mtime into the archive, and a checkout's mtimes are the time of the
checkout; so the chart is packaged from a copy whose every mtime is SOURCE_DATE_EPOCH (default: the
commit's time, `git log -1 --format=%ct`). The same commit packaged anywhere gives the same bytes.

Signing (a `.prov` beside the .tgz, checked with `helm verify`): set HELM_SIGN_KEY (the key's name or
email) and HELM_SIGN_KEYRING (a secret keyring in the legacy format helm reads:
`gpg --export-secret-keys KEY > secring.gpg`), and HELM_SIGN_PASSPHRASE_FILE when the key has a
passphrase. Without HELM_SIGN_KEY nothing is signed.

    ci/package.py [--chart DIR] [--out DIR]      # defaults: charts/agent-backend, dist/
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from tests.support import helm, paths  # noqa: E402


def source_date_epoch() -> int:
    if os.environ.get("SOURCE_DATE_EPOCH"):
        return int(os.environ["SOURCE_DATE_EPOCH"])
    out = subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--format=%ct"], capture_output=True, text=True)
    if out.returncode != 0 or not out.stdout.strip():
        raise SystemExit("package: set SOURCE_DATE_EPOCH (not a git checkout)")
    return int(out.stdout.strip())


def sign_args() -> list[str]:
    key = os.environ.get("HELM_SIGN_KEY")
    if not key:
        return []
    keyring = os.environ.get("HELM_SIGN_KEYRING")
    if not keyring:
        raise SystemExit("package: HELM_SIGN_KEY is set, so set HELM_SIGN_KEYRING (a secret keyring) too")
    args = ["--sign", "--key", key, "--keyring", keyring]
    if os.environ.get("HELM_SIGN_PASSPHRASE_FILE"):
        args += ["--passphrase-file", os.environ["HELM_SIGN_PASSPHRASE_FILE"]]
    return args


def package(chart: Path, out: Path, epoch: int) -> list[Path]:
    """Package `chart` into `out`; returns the files written (.tgz, and .prov when signing)."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="package-") as tmp:
        copy = Path(tmp) / chart.name
        shutil.copytree(chart, copy)
        for path in [copy, *copy.rglob("*")]:
            os.utime(path, (epoch, epoch), follow_symlinks=False)
        result = subprocess.run([str(helm.helm_binary("helm4")), "package", str(copy), "--destination", str(out),
                                 *sign_args()], capture_output=True, text=True, env=helm.helm_env("helm4"))
    if result.returncode != 0:
        raise SystemExit(f"package: helm package failed:\n{result.stderr.strip()}")
    version = yaml.safe_load((chart / "Chart.yaml").read_text())["version"]
    return [p for p in (out / f"{chart.name}-{version}.tgz", out / f"{chart.name}-{version}.tgz.prov") if p.exists()]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--chart", type=Path, default=paths.CHART)
    parser.add_argument("--out", type=Path, default=ROOT / "dist")
    args = parser.parse_args(argv)
    for written in package(args.chart.resolve(), args.out.resolve(), source_date_epoch()):
        print(written)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
