#!/usr/bin/env bash
# make setup: install everything learnstream needs, idempotently. Each step keeps a stamp with a
# hash of its inputs (lock files, pom, package-lock) and is skipped while they are unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
STAMPS=.cache/stamps
mkdir -p "$STAMPS"
UV_VERSION=0.13.9

log() { printf '\033[1msetup:\033[0m %s\n' "$*" >&2; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }
hash_of() { cat "$@" | sha256sum | cut -c1-16; }
fresh() { [ -f "$STAMPS/$1" ] && [ "$(cat "$STAMPS/$1")" = "$2" ]; }
stamp() { echo "$2" > "$STAMPS/$1"; }

apt_ready=0
apt_install() {
  [ "$(id -u)" = 0 ] || die "missing $* and not root: install them with your package manager"
  if [ $apt_ready = 0 ]; then
    log "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    apt_ready=1
  fi
  log "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# --- system tools: Python 3.11, Java 17+, Maven, Node/npm -----------------------------------------
PYTHON=${PYTHON:-}
if [ -z "$PYTHON" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
      PYTHON=$("$candidate" -c 'import sys; print(sys.executable)'); break
    fi
  done
fi
if [ -z "$PYTHON" ]; then
  apt_install python3.11 python3.11-venv
  PYTHON=$(command -v python3.11)
fi
java_ok() { command -v java >/dev/null 2>&1 &&
  java -version 2>&1 | grep -Eq 'version "(1[7-9]|[2-9][0-9])'; }
java_ok || apt_install openjdk-17-jre-headless
command -v mvn >/dev/null 2>&1 || apt_install maven
command -v npm >/dev/null 2>&1 || apt_install nodejs npm
# Headless Chromium joins live classes in the tests (a real browser's WebRTC getStats()). Debian's
# archive serves only its current security build, so the version is not pinned here.
command -v chromium >/dev/null 2>&1 || apt_install chromium

# --- Python: the application venv, the Flink venv and the tools venv (slither) -----------------
make_venv() {  # $1 venv dir, $2 lock file, $3 "tools-only": the lock alone, not the project
  local venv=$1 lock=$2 kind=${3:-project} key
  if [ "$kind" = tools-only ]; then key=$(hash_of "$lock"); else key=$(hash_of "$lock" pyproject.toml); fi
  [ -x "$venv/bin/python" ] || { log "creating $venv"; "$PYTHON" -m venv "$venv"; }
  fresh "$(basename "$venv")" "$key" && [ -x .venv/bin/uv ] && return 0
  [ -x .venv/bin/uv ] || .venv/bin/python -m pip install -q --disable-pip-version-check "uv==$UV_VERSION"
  log "installing $lock into $venv"
  .venv/bin/uv pip sync -q --python "$venv/bin/python" "$lock"
  [ "$kind" = tools-only ] || .venv/bin/uv pip install -q --python "$venv/bin/python" --no-deps -e .
  stamp "$(basename "$venv")" "$key"
}
[ -x .venv/bin/python ] || { log "creating .venv"; "$PYTHON" -m venv .venv; }
[ -x .venv/bin/uv ] || .venv/bin/python -m pip install -q --disable-pip-version-check "uv==$UV_VERSION"
make_venv .venv requirements/app.lock
make_venv .venv-flink requirements/flink.lock
# slither-analyzer needs web3<8 (the app pins 8): its own venv, run as a command by the tests.
make_venv .venv-tools requirements/tools.lock tools-only

# --- JVM: Kafka broker + tools, Flink Kafka connector, from Maven Central ----------------------
key=$(hash_of build/pom.xml)
if ! fresh jars "$key" || ! ls .cache/jars/kafka/kafka_2.13-*.jar >/dev/null 2>&1; then
  log "resolving Kafka and Flink connector jars with Maven (build/pom.xml)"
  rm -rf .cache/jars
  mvn -q -B -f build/pom.xml package > .cache/mvn.log 2>&1 || { cat .cache/mvn.log >&2; die "Maven could not resolve the jars (log above)"; }
  stamp jars "$key"
fi

# --- npm: anvil, forge, solcjs, OpenZeppelin ---------------------------------------------------
key=$(hash_of tools/package.json tools/package-lock.json)
if ! fresh npm "$key" || [ ! -d tools/node_modules/@foundry-rs/forge ] ||
   [ ! -d tools/node_modules/@openzeppelin/contracts ]; then
  log "installing anvil, forge, solc and OpenZeppelin from npm into tools/node_modules"
  npm ci --prefix tools --no-audit --no-fund --no-update-notifier --loglevel=error >/dev/null
  stamp npm "$key"
fi

log "ready: .venv (app), .venv-flink (PyFlink), .venv-tools (slither), .cache/jars, tools/node_modules"
