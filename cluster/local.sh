#!/usr/bin/env bash
# A local dev cluster on 127.0.0.1: a Ray head (job server + dashboard) and an S3-compatible endpoint
# (moto's server), so `ray job submit` runs the jobs here exactly as on Kubernetes.
#
#   cluster/local.sh up       start both (idempotent: a running cluster is left as it is)
#   cluster/local.sh status   exit 0 when both run, 1 when one does, 3 when none does
#   cluster/local.sh down     stop both by PID (idempotent)
#
# `up` writes $TAIYI_LOCAL_DIR/env (default .cache/local-cluster/env) for a shell or job to source:
# RAY_ADDRESS (GCS, for drivers started by hand), RAY_API_SERVER_ADDRESS (job server, for `ray job`),
# the token-auth settings, and the S3 endpoint, bucket, credentials and storage root.
#
# Settings (environment; defaults in brackets): TAIYI_LOCAL_DIR [.cache/local-cluster],
# TAIYI_PYTHON [.venv/bin/python], TAIYI_DASHBOARD_PORT [8265], TAIYI_GCS_PORT [6379],
# TAIYI_CLIENT_PORT [10001], TAIYI_AGENT_PORT [52365], TAIYI_S3_PORT [9000], TAIYI_S3_BUCKET [taiyi-local],
# TAIYI_NUM_CPUS [4], TAIYI_OBJECT_STORE_MB [512], TAIYI_START_TIMEOUT_S [120], TAIYI_DRAIN_TIMEOUT_S [3],
# TAIYI_KEEP_RAY_LOGS [0], TAIYI_JOB_STOP_WAIT_S [120], TAIYI_S3_SECRET [testing] (moto takes any). Ports must lie outside Ray's worker port range
# (10002-19999). TAIYI_JOB_STOP_WAIT_S becomes the head's RAY_JOB_STOP_WAIT_TIME_S: how long `ray job stop`
# waits between SIGTERM to a job's driver and SIGKILL (Ray's default is 3 s). A training stage checkpoints
# on SIGTERM, so it must exceed the checkpoint time of the configured model.
# Several clusters can run side by side with distinct TAIYI_LOCAL_DIR and ports (the tests do this).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE_DIR=${TAIYI_LOCAL_DIR:-$REPO/.cache/local-cluster}
PY=${TAIYI_PYTHON:-$REPO/.venv/bin/python}
BIN=$(dirname "$PY")
DASHBOARD_PORT=${TAIYI_DASHBOARD_PORT:-8265}
GCS_PORT=${TAIYI_GCS_PORT:-6379}
CLIENT_PORT=${TAIYI_CLIENT_PORT:-10001}
AGENT_PORT=${TAIYI_AGENT_PORT:-52365}
S3_PORT=${TAIYI_S3_PORT:-9000}
BUCKET=${TAIYI_S3_BUCKET:-taiyi-local}
NUM_CPUS=${TAIYI_NUM_CPUS:-4}
OBJECT_STORE_MB=${TAIYI_OBJECT_STORE_MB:-512}
START_TIMEOUT_S=${TAIYI_START_TIMEOUT_S:-120}
DRAIN_TIMEOUT_S=${TAIYI_DRAIN_TIMEOUT_S:-3}
JOB_STOP_WAIT_S=${TAIYI_JOB_STOP_WAIT_S:-120}
STOP_TIMEOUT_S=$((DRAIN_TIMEOUT_S + 20))

mkdir -p "$STATE_DIR"
STATE_DIR=$(cd "$STATE_DIR" && pwd)
ENV_FILE=$STATE_DIR/env
TOKEN_FILE=$STATE_DIR/auth_token
HEAD_PID_FILE=$STATE_DIR/ray-head.pid
S3_PID_FILE=$STATE_DIR/s3.pid
# Every process started here (and every process Ray starts from them) carries this marker in its
# environment, so `down` can find stragglers of *this* cluster only, never another Ray on the machine.
MARKER="TAIYI_LOCAL_CLUSTER=$STATE_DIR"
# Ray puts unix sockets under its temp dir (path limit 107 bytes): keep it short, one per state dir.
RAY_TMP=${TMPDIR:-/tmp}/taiyi-ray-$(printf %s "$STATE_DIR" | cksum | cut -d' ' -f1)

log() { echo "local.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

cluster_pids() {
  # The processes of this cluster: the sessions of the two leaders (`setsid` made each one the leader
  # of its own session; Ray's daemons stay in it), plus processes carrying the marker (job drivers run
  # in sessions of their own). Ray's renamed `ray::` processes may have lost the marker from
  # /proc/PID/environ, hence both. This script's own shell carries neither.
  local sids
  sids=$(cat "$HEAD_PID_FILE" "$S3_PID_FILE" 2>/dev/null | paste -sd, -)
  {
    [ -z "$sids" ] || ps -o pid= -s "$sids" 2>/dev/null || true
    grep -lzxF "$MARKER" /proc/[0-9]*/environ 2>/dev/null | cut -d/ -f3 || true
  } | tr -d ' ' | grep -vx -e "$$" -e '' | sort -un || true
}

http_ok() {  # URL [auth header] -> 0 when it answers 200
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 3 ${2:+-H "$2"} "$1" || true)
  [ "$code" = 200 ]
}

wait_until() {  # DESCRIPTION PID_FILE COMMAND... -> waits for COMMAND while PID lives
  local what=$1 pid_file=$2 deadline=$((SECONDS + START_TIMEOUT_S))
  shift 2
  until "$@"; do
    alive "$pid_file" || { tail -n 40 "${pid_file%.pid}.log" >&2; die "$what exited during start-up (log above)"; }
    [ "$SECONDS" -lt "$deadline" ] || die "$what not ready after ${START_TIMEOUT_S}s; see ${pid_file%.pid}.log"
    sleep 0.5
  done
}

base_exports() {
  # The process environment every job needs (taiyi_ray.runtime.base_env), minus PYTHONPATH: a
  # submitted job must import the uploaded working dir, not this checkout. This cluster lives on one
  # machine, so its raylets (and the workers they start) also keep Ray and gloo on loopback.
  "$PY" - <<'EOF'
import shlex
from taiyi_ray.runtime import LOCAL_CLUSTER_ENV, base_env
for key, value in {**base_env(), **LOCAL_CLUSTER_ENV}.items():
    if key != "PYTHONPATH":
        print(f"export {key}={shlex.quote(value)}")
EOF
}

write_env_file() {
  umask 077
  cat >"$ENV_FILE.tmp" <<EOF
# Written by cluster/local.sh up; source it: . $ENV_FILE
export RAY_ADDRESS=127.0.0.1:$GCS_PORT
export RAY_API_SERVER_ADDRESS=http://127.0.0.1:$DASHBOARD_PORT
export RAY_AUTH_MODE=token
export RAY_AUTH_TOKEN_PATH=$TOKEN_FILE
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0
export AWS_ENDPOINT_URL=http://127.0.0.1:$S3_PORT
export AWS_ACCESS_KEY_ID=testing
export AWS_SECRET_ACCESS_KEY=${TAIYI_S3_SECRET:-testing}
export AWS_DEFAULT_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true
export TAIYI_S3_BUCKET=$BUCKET
export TAIYI_STORAGE_ROOT=s3://$BUCKET/taiyi
EOF
  mv "$ENV_FILE.tmp" "$ENV_FILE"
}

start_s3() {
  if alive "$S3_PID_FILE"; then log "S3 endpoint already running (pid $(cat "$S3_PID_FILE"))"; return; fi
  env "$MARKER" setsid "$BIN/moto_server" -H 127.0.0.1 -p "$S3_PORT" >"$STATE_DIR/s3.log" 2>&1 </dev/null &
  echo $! >"$S3_PID_FILE"
  wait_until "S3 endpoint" "$S3_PID_FILE" http_ok "http://127.0.0.1:$S3_PORT/moto-api/"
  "$PY" - "$AWS_ENDPOINT_URL" "$BUCKET" <<'EOF'
import sys
import boto3
endpoint, bucket = sys.argv[1:]
client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
if bucket not in {item["Name"] for item in client.list_buckets()["Buckets"]}:
    client.create_bucket(Bucket=bucket)
EOF
  log "S3 endpoint up: $AWS_ENDPOINT_URL (bucket $BUCKET, pid $(cat "$S3_PID_FILE"))"
}

start_head() {
  if alive "$HEAD_PID_FILE"; then log "Ray head already running (pid $(cat "$HEAD_PID_FILE"))"; return; fi
  rm -f "$RAY_TMP/ray_current_cluster"
  [ -s "$TOKEN_FILE" ] || (umask 077 && "$PY" -c 'import secrets; print(secrets.token_hex(32))' >"$TOKEN_FILE")
  # `--block` keeps `ray start` in the foreground as the parent of every Ray process; SIGTERM to it
  # shuts the node down. setsid gives it a session of its own (no terminal signals from this shell).
  # PATH puts this venv first, so a job's `python` is the interpreter that has the package's deps.
  # On SIGTERM Ray drains the node (30 s by default) so Serve can move replicas away; a one-node
  # cluster has nowhere to move them, and detached actors would keep the drain waiting to the end.
  # From the repository root: a job submitted without --working-dir runs there (as in the image's /app).
  cd "$REPO"
  env "$MARKER" PATH="$BIN:$PATH" RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S="$DRAIN_TIMEOUT_S" \
    RAY_JOB_STOP_WAIT_TIME_S="$JOB_STOP_WAIT_S" setsid "$BIN/ray" start --head --block \
    --node-ip-address=127.0.0.1 --port="$GCS_PORT" \
    --include-dashboard=true --dashboard-host=127.0.0.1 --dashboard-port="$DASHBOARD_PORT" \
    --dashboard-agent-listen-port="$AGENT_PORT" --ray-client-server-port="$CLIENT_PORT" \
    --num-cpus="$NUM_CPUS" --object-store-memory=$((OBJECT_STORE_MB * 1024 * 1024)) \
    --temp-dir="$RAY_TMP" --disable-usage-stats >"$STATE_DIR/ray-head.log" 2>&1 </dev/null &
  echo $! >"$HEAD_PID_FILE"
  local auth="Authorization: Bearer $(cat "$TOKEN_FILE")"
  local api=http://127.0.0.1:$DASHBOARD_PORT
  wait_until "Ray head" "$HEAD_PID_FILE" http_ok "$api/api/jobs/" "$auth"
  # `ray start` writes this file once the node is started, just before it blocks (and only from then
  # on does SIGTERM drain and stop the node).
  wait_until "Ray head" "$HEAD_PID_FILE" test -s "$RAY_TMP/ray_current_cluster"
  log "Ray head up: jobs at $api, GCS at 127.0.0.1:$GCS_PORT (pid $(cat "$HEAD_PID_FILE"))"
}

cmd_up() {
  [ -x "$PY" ] || die "no Python at $PY (run \`make install\`, or set TAIYI_PYTHON)"
  if alive "$HEAD_PID_FILE" && alive "$S3_PID_FILE" && [ -f "$ENV_FILE" ]; then
    log "already up; env file: $ENV_FILE"
    echo "$ENV_FILE"
    return
  fi
  stop_all  # a half-up or crashed cluster: clear what is left, then start both afresh
  trap 'status=$?; [ "$status" -eq 0 ] || { log "start-up failed: stopping what was started"; stop_all; }' EXIT
  write_env_file
  # The Ray head and every job on it see the same environment: base defaults, S3, auth.
  set -a
  # shellcheck disable=SC1090
  . "$ENV_FILE"
  eval "$(base_exports)"
  set +a
  unset RAY_ADDRESS RAY_API_SERVER_ADDRESS  # a head must not try to join a cluster
  start_s3
  start_head
  trap - EXIT
  log "source the env file to use it: . $ENV_FILE"
  echo "$ENV_FILE"
}

stop_pid_file() {  # PID_FILE NAME
  if alive "$1"; then
    log "stopping $2 (pid $(cat "$1"))"
    kill -TERM "$(cat "$1")" 2>/dev/null || true
  fi
}

stop_all() {
  stop_pid_file "$HEAD_PID_FILE" "Ray head"
  stop_pid_file "$S3_PID_FILE" "S3 endpoint"
  local deadline=$((SECONDS + STOP_TIMEOUT_S)) left
  while left=$(cluster_pids) && [ -n "$left" ] && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.5; done
  left=$(cluster_pids)
  if [ -n "$left" ]; then
    log "killing processes still running after ${STOP_TIMEOUT_S}s: $(echo $left)"
    # shellcheck disable=SC2086
    kill -KILL $left 2>/dev/null || true
    sleep 0.5
  fi
  rm -f "$HEAD_PID_FILE" "$S3_PID_FILE" "$ENV_FILE"
  [ "${TAIYI_KEEP_RAY_LOGS:-0}" = 1 ] || rm -rf "$RAY_TMP"
}

cmd_down() {
  stop_all
  log "down"
}

cmd_status() {
  local up=0 line
  if alive "$HEAD_PID_FILE"; then
    line="Ray head: running (pid $(cat "$HEAD_PID_FILE"))"
    if [ -f "$ENV_FILE" ]; then
      # shellcheck disable=SC1090
      local api; api=$(. "$ENV_FILE" && echo "$RAY_API_SERVER_ADDRESS")
      if http_ok "$api/api/jobs/" "Authorization: Bearer $(cat "$TOKEN_FILE")"; then
        line="$line, job server answering at $api"; up=$((up + 1))
      else
        line="$line, job server NOT answering at $api"
      fi
    fi
    echo "$line"
  else
    echo "Ray head: stopped"
  fi
  if alive "$S3_PID_FILE"; then
    echo "S3 endpoint: running (pid $(cat "$S3_PID_FILE"))"; up=$((up + 1))
  else
    echo "S3 endpoint: stopped"
  fi
  [ -f "$ENV_FILE" ] && echo "env file: $ENV_FILE"
  case $up in 2) return 0 ;; 0) return 3 ;; *) return 1 ;; esac
}

case ${1:-} in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
