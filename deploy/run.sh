#!/usr/bin/env bash
# deploy/run.sh — run every switchboard process against the project's Kafka and PostgreSQL.
#
#   bash deploy/run.sh          serve on http://127.0.0.1:8000 until Ctrl-C
#   bash deploy/run.sh --demo   the same, then send signed sample webhooks, print the
#                               history, and stop
#
# `make run` / `make demo` call this after `make install infra-up`. A demo workspace is
# created on first run and remembered in .local/demo-workspace.json (its admin token works
# until `make infra-reset`).
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

# The demo workspace: reuse the remembered one while its token still works.
token=""
if [[ -f "$DEMO_FILE" ]]; then
  token="$("$BIN/python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["admin_token"])' "$DEMO_FILE")"
  code="$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" \
    "$URL/api/conversations?contact=0")"
  [[ "$code" == 200 ]] || token=""
fi
if [[ -z "$token" ]]; then
  "$BIN/switchboard" workspace create "Demo workspace" --phone-number-id "$DEMO_NUMBER" \
    --time-zone America/Bogota >"$DEMO_FILE.tmp"
  mv "$DEMO_FILE.tmp" "$DEMO_FILE"
  token="$("$BIN/python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["admin_token"])' "$DEMO_FILE")"
fi
# The demo flow (deploy/demo-flow.yaml), active on the demo number, unless there is one.
# (The projector may still be creating its tables: give it a few seconds.)
for _ in $(seq 1 50); do
  flows="$(curl -fsS -H "Authorization: Bearer $token" "$URL/api/flows" 2>/dev/null)" && break
  sleep 0.2
done
if [[ "$flows" == '{"flows":[]}' ]]; then
  flow_id="$(curl -fsS -X POST "$URL/api/flows" -H "Authorization: Bearer $token" \
    -H 'Content-Type: application/yaml' --data-binary @deploy/demo-flow.yaml |
    "$BIN/python" -c 'import json,sys; print(json.load(sys.stdin)["flow_id"])')"
  curl -fsS -o /dev/null -X PUT "$URL/api/numbers/$DEMO_NUMBER/flow" \
    -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    --data "{\"flow_id\": \"$flow_id\"}"
fi

cat <<INFO

switchboard is running.
  HTTP API        $URL   (OpenAPI: $URL/openapi.json, docs: $URL/docs)
  webhook         $URL/webhooks/whatsapp   (app secret: \$WHATSAPP_APP_SECRET, verify token: $WHATSAPP_VERIFY_TOKEN)
  demo workspace  $(cat "$DEMO_FILE" | tr -d '\n' | tr -s ' ')
  admin token     $token
  process logs    $LOGS/{gateway,inbound,directory,flows,dispatcher,expiry,assignment,relay,projector}.log
  infrastructure  make infra-status / make infra-logs
Try it:  make demo   (or: .venv/bin/switchboard demo --token $token --phone-number-id $DEMO_NUMBER)
INFO

if [[ "$mode" == "--demo" ]]; then
  "$BIN/switchboard" demo --url "$URL" --token "$token" --phone-number-id "$DEMO_NUMBER"
  exit $?
fi
echo "Ctrl-C stops everything."
wait "$supervisor"
