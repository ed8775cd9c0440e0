#!/usr/bin/env bash
# Interoperability tests: the release binary against the Airbyte protocol
# models, PyAirbyte, Meltano and a Singer target loading a real PostgreSQL
# (interop/, items 6-9 of the issue).
#
#   bash .ci/interop.sh            (from the repository root; CI runs it as root)
#   bash .ci/interop.sh -k meltano (extra arguments go to pytest)
#   INTEROP_BINARY=/path/to/source-constant-contact bash .ci/interop.sh
#                                  (test that binary instead of building one)
#
# Python venvs live under ${XDG_CACHE_HOME:-$HOME/.cache}/source-constant-contact-ci/,
# one per interop/requirements-*.txt, keyed by a hash of that file and of the
# Python version, so later runs reuse them. PostgreSQL comes from Debian's
# `postgresql` package (installed when missing) and runs as a throwaway
# cluster on a free local port for the length of the run.
# kill_tree and cleanup run from the EXIT trap, which shellcheck cannot see:
# shellcheck disable=SC2317
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

T0=$(date +%s)
STEP_T=$T0
step() {
    local now
    now=$(date +%s)
    echo
    echo "== [$((now - T0))s total, previous step $((now - STEP_T))s] $*"
    STEP_T=$now
}

PYTHON=${INTEROP_PYTHON:-python3}
CACHE=${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/source-constant-contact-ci
WORK=$(mktemp -d "${TMPDIR:-/tmp}/interop.XXXXXX")
mkdir -p "$CACHE"
PG_DATA=""
PG_CTL=""

as_postgres() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

# Ends a background job of this script and everything it started (pip, apt).
kill_tree() {
    local child
    for child in $(ps -o pid= --ppid "$1" 2>/dev/null); do
        kill_tree "$child"
    done
    kill "$1" 2>/dev/null || true
}

cleanup() {
    local code=$?
    if [ -n "$PG_DATA" ] && [ -f "$PG_DATA/postmaster.pid" ]; then
        as_postgres "$PG_CTL" -D "$PG_DATA" -m immediate stop >/dev/null 2>&1 || true
    fi
    for pid in $(jobs -p); do
        kill_tree "$pid"
    done
    rm -rf "$WORK"
    echo "== interop.sh finished in $(($(date +%s) - T0))s with exit code $code"
}
trap cleanup EXIT

step "toolchain"
"$PYTHON" --version
cargo --version
PYVER=$("$PYTHON" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')

# ---------------------------------------------------------------- venvs
# venv_dir and make_venv (shared with .ci/image.sh)
# shellcheck source=.ci/venv.sh
source "$ROOT/.ci/venv.sh"

step "python venvs (in the background), PostgreSQL package, release build"
if ! "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null; then
    # Debian's own python3 needs python3-venv for `python -m venv`.
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    fi
fi

VENV_NAMES=(test pyairbyte meltano target-postgres pipelinewise-target-postgres)
declare -A VENV_PID
for name in "${VENV_NAMES[@]}"; do
    make_venv "$name" >"$WORK/venv-$name.log" 2>&1 &
    VENV_PID[$name]=$!
done

find_pg_bin() {
    find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1
}
PG_LOG="$WORK/apt.log"
(
    if [ -z "$(find_pg_bin)" ] || [ ! -x "$(find_pg_bin)/initdb" ]; then
        t=$SECONDS
        if [ "$(id -u)" != 0 ]; then
            echo "PostgreSQL is not installed and this is not root: apt-get install postgresql first"
            exit 1
        fi
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql
        echo "installed PostgreSQL in $((SECONDS - t))s"
    else
        echo "PostgreSQL already installed: $(find_pg_bin)"
    fi
) >"$PG_LOG" 2>&1 &
APT_PID=$!

t=$SECONDS
if [ -n "${INTEROP_BINARY:-}" ]; then
    # For local runs against a binary built elsewhere; CI leaves it unset.
    BINARY=$INTEROP_BINARY
    echo "using INTEROP_BINARY=$BINARY (no build)"
else
    cargo build --release --locked
    BINARY="${CARGO_TARGET_DIR:-$ROOT/target}/release/source-constant-contact"
    echo "release build: ${BINARY} in $((SECONDS - t))s"
fi
[ -x "$BINARY" ] || { echo "no connector binary at $BINARY"; exit 1; }

step "waiting for the venvs and PostgreSQL"
failed=0
for name in "${VENV_NAMES[@]}"; do
    if wait "${VENV_PID[$name]}"; then
        tail -n 1 "$WORK/venv-$name.log"
    else
        echo "venv $name FAILED:"
        cat "$WORK/venv-$name.log"
        failed=1
    fi
done
if wait "$APT_PID"; then
    tail -n 1 "$PG_LOG"
else
    echo "PostgreSQL install FAILED:"
    cat "$PG_LOG"
    failed=1
fi
[ "$failed" = 0 ] || exit 1

step "starting PostgreSQL"
PG_BIN=$(find_pg_bin)
PG_CTL="$PG_BIN/pg_ctl"
PG_DIR="$WORK/pg"
mkdir -p "$PG_DIR"
PG_DATA="$PG_DIR/data"
if [ "$(id -u)" = 0 ]; then
    chown postgres:postgres "$PG_DIR"
    chmod 755 "$WORK"
fi
PG_PORT=$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
PG_USER=$(if [ "$(id -u)" = 0 ]; then echo postgres; else id -un; fi)
as_postgres "$PG_BIN/initdb" -D "$PG_DATA" --auth=trust -U "$PG_USER" -E UTF8 >"$PG_DIR/initdb.log" 2>&1 ||
    { cat "$PG_DIR/initdb.log"; exit 1; }
as_postgres "$PG_CTL" -D "$PG_DATA" -l "$PG_DIR/server.log" -w -t 60 \
    -o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 -c fsync=off" start ||
    { cat "$PG_DIR/server.log"; exit 1; }
echo "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PG_PORT"

step "pytest (interop/)"
export INTEROP_BINARY="$BINARY"
INTEROP_PYAIRBYTE_PYTHON="$(venv_dir pyairbyte)/bin/python"
INTEROP_MELTANO="$(venv_dir meltano)/bin/meltano"
INTEROP_TARGET_POSTGRES="$(venv_dir target-postgres)/bin/target-postgres"
INTEROP_PIPELINEWISE_TARGET_POSTGRES="$(venv_dir pipelinewise-target-postgres)/bin/target-postgres"
export INTEROP_PYAIRBYTE_PYTHON INTEROP_MELTANO INTEROP_TARGET_POSTGRES INTEROP_PIPELINEWISE_TARGET_POSTGRES
export INTEROP_PG_HOST=127.0.0.1 INTEROP_PG_PORT="$PG_PORT" INTEROP_PG_USER="$PG_USER"
export PYTHONDONTWRITEBYTECODE=1
# The sandbox's tokens belong to this run, not to the user's token cache.
export SOURCE_CONSTANT_CONTACT_TOKEN_CACHE="$WORK/tokens.json"
export DO_NOT_TRACK=1 AIRBYTE_OFFLINE_MODE=1 MELTANO_SEND_ANONYMOUS_USAGE_STATS=false
TEST_PYTHON="$(venv_dir test)/bin/python"
set +e
(cd interop && timeout 1500 "$TEST_PYTHON" -m pytest --basetemp="$WORK/pytest" "$@")
code=$?
set -e
step "pytest exited with $code"
if [ "$code" = 5 ]; then
    echo "pytest collected no tests: that is a failure here"
    exit 1
fi
exit "$code"
