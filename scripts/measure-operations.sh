#!/usr/bin/env bash
# Issue 10's figures, with wrk over loopback against release builds, every comparison inside one run:
#   1. /health/live of rental-api against a bare actix-web hello world (examples/hello.rs);
#   2. the middleware stack's cost on a cached endpoint (the user list, 50 users, ~15 KB): the default stack
#      (rate limits counted but never reached, compression negotiated, CORS, timeout, headers) against the same
#      binary with rate limits, compression and the timeout switched off (the request context, the security
#      headers and the 405 check cannot be);
#   3. RSS (VmRSS) serving 256 connections in the balanced profile, and after a 10 s storm of 1,024 logging-in
#      clients;
#   4. each performance profile's req/s, p99 and RSS on the user list at 256 connections;
#   5. tail latency at 1,024 connections: the user list, /health/live and the hello world (run before the login
#      storm, whose abandoned logins may keep hashing after the clients left).
# Usage: cargo build --release -p rental-api --example hello --bin rental-api && scripts/measure-operations.sh
# (BIN and HELLO may name other builds of the two binaries.)
# Installs wrk (Debian's package) when missing. SQLite in a temporary directory; nothing else is touched.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || apt-get install -y -qq wrk >/dev/null
BIN="${BIN:-$PWD/target/release/rental-api}"
HELLO="${HELLO:-$PWD/target/release/examples/hello}"
DURATION="${DURATION:-10}"
WORK="$(mktemp -d)"
PASSWORD="measure-password-1"
PIDS=()
trap 'for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$WORK"' EXIT

export RENTAL_CONFIG_DIR="$PWD/config" RENTAL_ENV=production RUST_LOG=warn
export RENTAL__AUTH__JWT_SECRET="measure-secret-measure-secret-measure-secret"
export RENTAL__DATABASE__URL="sqlite://$WORK/rental.db?mode=rwc"
export RENTAL__MAIL__OUTBOX_DIR="$WORK/outbox"
export RENTAL__SERVER__HOST=127.0.0.1
# Counted but never reached by one address at full speed: the limiter's cost without its refusals.
export RENTAL__HTTP__RATE_LIMIT__ANONYMOUS_PER_MINUTE=1000000000
export RENTAL__HTTP__RATE_LIMIT__USER_PER_MINUTE=1000000000
export RENTAL__HTTP__RATE_LIMIT__AUTH_PER_MINUTE=1000000000

rss_mib() { awk '/^VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }

wait_up() {
    for _ in $(seq 1 100); do
        curl -sf "http://127.0.0.1:$1/health/live" >/dev/null && return 0
        sleep 0.1
    done
    echo "nothing answers on port $1" >&2
    exit 1
}

# start PORT [VAR=VALUE ...]: rental-api serve with extra settings; prints its pid.
start() {
    local port=$1
    shift
    env "$@" RENTAL__SERVER__PORT="$port" "$BIN" serve >"$WORK/server-$port.log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    wait_up "$port"
    echo "$pid"
}

stop() { kill "$1"; wait "$1" 2>/dev/null || true; }

# cpu_ticks PID: user + system clock ticks the process has used.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# wait_idle PID: waits (up to 120 s) until PID used under 2 ticks in a second; prints the seconds waited.
wait_idle() {
    local before after waited=0
    sleep 2
    before=$(cpu_ticks "$1")
    while [ "$waited" -lt 120 ]; do
        sleep 1
        waited=$((waited + 1))
        after=$(cpu_ticks "$1")
        [ $((after - before)) -lt 2 ] && break
        before=$after
    done
    echo $((waited + 2))
}

# load URL CONNECTIONS [wrk args...]: prints "req/s p50 p99".
load() {
    local url=$1 connections=$2
    shift 2
    wrk -t2 -c"$connections" -d"${DURATION}s" --latency "$@" "$url" >"$WORK/wrk.txt" 2>&1
    awk '/Requests\/sec/ {rps=$2} /^ +50%/ {p50=$2} /^ +99%/ {p99=$2} /Non-2xx/ {bad=$NF}
         END {printf "%s req/s, p50 %s, p99 %s%s\n", rps, p50, p99, (bad ? ", non-2xx " bad : "")}' "$WORK/wrk.txt"
}

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r)"
echo "wrk -t2, ${DURATION} s per run"

# The data: an administrator and 60 users, so that a page of 50 is about 15 KB.
echo "$PASSWORD" | "$BIN" create-admin --email measure@example.com --password-stdin >/dev/null
PORT=18181
pid=$(start $PORT)
TOKEN=$(curl -sf -H 'Content-Type: application/json' \
    -d "{\"email\":\"measure@example.com\",\"password\":\"$PASSWORD\"}" \
    "http://127.0.0.1:$PORT/api/v1/auth/login" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
python3 - "$PORT" "$TOKEN" <<'PY'
import json, sys, urllib.request
port, token = sys.argv[1], sys.argv[2]
users = [{"email": f"user{i}@example.com", "full_name": f"User Number {i}", "password": "a-long-password-1"} for i in range(60)]
req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/users/bulk", data=json.dumps({"users": users}).encode(),
                             headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
urllib.request.urlopen(req).read()
PY
LIST="http://127.0.0.1:$PORT/api/v1/users?limit=50"
AUTH=(-H "Authorization: Bearer $TOKEN")
echo "user list page: $(curl -sf "${AUTH[@]}" "$LIST" | wc -c) bytes"

echo
echo "== 1. /health/live against a bare actix-web hello world (64 connections, two rounds each)"
"$HELLO" 127.0.0.1:18190 >/dev/null 2>&1 &
hello=$!
PIDS+=("$hello")
wait_up 18190
for round in 1 2; do
    echo "round $round hello:       $(load http://127.0.0.1:18190/health/live 64)"
    echo "round $round rental-api:  $(load "http://127.0.0.1:$PORT/health/live" 64)"
done

echo
echo "== 2. the middleware stack on the cached user list (64 connections, two rounds each)"
bare=$(start 18182 RENTAL__HTTP__RATE_LIMIT__ENABLED=false RENTAL__HTTP__COMPRESSION__ENABLED=false \
    RENTAL__HTTP__TIMEOUT__DEFAULT_MS=0)
for round in 1 2; do
    echo "round $round full stack:                   $(load "$LIST" 64 "${AUTH[@]}")"
    echo "round $round without limits, compression, timeout: $(load "http://127.0.0.1:18182/api/v1/users?limit=50" 64 "${AUTH[@]}")"
done
stop "$bare"

echo
echo "== 5. tail latency at 1,024 connections (before any login storm: nothing else runs)"
echo "user list:              $(load "$LIST" 1024 "${AUTH[@]}")"
echo "rental-api health/live: $(load "http://127.0.0.1:$PORT/health/live" 1024)"
echo "hello world:            $(load http://127.0.0.1:18190/health/live 1024)"

echo
echo "== 3. RSS in the balanced profile"
echo "after start-up and set-up: $(rss_mib "$pid") MiB"
wrk -t2 -c256 -d"${DURATION}s" "${AUTH[@]}" "$LIST" >/dev/null 2>&1 &
wrkpid=$!
sleep $((DURATION / 2))
echo "while serving 256 connections (user list): $(rss_mib "$pid") MiB"
wait "$wrkpid"
cat >"$WORK/login.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"email":"measure@example.com","password":"$PASSWORD"}'
wrk.headers["Content-Type"] = "application/json"
LUA
echo "login storm, 1,024 clients: $(load "http://127.0.0.1:$PORT/api/v1/auth/login" 1024 -s "$WORK/login.lua")"
echo "right after the login storm: $(rss_mib "$pid") MiB"
# Logins the clients gave up on may still be hashing: wait until the server's CPU time stops growing.
quiet_after=$(wait_idle "$pid")
echo "idle again ${quiet_after} s after the storm: $(rss_mib "$pid") MiB"
echo "peak (VmHWM): $(awk '/^VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$pid/status") MiB"

stop "$pid"
stop "$hello"

echo
echo "== 4. profiles: the user list at 256 connections"
for profile in minimal balanced maximum auto; do
    p=$(start 18183 RENTAL__PERFORMANCE__PROFILE=$profile)
    idle=$(rss_mib "$p")
    result=$(load "http://127.0.0.1:18183/api/v1/users?limit=50" 256 "${AUTH[@]}")
    echo "$profile: $result; RSS idle $idle MiB, after $(rss_mib "$p") MiB"
    stop "$p"
done
