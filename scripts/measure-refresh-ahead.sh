#!/usr/bin/env bash
# The product list's tail at 1,024 connections with the cache's refresh-ahead on (75 % of the TTL) and off,
# interleaved on one database so that both settings see the same machine (issue 10's tail-latency target).
# Usage: cargo build --release -p rental-api && cargo build -p xtask && scripts/measure-refresh-ahead.sh
# RUNS (default 3) pairs of runs of DURATION seconds (default 20; the list's TTL is 5 s, so about five expiries
# per run). Installs wrk (Debian's package) when missing. SQLite in a temporary directory.
set -uo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || apt-get install -y -qq wrk >/dev/null
BIN="${BIN:-$PWD/target/release/rental-api}"
XTASK="${XTASK:-$PWD/target/debug/xtask}"
RUNS="${RUNS:-3}"
DURATION="${DURATION:-20}"
PORT="${PORT:-18080}"
WORK="$(mktemp -d)"
PID=""
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; rm -rf "$WORK"' EXIT
export RENTAL_CONFIG_DIR="$PWD/config" RENTAL_ENV=production RUST_LOG=warn
export RENTAL__AUTH__JWT_SECRET="measure-secret-measure-secret-measure-secret"
export RENTAL__DATABASE__URL="sqlite://$WORK/rental.db?mode=rwc"
export RENTAL__MAIL__OUTBOX_DIR="$WORK/outbox" RENTAL__SERVER__HOST=127.0.0.1 RENTAL__SERVER__PORT="$PORT"
export RENTAL__HTTP__RATE_LIMIT__ANONYMOUS_PER_MINUTE=1000000000
URL="http://127.0.0.1:$PORT/api/v1/products?limit=50"
"$BIN" migrate >/dev/null || exit 1
"$XTASK" seed --products 200 --database-url "$RENTAL__DATABASE__URL" >/dev/null || exit 1
metric() { curl -s "http://127.0.0.1:$PORT/metrics" | awk -v m="$1" 'index($0, m "{cache=\"product_pages\"") == 1 {print $2}'; }
for run in $(seq 1 "$RUNS"); do
    for percent in 75 0; do
        RENTAL__CACHE__REFRESH_AHEAD_PERCENT=$percent "$BIN" serve >"$WORK/server.log" 2>&1 &
        PID=$!
        for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/health/live" >/dev/null && break; sleep 0.1; done
        wrk -t2 -c256 -d3s "$URL" >/dev/null
        out=$(wrk -t2 -c1024 -d"${DURATION}s" --latency "$URL")
        rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
        p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
        p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
        max=$(awk '/Latency/ && !/Distribution/ {print $4}' <<<"$out")
        errors=$(grep -E "Non-2xx|Socket errors" <<<"$out" | tr '\n' ' ')
        echo "$(date -u +%H:%M:%S) run=$run refresh_ahead=$percent req/s=$rps p50=$p50 p99=$p99 max=$max" \
            "loads=$(metric rental_cache_loads_total) refreshes=$(metric rental_cache_refreshes_total)" \
            "load=$(cut -d' ' -f1 /proc/loadavg) $errors"
        kill "$PID"
        wait "$PID" 2>/dev/null
        PID=""
    done
done
