#!/usr/bin/env python3
"""`make demo`: the whole system on this machine, started the way the chart's Deployment runs it.

  1. render values-examples/quickstart.yaml with the pinned helm, lint it, validate every object;
  2. start it as the rendered pod would: a throwaway MariaDB configured as the values say, the
     rendered wait-for-MySQL and migration init containers, then the app container, each with the
     environment the pod would get; wait on the rendered readiness probe;
  3. talk to it with the real Seqera CLI (`seqera ai --headless`): a question with a streamed
     answer and a local command round trip, then `-c` to resume, then a question about the user's own
     Seqera Platform answered through Seqera MCP, then the month's usage;
  4. print where it listens and how to talk to it, and wait for Ctrl-C.
Everything it starts is stopped and every temp file removed on exit (Ctrl-C, SIGTERM, SIGHUP when the
terminal closes, or failure).

`--once` (`make demo ONCE=1`): steps 1-3 without waiting, exit 0 only if every step succeeded.

Running on one machine needs a few values to differ from the quickstart file (the database and
Platform are local here); they are passed to the processes explicitly and printed. Platform's token
check goes to a local stand-in of `GET /api/user-info`, and Seqera MCP is a local MCP server (built with
the `mcp` SDK) that shows the demo user some runs. With ANTHROPIC_API_KEY in your environment the model
is Anthropic's, and Claude chooses the Platform tool itself; without it, a local stand-in model that
says so in its answers.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import selectors
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterator

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from tests.support import mariadb as mariadb_support  # noqa: E402
from tests.support import paths, sse  # noqa: E402
from tests.support.helm import KUBE_VERSION, VALIDATE_VERSIONS, lint, render  # noqa: E402
from tests.support.localpod import LocalPod  # noqa: E402
from tests.support.proc import stop_process  # noqa: E402
from tests.support.standins import free_port  # noqa: E402
from tests.support.standins.anthropic import AnthropicStandIn  # noqa: E402
from tests.support.standins.langsmith import LangSmithStandIn  # noqa: E402
from tests.support.standins.mcp import McpStandIn  # noqa: E402
from tests.support.standins.platform import PlatformStandIn  # noqa: E402

QUICKSTART = paths.VALUES_EXAMPLES / "quickstart.yaml"
HELM = "helm4"
RELEASE = "agent-backend"
NAMESPACE = "seqera"
PREFERRED_PORT = 8002
CLI_TIMEOUT = 300
# The signals that stop the demo: Ctrl-C, `kill`, and the terminal closing.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

QUESTION = ("What is in this project, and what does its pipeline do? "
            "Please run `ls -l` first and tell me what you see.")
FOLLOW_UP = "Thanks. In one sentence: what did I ask you to do before?"
PLATFORM_QUESTION = "Which of my runs in workspace `demo/prod` failed last night, and why?"
MAIN_NF = """\
// A tiny Nextflow pipeline for the demo conversation.
params.greeting = 'Hello'

process SAY_HELLO {
    input:  val name
    output: stdout
    script: "echo '${params.greeting}, ${name}!'"
}

workflow {
    Channel.of('world', 'Seqera') | SAY_HELLO | view
}
"""


class StepFailed(Exception):
    pass


class Interrupted(BaseException):
    """One of STOP_SIGNALS: stop everything and leave."""


def say(text: str = "", end: str = "\n") -> None:
    """Print and flush; when the terminal is gone (SIGHUP) the text is lost but the clean-up goes on."""
    with contextlib.suppress(OSError):
        print(text, end=end, flush=True)


def indent(text: str, prefix: str = "      ") -> str:
    return "\n".join(prefix + line for line in text.rstrip("\n").splitlines())


def port_free(port: int) -> bool:
    """Whether the service could listen on `port`: it binds with SO_REUSEADDR, so TIME-WAIT does not count."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


class Demo:
    def __init__(self, once: bool, port: int) -> None:
        self.once = once
        self.requested_port = port
        self.tmp = Path(tempfile.mkdtemp(prefix="ab-demo-"))
        self._cleanups: list[tuple[str, Callable[[], None]]] = []
        self.results: list[tuple[str, bool]] = []
        self.token = "demo-" + secrets.token_urlsafe(16)
        self.pod: LocalPod | None = None
        self.app_proc: subprocess.Popen[bytes] | None = None
        self.app_log = self.tmp / "agent-backend.log"
        self.base_url = ""
        self.platform: PlatformStandIn | None = None
        self.model: AnthropicStandIn | None = None
        self.mcp: McpStandIn | None = None
        self.real_anthropic = bool(os.environ.get("ANTHROPIC_API_KEY"))
        self.cli_procs: list[subprocess.Popen[bytes]] = []
        self.traces: LangSmithStandIn | None = None
        self.on_exit("any Seqera CLI still running", self._stop_clis)

    # ---- bookkeeping ---------------------------------------------------------------------------
    def on_exit(self, what: str, fn: Callable[[], None]) -> None:
        self._cleanups.append((what, fn))

    def started(self, what: str, pid: int | None = None) -> None:
        say(f"      started {what}" + (f" (pid {pid})" if pid else ""))

    @contextlib.contextmanager
    def step(self, title: str) -> Iterator[None]:
        say(f"\n==> {title}")
        try:
            yield
        except Interrupted:
            raise
        except StepFailed as e:
            self.results.append((title, False))
            say(f"    FAIL: {e}")
            raise
        except Exception as e:  # noqa: BLE001 - every failure is reported as the step's
            self.results.append((title, False))
            say(f"    FAIL: {type(e).__name__}: {e}")
            say(indent(traceback.format_exc(), "      | "))
            raise StepFailed(str(e)) from e
        self.results.append((title, True))
        say("    OK")

    def _stop_clis(self) -> None:
        for proc in self.cli_procs:
            stop_process(proc, group=True)

    def cleanup(self) -> None:
        # A second Ctrl-C must not cut the clean-up short.
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        say("\n==> Stopping everything this demo started")
        for what, fn in reversed(self._cleanups):
            try:
                fn()
                say(f"    stopped {what}")
            except Exception as e:  # noqa: BLE001 - keep cleaning up
                say(f"    could not stop {what}: {e}")
        self._cleanups.clear()
        shutil.rmtree(self.tmp, ignore_errors=True)
        say(f"    removed {self.tmp}")

    # ---- step 1 --------------------------------------------------------------------------------
    def render(self) -> None:
        version = paths.HELM_BINARIES[HELM].parent.name.replace("helm-", "")
        title = (f"1. Render {QUICKSTART.relative_to(ROOT)} with helm {version}"
                 f", lint it, validate every object")
        with self.step(title):
            say(f"      helm template {RELEASE} charts/agent-backend -n {NAMESPACE} -f "
                f"{QUICKSTART.relative_to(ROOT)} --kube-version {KUBE_VERSION}")
            self.objs = render(files=[QUICKSTART], helm=HELM, release=RELEASE, namespace=NAMESPACE)
            for o in self.objs:
                say(f"        {o['kind']}/{o['metadata']['name']}")
            say(f"      every object validated (strict) against the Kubernetes {' and '.join(VALIDATE_VERSIONS)} "
                f"schemas")
            out = lint(files=[QUICKSTART], helm=HELM, namespace=NAMESPACE)
            last = [line for line in out.splitlines() if line.strip()][-1:]
            say(f"      helm lint --strict: {last[0] if last else 'ok'}")
            self.values = yaml.safe_load(QUICKSTART.read_text())

    # ---- step 2 --------------------------------------------------------------------------------
    def start_system(self) -> None:
        with self.step("2. Start the system on this machine the way the rendered Deployment runs it"):
            db_values = self.values["database"]
            say("      local stand-ins for what is not on this machine:")
            self.platform = PlatformStandIn().start()
            self.on_exit("the Platform stand-in", self.platform.stop)
            self.platform.add_user(self.token, "demo-user", email="demo-user@example.org")
            say(f"        Seqera Platform user-info: {self.platform.api_url}/user-info  (a local stand-in: it "
                f"accepts the demo's token only)")
            self.mcp = McpStandIn(self.platform).start()
            self.on_exit("the Seqera MCP stand-in", self.mcp.stop)
            say(f"        Seqera MCP: {self.mcp.url}  (a local MCP server built with the mcp SDK: the demo "
                f"user's runs, nf-core search, a launch)")
            if self.real_anthropic:
                say("        model: Anthropic's API (ANTHROPIC_API_KEY is set in your environment)")
            else:
                self.model = AnthropicStandIn().start()
                self.on_exit("the Anthropic stand-in", self.model.stop)
                say(f"        model: a local stand-in of the Anthropic Messages API at {self.model.url} (no "
                    f"ANTHROPIC_API_KEY in your environment; its answers say so)")
            self.traces = traces = LangSmithStandIn().start()
            self.on_exit("the LangSmith stand-in", traces.stop)
            say(f"        LangSmith: a local stand-in at {traces.url} (records the traces)")

            db = mariadb_support.MariaDB(basedir=self.tmp / "mariadb")
            # The helper installs the system tables into a template under the temp dir; point it at the
            # demo's own temp dir, so the demo never shares (or removes) a template other runs use.
            saved, tempfile.tempdir = tempfile.tempdir, str(self.tmp)
            try:
                db.start()
            finally:
                tempfile.tempdir = saved
            self.on_exit("MariaDB", db.destroy)
            self.started(f"MariaDB {db.host}:{db.port} (data in {db.datadir})",
                         db._proc.pid if db._proc else None)
            db.create_database(name=db_values["name"], user=db_values["username"], password=db_values["password"])
            say(f"      created database `{db_values['name']}` and user `{db_values['username']}` with the "
                f"password from the values (not shown)")

            container_port = next(p["containerPort"] for p in LocalPod(self.objs).app["ports"]
                                  if p["name"] == "http")
            port = self.requested_port or container_port
            if not port_free(port):
                taken = port
                port = free_port()
                say(f"      port {taken} is taken on this machine; the service listens on {port} instead")
            overrides: dict[str, str] = {
                "AGENT_BACKEND_DB_HOST": db.host,
                "AGENT_BACKEND_DB_PORT": str(db.port),
                "SEQERA_PLATFORM_API_URL": self.platform.api_url,
                "SEQERA_MCP_URL": self.mcp.url,
                "LANGSMITH_ENDPOINT": traces.url,
            }
            if port != container_port:
                overrides["AGENT_BACKEND_PORT"] = str(port)
            if self.real_anthropic:
                overrides["ANTHROPIC_API_KEY"] = os.environ["ANTHROPIC_API_KEY"]
            else:
                assert self.model is not None
                overrides["ANTHROPIC_BASE_URL"] = self.model.url
            self.pod = pod = LocalPod(self.objs, overrides=overrides, ports={container_port: port},
                                      scratch=self.tmp / "pod")
            self.on_exit("the pod's processes", pod.close)
            cm = next(o for o in self.objs if o["kind"] == "ConfigMap")["data"]
            say("      overrides to run on one machine (everything else is exactly as rendered):")
            for k, v in overrides.items():
                shown = "<from your environment, not shown>" if k == "ANTHROPIC_API_KEY" else v
                was = f"   (rendered: {cm[k]})" if k in cm else "   (not set by the chart)"
                say(f"        {k}={shown}{was}")

            for init in pod.init_containers:
                say(f"      init container `{init['name']}` ({init['image']}):")
                say(indent(self._describe(pod, init), "        $ "))
                result = pod.run(init, timeout=180)
                output = (result.stdout + result.stderr).strip()
                if output:
                    say(indent(output[-3000:], "        | "))
                if result.returncode != 0:
                    raise StepFailed(f"init container {init['name']} exited {result.returncode}")
                say("        exited 0")

            app = pod.app
            say(f"      app container `{app['name']}` ({app['image']}):")
            say(indent(self._describe(pod, app), "        $ "))
            log = open(self.app_log, "wb")
            self.app_proc = pod.spawn(app, stdout=log, stderr=log)
            log.close()
            self.started("the service", self.app_proc.pid)
            probe = pod.probe(app)["httpGet"]
            say(f"      waiting on the rendered readinessProbe: GET {probe['path']} on port {probe['port']!r} "
                f"-> {pod.probe_url(app)}")
            try:
                pod.wait_ready(app, self.app_proc, timeout=120)
            except Exception:
                say(indent(self.app_log.read_text(errors="replace")[-4000:], "        | "))
                raise
            self.base_url = f"http://127.0.0.1:{port}"
            say(f"      ready: the service listens on {self.base_url}")

    @staticmethod
    def _describe(pod: LocalPod, container: dict[str, Any]) -> str:
        argv = pod.argv(container)
        if len(argv) >= 3 and argv[-2] == "-c" and "\n" in argv[-1].strip():
            script = argv[-1].strip().splitlines()
            return f"{shlex.join(argv[:-1])} '<the rendered {len(script)}-line script>'   (in " \
                   f"{pod.workdir(container)})"
        text = pod.describe(container)
        if not container.get("command"):
            text += "\n  (no command in the pod spec: the image's default, CMD in service/Dockerfile)"
        return text

    # ---- step 3 --------------------------------------------------------------------------------
    def cli_env(self) -> dict[str, str]:
        home = self.tmp / "cli-home"
        home.mkdir(exist_ok=True)
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "LANG": "C.UTF-8",
            "SEQERA_AI_BACKEND_URL": self.base_url,
            "SEQERA_ACCESS_TOKEN": self.token,
            "SEQERA_LOG_LEVEL": "off",
            "SEQERA_NO_KEYCHAIN": "true",
        }

    def seqera(self, *args: str, cwd: Path) -> tuple[str, str]:
        """Run the CLI, echoing its answer as it streams. Returns (stdout, stderr); a non-zero exit fails
        the step.

        Waits at most CLI_TIMEOUT seconds in all, even for a CLI that hangs without printing; then it
        kills the CLI's process group and fails the step."""
        cmd = [str(paths.SEQERA_CLI), "ai", "--headless", *args]
        say(f"      $ seqera ai --headless {shlex.join(args)}")
        proc = subprocess.Popen(cmd, cwd=cwd, env=self.cli_env(), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        self.cli_procs.append(proc)
        self.started("the Seqera CLI", proc.pid)
        err_chunks: list[bytes] = []
        reader = threading.Thread(target=lambda: err_chunks.append(proc.stderr.read()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        out = bytearray()
        say("      answer (streamed):")
        say("        > ", end="")
        deadline = time.monotonic() + CLI_TIMEOUT
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    stop_process(proc, group=True)
                    raise StepFailed(f"the Seqera CLI (pid {proc.pid}) did not finish within {CLI_TIMEOUT}s; "
                                     f"its process group was killed")
                data = os.read(fd, 4096)
                if not data:
                    break
                out += data
                say(data.decode(errors="replace").replace("\n", "\n        > "), end="")
        try:
            rc = proc.wait(max(deadline - time.monotonic(), 1))
        except subprocess.TimeoutExpired:
            stop_process(proc, group=True)
            raise StepFailed(f"the Seqera CLI (pid {proc.pid}) closed its output but did not exit within "
                             f"{CLI_TIMEOUT}s; its process group was killed") from None
        reader.join(10)
        say("")
        err = b"".join(err_chunks).decode(errors="replace")
        if err.strip():
            say(indent(err.strip()[-3000:], "        (stderr) "))
        say(f"      exit status {rc}")
        if rc != 0:
            raise StepFailed(f"seqera ai{' -c' if '-c' in args else ''} exited {rc}")
        return out.decode(errors="replace"), err

    def text_deltas(self, session_id: str) -> list[str]:
        """The text-delta parts the service streamed (SSE) in a session, replayed from its event log."""
        body = self.get(f"/v1/cli/sessions/{session_id}/events?history_only=1&cursor=1").decode()
        parts = [f.json() for f in sse.parse(body) if f.data is not None and f.data.startswith("{")]
        return [p["delta"] for p in parts if p.get("type") == "text-delta"]

    def session_of(self, project: Path) -> str:
        """The id of the one (expired) CLI session the service lists for `project`."""
        listed = self.api(f"/v1/cli/sessions?limit=10&cwd={urllib.request.quote(str(project))}&status=expired")
        sessions = listed.get("sessions") or []
        if len(sessions) != 1:
            raise StepFailed(f"expected one session for {project}, the service lists {len(sessions)}")
        return sessions[0]["session_id"]

    def get(self, path: str) -> bytes:
        """The body of GET `path` on the service, with the demo's token."""
        req = urllib.request.Request(self.base_url + path, headers={"Authorization": f"Bearer {self.token}"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.read()

    def api(self, path: str) -> Any:
        """GET `path` on the service, as JSON."""
        return json.loads(self.get(path))

    def converse(self) -> None:
        with self.step("3. Talk to the service with the real Seqera CLI"):
            project = self.tmp / "project"
            project.mkdir()
            (project / "main.nf").write_text(MAIN_NF)
            (project / "nextflow.config").write_text("params.greeting = 'Hello'\n")
            say(f"      CLI: {paths.SEQERA_CLI.relative_to(ROOT)}")
            say(f"      in a demo project {project} (main.nf, nextflow.config), with HOME in a temp dir,")
            say(f"      SEQERA_AI_BACKEND_URL={self.base_url} SEQERA_ACCESS_TOKEN=<the demo token> "
                f"SEQERA_LOG_LEVEL=off")

            say("\n    3a. a question; the answer streams back, with one local command round trip")
            out, err = self.seqera("--show-tools", "--show-tool-results", QUESTION, cwd=project)
            if not out.strip():
                raise StepFailed("the CLI printed no answer")
            if "execute_bash_local" not in err:
                raise StepFailed("the model did not ask the CLI to run a local command")
            if "main.nf" not in err:
                raise StepFailed("the local command's output (listing main.nf) did not reach the service")
            say("      local command round trip: the service asked the CLI to run it (execute-local), the CLI ran "
                "it here and posted the result back, the answer went on")
            sid = self.session_of(project)
            deltas = self.text_deltas(sid)
            if len(deltas) < 2:
                raise StepFailed(f"the answer was not streamed: the service sent it as {len(deltas)} text-delta "
                                 f"event(s) (session {sid})")
            say(f"      streamed: the service sent the answer as {len(deltas)} text-delta SSE events")

            say("\n    3b. `-c`: resume the conversation (the CLI closed the session after 3a)")
            out2, err2 = self.seqera("-c", FOLLOW_UP, cwd=project)
            if "No expired session found" in err2:
                raise StepFailed("the CLI found no session to resume")
            if not out2.strip():
                raise StepFailed("the CLI printed no answer on resume")
            if self.session_of(project) != sid:
                raise StepFailed(f"the CLI did not resume session {sid}")
            messages = self.api(f"/v1/cli/sessions/{sid}/messages").get("messages") or []
            users = [m for m in messages if m.get("role") == "user"]
            if len(users) < 2:
                raise StepFailed(f"session {sid} holds {len(users)} user message(s); the resume did not continue it")
            say(f"      resumed: both turns are in session {sid} ({len(messages)} messages, "
                f"{len(users)} from you)")

            say("\n    3c. a question about your own Seqera Platform, answered through Seqera MCP")
            out3, err3 = self.seqera("--show-tools", "--show-tool-results", PLATFORM_QUESTION, cwd=project)
            if "[tool] mcp__seqera__" not in err3:
                raise StepFailed("the model did not call a Seqera MCP tool")
            if "demo-user_rnaseq_nightly" not in err3 or not out3.strip():
                raise StepFailed("the Platform's answer (the demo user's failed run) did not come back")
            if "[tool] execute_bash_local" in err3:
                raise StepFailed("a local command ran for a Platform question")
            assert self.mcp is not None
            say(f"      the service called Seqera MCP with your token ({', '.join(c.tool for c in self.mcp.calls)}); "
                f"the CLI showed the call and its result, no local command ran")

            say("\n    3d. this month's usage (GET /v1/cli/credits, what the CLI's /credits shows)")
            usage = self.api("/v1/cli/credits")
            say(indent(json.dumps(usage, indent=2), "        "))
            if not usage.get("input_tokens") and not usage.get("output_tokens"):
                raise StepFailed("no token usage recorded for the conversation")

            assert self.platform is not None
            say(f"\n      Platform stand-in: it answered {self.platform.user_info_calls(self.token)} token check(s) "
                f"(GET /api/user-info) for the CLI's calls")
            if self.model is not None:
                say(f"      Anthropic stand-in: {len(self.model.message_requests)} model call(s); answers above are "
                    f"its canned replies, not Claude's")
            else:
                say("      model: Anthropic's API")
            if self.traces is not None:
                self.traces.wait_for_runs(lambda runs: len(runs) > 0, timeout=10)
                say(f"      LangSmith stand-in: {len(self.traces.root_runs())} traced turn(s) received")

    # ---- step 4 --------------------------------------------------------------------------------
    def serve(self) -> None:
        say("\n==> 4. The service is running")
        say(f"    It listens on {self.base_url} (the pod's port `http`; the chart's Service maps port 80 to it).")
        say("    Talk to it from another terminal, in the repository root:")
        say(f"      SEQERA_AI_BACKEND_URL={self.base_url} SEQERA_ACCESS_TOKEN={self.token} \\")
        say(f"        {paths.SEQERA_CLI.relative_to(ROOT)} ai")
        say("    (the token is the one the local Platform stand-in accepts; any other is refused with 401)")
        say(f"    Service log: {self.app_log}")
        say("    Press Ctrl-C to stop everything and remove the temp files.")
        while True:
            if self.app_proc is not None and self.app_proc.poll() is not None:
                say(f"    the service exited with {self.app_proc.returncode}")
                raise StepFailed("the service stopped")
            time.sleep(0.5)

    def run(self) -> int:
        ok = False
        try:
            self.render()
            self.start_system()
            self.converse()
            ok = True
            if not self.once:
                self.serve()
        except Interrupted:
            say("\n    interrupted")
        except StepFailed:
            ok = False
            if self.app_log.exists() and self.app_proc is not None:
                say("    service log (last lines):")
                say(indent(self.app_log.read_text(errors="replace")[-3000:], "      | "))
        finally:
            self.cleanup()
        say("\n==> Summary")
        for title, passed in self.results:
            say(f"    {'OK  ' if passed else 'FAIL'}  {title}")
        if self.once:
            all_ok = ok and self.results and all(p for _, p in self.results)
            say(f"\n{'demo: every step succeeded' if all_ok else 'demo: FAILED'}")
            return 0 if all_ok else 1
        return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--once", action="store_true", help="run steps 1-3, stop everything, exit 0 only if all passed")
    ap.add_argument("--port", type=int, default=0,
                    help=f"local port for the service (default: the container port, {PREFERRED_PORT}, if free)")
    args = ap.parse_args(argv)
    if not paths.SEQERA_CLI.exists():
        say(f"FAIL: the Seqera CLI is missing at {paths.SEQERA_CLI}: run ci/setup.sh (make demo does)")
        return 1

    def interrupt(signum: int, frame: Any) -> None:
        raise Interrupted()

    for sig in STOP_SIGNALS:
        signal.signal(sig, interrupt)
    return Demo(once=args.once, port=args.port).run()


if __name__ == "__main__":
    sys.exit(main())
