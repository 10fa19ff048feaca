"""A throwaway OCI registry on loopback (Debian's `docker-registry`, distribution 2.8), and reading
manifest digests back from one with skopeo.

    with Registry() as reg:                        # temp dir, filesystem storage, 127.0.0.1 and a port of the OS's
        reg.host                                   # "127.0.0.1:PORT": what REGISTRY / imageRegistry take
        manifest_digest(f"docker://{reg.host}/charts/agent-backend:0.1.4")   # "sha256:...", images and charts alike

The registry binds `127.0.0.1:0` itself and `start()` reads the port it got from its log ("listening on
..."), so no port is chosen before it is bound; then it polls `http://host/v2/` with a deadline. Its log
is `log` in its temp dir, quoted when it fails to start and printed (stderr, so in the test's report) when
the `with` block it serves fails. Plain HTTP, no auth, no delete: a test registry.
"""
from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.support.proc import die_with_parent, stop_process

CONFIG = """\
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: {data}
http:
  addr: 127.0.0.1:0
"""
LISTENING = re.compile(r"listening on 127\.0\.0\.1:(\d+)")


class RegistryError(Exception):
    """The registry exited or did not answer in time; the message carries its log."""


class Registry:
    def __init__(self, name: str = "registry") -> None:
        self.name = name
        self.dir = Path(tempfile.mkdtemp(prefix=f"{name}-"))
        self.log = self.dir / "log"
        self.port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        """`127.0.0.1:PORT`, once started."""
        assert self.port is not None, f"{self.name} registry not started"
        return f"127.0.0.1:{self.port}"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else "(no log)"

    def _fail(self, why: str) -> RegistryError:
        return RegistryError(f"{self.name} registry {why}; its log ({self.log}):\n{self.log_text()[-4000:]}")

    def start(self, timeout: float = 60.0) -> "Registry":
        """Start it and return once `GET /v2/` answers 200. `timeout` is a hang bound, not a speed check."""
        config = self.dir / "config.yml"
        config.write_text(CONFIG.format(data=self.dir / "data"))
        binary = shutil.which("docker-registry")
        if binary is None:
            raise RuntimeError("docker-registry not found: apt-get install docker-registry")
        with open(self.log, "ab") as logf:
            self._proc = subprocess.Popen([binary, "serve", str(config)], stdout=logf, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, start_new_session=True,
                                          preexec_fn=die_with_parent)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise self._fail(f"exited with status {self._proc.returncode}")
            if self.port is None:
                found = LISTENING.search(self.log_text())
                self.port = int(found.group(1)) if found else None
            if self.port is not None and self._answers():
                return self
            time.sleep(0.05)
        self.stop()
        raise self._fail(f"did not answer on /v2/ within {timeout:g}s")

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.host}/v2/", timeout=2) as resp:
                return resp.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        """Stop it (SIGTERM, then SIGKILL) and delete its storage."""
        if self._proc is not None:
            stop_process(self._proc)
            self._proc = None
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "Registry":
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is not None:  # a failure inside the block: its log goes into the test's report
            print(f"--- {self.name} registry log ---\n{self.log_text()[-4000:]}", file=sys.stderr)
        self.stop()


def manifest_digest(ref: str) -> str:
    """The digest of the manifest a skopeo reference names (`docker://127.0.0.1:PORT/repository:tag` on a
    loopback registry, plain HTTP; or `oci:LAYOUT:TAG`): sha256 of its exact bytes (`skopeo inspect --raw`,
    as `--format {{.Digest}}` refuses helm chart artifacts). AssertionError with skopeo's message when it
    is not there."""
    result = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", ref], capture_output=True,
                            timeout=120)
    assert result.returncode == 0, f"{ref}: {result.stderr.decode(errors='replace').strip()}"
    return "sha256:" + hashlib.sha256(result.stdout).hexdigest()


def by_digest(ref: str) -> str:
    """`repository:tag@digest` as skopeo takes it (`repository@digest`: a runtime pulls by the digest, the tag
    is for people); a reference without a digest as it is."""
    name, _, digest = ref.partition("@")
    return f"{name.rsplit(':', 1)[0]}@{digest}" if digest else ref
