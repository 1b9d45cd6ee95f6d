#!/usr/bin/env bash
# deploy/run.sh — run every switchboard process against the project's Kafka and PostgreSQL.
#
#   bash deploy/run.sh          serve on http://127.0.0.1:8000 until Ctrl-C
#   bash deploy/run.sh --demo   the same, then send signed sample webhooks, print the
#                               history, and stop
#
# `make run` / `make demo` call this after `make install infra-up`. A demo workspace (an
# admin, two agents in a group, the demo flow) is created on first run and remembered in
# .local/demo-workspace.json (its tokens work until `make infra-reset`). Without
# WHATSAPP_ACCESS_TOKEN the WhatsApp sandbox stands in for Meta (SWITCHBOARD_SANDBOX=1):
# write as a customer at /sandbox.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$ROOT"
BIN="$ROOT/.venv/bin"
LOGS="$ROOT/.local/logs"
DEMO_FILE="$ROOT/.local/demo-workspace.json"
DEMO_NUMBER="${SWITCHBOARD_DEMO_PHONE_NUMBER_ID:-480112093385611}"
mode="${1:-serve}"

eval "$(bash deploy/infra.sh env)"
# Development defaults; set your own for anything facing Meta.
export WHATSAPP_APP_SECRET="${WHATSAPP_APP_SECRET:-dev-app-secret}"
export WHATSAPP_VERIFY_TOKEN="${WHATSAPP_VERIFY_TOKEN:-dev-verify-token}"
# The agent suite's cookies are signed with a secret made on the first run and kept in .local/.
SECRET_FILE="$ROOT/.local/session-secret"
if [[ -z "${SWITCHBOARD_SESSION_SECRET:-}" ]]; then
  if [[ ! -s "$SECRET_FILE" ]]; then
    mkdir -p "$ROOT/.local"
    (umask 077 && "$BIN/python" -c 'import secrets; print(secrets.token_urlsafe(48))' >"$SECRET_FILE")
  fi
  SWITCHBOARD_SESSION_SECRET="$(cat "$SECRET_FILE")"
  export SWITCHBOARD_SESSION_SECRET
fi
# The WhatsApp sandbox stands in for Meta unless a real access token is configured.
if [[ -z "${SWITCHBOARD_SANDBOX:-}" ]]; then
  if [[ -n "${WHATSAPP_ACCESS_TOKEN:-}" ]]; then
    export SWITCHBOARD_SANDBOX=0
  else
    export SWITCHBOARD_SANDBOX=1
  fi
fi
export SWITCHBOARD_HTTP_HOST="${SWITCHBOARD_HTTP_HOST:-127.0.0.1}"
export SWITCHBOARD_HTTP_PORT="${SWITCHBOARD_HTTP_PORT:-8000}"
URL="http://$SWITCHBOARD_HTTP_HOST:$SWITCHBOARD_HTTP_PORT"

supervisor=""
if curl -fsS -o /dev/null "$URL/healthz" 2>/dev/null; then
  if [[ "$mode" != "--demo" ]]; then
    echo "switchboard (or something else) already answers on $URL; stop it first" \
      "(or set SWITCHBOARD_HTTP_PORT)" >&2
    exit 1
  fi
  echo "using the switchboard already running on $URL"
else
  mkdir -p "$LOGS"
  echo "starting switchboard (logs in $LOGS):"
  "$BIN/switchboard" run all --log-dir "$LOGS" &
  supervisor=$!
  stop() {
    kill -TERM "$supervisor" 2>/dev/null || true
    wait "$supervisor" 2>/dev/null || true
  }
  trap stop EXIT
  trap 'exit 130' INT TERM
  deadline=$((SECONDS + 60))
  until curl -fsS -o /dev/null "$URL/healthz" 2>/dev/null; do
    if ! kill -0 "$supervisor" 2>/dev/null || ((SECONDS > deadline)); then
      echo "the gateway did not come up; see $LOGS/gateway.log" >&2
      tail -n 20 "$LOGS/gateway.log" >&2 || true
      exit 1
    fi
    sleep 0.3
  done
fi

# The demo workspace, its two agents in a group, the demo flow handing off to it, agent
# conversations on: created on first run, remembered in .local/demo-workspace.json (tokens are
# shown once), checked again on later runs. (The projector may still be creating its tables.)
sheet=""
for _ in $(seq 1 20); do
  sheet="$("$BIN/switchboard" demo-setup --url "$URL" --phone-number-id "$DEMO_NUMBER" \
    --state "$DEMO_FILE" --flow deploy/demo-flow.yaml)" && break
  sheet=""
  sleep 1
done
if [[ -z "$sheet" ]]; then
  echo "the demo workspace could not be set up; see $LOGS/gateway.log" >&2
  exit 1
fi
token="$("$BIN/python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["admin_token"])' "$DEMO_FILE")"
# The processes `switchboard run all` started, as the registry (services/registry.py) lists them.
names="$("$BIN/switchboard" processes --json | "$BIN/python" -c 'import json,sys; print(",".join(p["name"] for p in json.load(sys.stdin)))')"

cat <<INFO

switchboard is running.
$sheet
  HTTP API          $URL   (OpenAPI: $URL/openapi.json, docs: $URL/docs)
  webhook           $URL/webhooks/whatsapp   (app secret: \$WHATSAPP_APP_SECRET, verify token: $WHATSAPP_VERIFY_TOKEN)
  demo workspace    $DEMO_FILE
  process logs      $LOGS/{$names}.log
  infrastructure    make infra-status / make infra-logs
Try it: open the sandbox and the agent suite side by side, or: make demo
INFO

if [[ "$mode" == "--demo" ]]; then
  "$BIN/switchboard" demo --url "$URL" --token "$token" --phone-number-id "$DEMO_NUMBER"
  exit $?
fi
echo "Ctrl-C stops everything."
wait "$supervisor"
