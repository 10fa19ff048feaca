"""Where the repository keeps things, and where ci/setup.sh installs the pinned tools."""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "agent-backend"
VALUES_EXAMPLES = ROOT / "values-examples"
SERVICE = ROOT / "service"
TOOLS = ROOT / ".tools"

HELM_BINARIES = {
    "helm4": TOOLS / "helm-v4.1.4" / "helm",
    "helm3": TOOLS / "helm-v3.18.0" / "helm",
}
SEQERA_CLI = TOOLS / "seqera-cli" / "node_modules" / "@seqera" / "cli-linux-x64" / "bin" / "seqera"
# checkov, in a venv of its own (ci/requirements-checkov.txt): its pins conflict with the project venv's.
CHECKOV_PYTHON = TOOLS / "checkov" / "bin" / "python"
# Helm keeps its cache/config/data here, never in $HOME.
HELM_HOME = TOOLS / "helm-home"
# The project venv (ci/setup.sh): its python runs the service, the migrations and the scripts under test.
VENV_BIN = ROOT / ".venv" / "bin"
PYTHON = VENV_BIN / "python"
