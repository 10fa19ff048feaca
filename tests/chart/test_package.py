"""`make package` (ci/package.py): the chart as a .tgz that is the same bytes wherever the same commit is
packaged, and, with a signing key configured, a .prov that `helm verify` accepts."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

from tests.support import helm as h
from tests.support import paths

PACKAGE = paths.ROOT / "ci" / "package.py"
EPOCH = "1764547200"  # any fixed SOURCE_DATE_EPOCH


def package(chart: Path, out: Path, **env: str) -> list[Path]:
    result = subprocess.run([str(paths.PYTHON), str(PACKAGE), "--chart", str(chart), "--out", str(out)],
                            capture_output=True, text=True, timeout=300,
                            env={**os.environ, "SOURCE_DATE_EPOCH": EPOCH, **env})
    assert result.returncode == 0, result.stderr
    return [Path(line) for line in result.stdout.splitlines()]


def test_the_same_chart_packaged_in_two_places_gives_the_same_bytes(tmp_path):
    made = []
    for name, mtime in (("here", None), ("there", 1_000_000_000)):
        chart = tmp_path / name / "agent-backend"
        shutil.copytree(paths.CHART, chart)  # fresh mtimes, like a new checkout
        if mtime is not None:
            for p in [chart, *chart.rglob("*")]:
                os.utime(p, (mtime, mtime))
        [tgz] = package(chart, tmp_path / name / "dist")
        assert tgz.name == "agent-backend-0.1.4.tgz"
        made.append(tgz.read_bytes())
    assert made[0] == made[1]


@pytest.fixture
def signing_key() -> Iterator[dict[str, Path | str]]:
    """A throwaway GPG key (no passphrase) in a GNUPGHOME of its own, exported the way helm reads keys."""
    home = Path(tempfile.mkdtemp(prefix="gpg-", dir="/tmp"))  # the agent's socket path must stay short
    env = {**os.environ, "GNUPGHOME": str(home)}
    try:
        email = "chart-signing-test@example.org"
        subprocess.run(["gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase", "", "--quick-gen-key",
                        f"agent-backend test <{email}>", "rsa2048", "sign", "never"],
                       check=True, capture_output=True, env=env, timeout=120)
        for what, args in (("secring.gpg", ["--export-secret-keys"]), ("pubring.gpg", ["--export"])):
            (home / what).write_bytes(subprocess.run(["gpg", "--batch", *args, email], check=True,
                                                     capture_output=True, env=env, timeout=60).stdout)
        yield {"key": email, "secret": home / "secring.gpg", "public": home / "pubring.gpg"}
    finally:
        subprocess.run(["gpgconf", "--kill", "all"], env=env, capture_output=True, timeout=60)
        shutil.rmtree(home, ignore_errors=True)


def verify(tgz: Path, keyring: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(h.helm_binary("helm4")), "verify", "--keyring", str(keyring), str(tgz)],
                          capture_output=True, text=True, env=h.helm_env("helm4"), timeout=120)


def test_a_signed_package_verifies_and_a_changed_one_does_not(tmp_path, signing_key):
    tgz, prov = package(paths.CHART, tmp_path, HELM_SIGN_KEY=str(signing_key["key"]),
                        HELM_SIGN_KEYRING=str(signing_key["secret"]))
    assert prov.name == tgz.name + ".prov"
    ok = verify(tgz, signing_key["public"])
    assert ok.returncode == 0, ok.stderr
    tgz.write_bytes(tgz.read_bytes() + b"\0")
    assert verify(tgz, signing_key["public"]).returncode != 0


def test_without_a_key_nothing_is_signed(tmp_path):
    assert [p.name for p in package(paths.CHART, tmp_path)] == ["agent-backend-0.1.4.tgz"]
