#!/usr/bin/env bash
# Builds the Docker image offline with shared/tools/local-image.sh (podman, no
# registry) and checks what a platform relies on:
#   * `spec` prints exactly one SPEC message on stdout;
#   * `discover` reads a config file mounted read-only and lists the streams;
#   * `demo` (full + incremental sync against the in-process sandbox), started
#     through $AIRBYTE_ENTRYPOINT as the image's non-root user, succeeds, writes
#     its default output file in the working directory, and prints a summary
#     row for every stream; the file holds records and states;
#   * the image's io.airbyte.* labels, AIRBYTE_ENTRYPOINT, ENTRYPOINT and USER
#     match metadata.yaml and Cargo.toml.
# Runs from any directory, needs root (local-image.sh does), no stdin.
# Environment: LOCAL_IMAGE_SH (default ../shared/tools/local-image.sh from the
# repository root), IMAGE_TAG (default source-constant-contact:ci),
# KEEP_IMAGE=1 keeps the image afterwards (it is removed by default),
# SKIP_BUILD=1 checks an image built before (with KEEP_IMAGE=1).
set -euo pipefail
cd "$(dirname "$0")/.."
exec </dev/null

LOCAL_IMAGE_SH=${LOCAL_IMAGE_SH:-../shared/tools/local-image.sh}
TAG=${IMAGE_TAG:-source-constant-contact:ci}
BINARY=/usr/local/bin/source-constant-contact
START=$SECONDS
PASSED=0
WORK=$(mktemp -d)

fail() {
  echo "image.sh: FAILED: $*" >&2
  echo "image: $PASSED passed, 1 failed" >&2
  exit 1
}
ok() { PASSED=$((PASSED + 1)); echo "image.sh: ok: $*"; }
show() { echo "--- $1" >&2; tail -n "${3:-40}" "$2" >&2; echo "---" >&2; }

cleanup() {
  rm -rf "$WORK"
  if [ "${KEEP_IMAGE:-0}" != 1 ] && [ -n "${IMAGE_BUILT:-}" ]; then
    (eval "$(bash "$LOCAL_IMAGE_SH" env)" && podman rmi -f "$TAG" >/dev/null 2>&1) || true
  fi
}
trap cleanup EXIT

[ -f "$LOCAL_IMAGE_SH" ] || fail "no $LOCAL_IMAGE_SH (shared/ must be checked out beside the repository)"
command -v python3 >/dev/null || fail "python3 is needed to check the JSON output"
[ "$(id -u)" = 0 ] || fail "local-image.sh needs root"

# What the image must carry, from the repository's own files.
VERSION=$(sed -nE 's/^version[[:space:]]*=[[:space:]]*"([^"]+)".*/\1/p' Cargo.toml | head -n1)
REPO=$(sed -nE 's/^[[:space:]]+dockerRepository:[[:space:]]*"?([^"[:space:]]+)"?.*/\1/p' metadata.yaml | head -n1)
IMAGE_TAG_META=$(sed -nE 's/^[[:space:]]+dockerImageTag:[[:space:]]*"?([^"[:space:]]+)"?.*/\1/p' metadata.yaml | head -n1)
if [ -z "$VERSION" ] || [ -z "$REPO" ] || [ -z "$IMAGE_TAG_META" ]; then
  fail "cannot read version (Cargo.toml) or dockerRepository/dockerImageTag (metadata.yaml)"
fi
[ "$IMAGE_TAG_META" = "$VERSION" ] \
  || fail "metadata.yaml dockerImageTag $IMAGE_TAG_META differs from Cargo.toml version $VERSION"

# --- build --------------------------------------------------------------------------
echo "== image: build $TAG with $LOCAL_IMAGE_SH"
t=$SECONDS
if [ "${SKIP_BUILD:-0}" = 1 ]; then
  echo "image.sh: SKIP_BUILD=1: checking the existing $TAG"
else
  bash "$LOCAL_IMAGE_SH" build -t "$TAG" . || fail "image build failed (output above)"
fi
IMAGE_BUILT=1
BUILD_SECS=$((SECONDS - t))
ok "built $TAG in ${BUILD_SECS}s"

run() { bash "$LOCAL_IMAGE_SH" run "$@"; }

# --- spec ---------------------------------------------------------------------------
echo "== image: spec"
run "$TAG" spec >"$WORK/spec.out" 2>"$WORK/spec.err" \
  || { show "spec stderr" "$WORK/spec.err"; fail "spec exited non-zero"; }
python3 - "$WORK/spec.out" <<'EOF' || { show "spec stdout" "$WORK/spec.out" 5; fail "spec output is not one SPEC message"; }
import json, sys
lines = open(sys.argv[1], encoding="utf-8").read().splitlines()
if len(lines) != 1:
    sys.exit(f"expected 1 line on stdout, got {len(lines)}")
msg = json.loads(lines[0])
if msg.get("type") != "SPEC" or "connectionSpecification" not in msg.get("spec", {}):
    sys.exit(f"not a SPEC message: type={msg.get('type')!r}")
EOF
ok "spec prints one SPEC message"

# --- discover -----------------------------------------------------------------------
# As a platform runs it: the config is a file mounted read-only into the
# container. Discover needs no network; its catalog names the streams the
# demo summary must cover.
echo "== image: discover"
printf '%s\n' '{"credentials": {"auth_type": "oauth2.0", "client_id": "id",' \
  '"client_secret": "secret", "refresh_token": "refresh"}}' >"$WORK/config.json"
chmod 644 "$WORK/config.json"
run -v "$WORK/config.json:/secrets/config.json:ro" -- "$TAG" discover --config /secrets/config.json \
    >"$WORK/discover.out" 2>"$WORK/discover.err" \
  || { show "discover stdout" "$WORK/discover.out" 5; show "discover stderr" "$WORK/discover.err"; fail "discover exited non-zero"; }
python3 - "$WORK/discover.out" >"$WORK/streams.txt" <<'EOF' || { show "discover stdout" "$WORK/discover.out" 5; fail "discover printed no CATALOG with streams"; }
import json, sys
# The opt-in streams (a bulk export job, the social streams): demo leaves them out.
OPT_IN = {"contacts_export", "social_profiles", "social_connections", "social_hashtag_groups"}
names = [s["name"] for line in open(sys.argv[1], encoding="utf-8")
         for msg in [json.loads(line)] if msg.get("type") == "CATALOG"
         for s in msg["catalog"]["streams"] if s["name"] not in OPT_IN]
if not names:
    sys.exit("no CATALOG message with streams")
print("\n".join(names))
EOF
mapfile -t STREAMS <"$WORK/streams.txt"
ok "discover lists ${#STREAMS[@]} streams"

# --- demo ---------------------------------------------------------------------------
# One run, as the image's user, through $AIRBYTE_ENTRYPOINT: demo writes its
# default demo-output.jsonl in the working directory (so that must be
# writable), then the file goes to stdout for the checks below.
echo "== image: demo (output file in the working directory)"
t=$SECONDS
# shellcheck disable=SC2016  # expanded by the container's shell
run --entrypoint /bin/sh -- "$TAG" -c '"$AIRBYTE_ENTRYPOINT" demo >&2 && cat demo-output.jsonl' \
    >"$WORK/demo.out" 2>"$WORK/demo.err" \
  || { show "demo stderr" "$WORK/demo.err"; fail "demo exited non-zero"; }
cat "$WORK/demo.err"
python3 - "$WORK/demo.out" "$WORK/demo.err" "${STREAMS[@]}" <<'EOF' || fail "demo output is incomplete (summary above)"
import json, re, sys
out, err, streams = sys.argv[1], sys.argv[2], sys.argv[3:]
records, states = {}, 0
for n, line in enumerate(open(out, encoding="utf-8"), 1):
    try:
        msg = json.loads(line)
    except ValueError:
        sys.exit(f"demo-output.jsonl line {n} is not JSON: {line[:120]!r}")
    if msg.get("type") == "RECORD":
        s = msg["record"]["stream"]
        records[s] = records.get(s, 0) + 1
    elif msg.get("type") == "STATE":
        states += 1
summary = open(err, encoding="utf-8").read()
if not re.search(r"^stream\s+records\s+pages", summary, re.M):
    sys.exit("no per-stream summary table on stderr")
problems = []
for s in streams:
    row = re.search(rf"^{re.escape(s)}\s+(\d+)\s", summary, re.M)
    if not row:
        problems.append(f"{s}: no summary row")
    elif int(row.group(1)) > 0 and records.get(s, 0) == 0:
        problems.append(f"{s}: the summary counts records but none were written")
if not records:
    problems.append("no RECORD message")
if states == 0:
    problems.append("no STATE message")
if problems:
    sys.exit("; ".join(problems))
print(f"demo: {sum(records.values())} records in {len(records)} streams, {states} states")
EOF
ok "demo: summary rows for ${#STREAMS[@]} streams, records and states in demo-output.jsonl ($((SECONDS - t))s)"

# --- image configuration ------------------------------------------------------------
echo "== image: inspect"
eval "$(bash "$LOCAL_IMAGE_SH" env)"
podman image inspect --format '{{json .Config}}' "$TAG" >"$WORK/config.json" \
  || fail "podman image inspect $TAG failed"
python3 - "$WORK/config.json" "$REPO" "$VERSION" "$BINARY" <<'EOF' || fail "image configuration does not match metadata.yaml / Cargo.toml"
import json, sys
path, repo, version, binary = sys.argv[1:]
cfg = json.load(open(path, encoding="utf-8"))
labels = cfg.get("Labels") or {}
env = dict(e.split("=", 1) for e in cfg.get("Env") or [])
problems = []
if labels.get("io.airbyte.name") != repo:
    problems.append(f"label io.airbyte.name={labels.get('io.airbyte.name')!r}, metadata.yaml says {repo!r}")
if labels.get("io.airbyte.version") != version:
    problems.append(f"label io.airbyte.version={labels.get('io.airbyte.version')!r}, Cargo.toml says {version!r}")
if env.get("AIRBYTE_ENTRYPOINT") != binary:
    problems.append(f"AIRBYTE_ENTRYPOINT={env.get('AIRBYTE_ENTRYPOINT')!r}, expected {binary!r}")
if cfg.get("Entrypoint") != [binary]:
    problems.append(f"Entrypoint={cfg.get('Entrypoint')!r}, expected {[binary]!r}")
user = (cfg.get("User") or "").split(":")[0]
if user in ("", "0", "root"):
    problems.append(f"User={cfg.get('User')!r}: the image must not run as root")
if problems:
    sys.exit("\n".join(problems))
print(f"labels io.airbyte.name={repo} io.airbyte.version={version}, "
      f"AIRBYTE_ENTRYPOINT={binary}, User={cfg.get('User')}")
EOF
ok "labels, AIRBYTE_ENTRYPOINT, ENTRYPOINT and USER"

uid=$(run --entrypoint /usr/bin/id -- "$TAG" -u 2>"$WORK/id.err") \
  || { show "id stderr" "$WORK/id.err"; fail "cannot run id in the image"; }
[ "$uid" != 0 ] || fail "the container runs as root"
ok "container runs as uid $uid"

echo "image.sh: build ${BUILD_SECS}s, total $((SECONDS - START))s"
echo "image: $PASSED passed, 0 failed"
