#!/usr/bin/env bash
# Ingest alone on the embedded broker under a closed-loop load of 1 KiB JSON events:
# accepted events per second, latency percentiles, CPU and peak memory of the process.
#
#   bench/ingest/run.sh [connections] [seconds]
#
# Needs wrk (apt-get install wrk). The load generator shares the machine with Hookline, as
# producers on loopback would; figures are for comparing runs on the same machine.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
connections="${1:-256}"
seconds="${2:-20}"
port="${HOOKLINE_BENCH_PORT:-18080}"
admin="${HOOKLINE_BENCH_ADMIN_PORT:-19400}"
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }

cargo build --release --quiet
target/release/hookline dev --roles ingest \
    --ingest-addr "127.0.0.1:$port" --admin-addr "127.0.0.1:$admin" \
    --control-addr 127.0.0.1:0 --echo-addr 127.0.0.1:0 \
    --source-rate-limit-per-minute 1000000000 --org-rate-limit-per-minute 1000000000 \
    >target/bench-ingest.log 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
    curl -sf "127.0.0.1:$admin/readyz" >/dev/null && grep -q "is ready" target/bench-ingest.log && break
    sleep 0.1
done
url="http://127.0.0.1:$port/inbound-webhooks/github"
echo "warm-up (5 s)"
wrk -t2 -c"$connections" -d5s -s bench/ingest/post.lua "$url" >/dev/null
echo "measured run (${seconds} s, ${connections} connections)"
wrk -t2 -c"$connections" -d"${seconds}s" --latency -s bench/ingest/post.lua "$url"
metrics="$(curl -s "127.0.0.1:$admin/metrics")"
echo "$metrics" | grep -E '^hookline_ingest_requests_total|^hookline_ingest_produce_errors_total'
echo "peak RSS: $(grep VmHWM /proc/$pid/status | awk '{print $2, $3}')"
echo "CPU seconds: $(echo "$metrics" | awk '/^process_cpu_seconds_total/ {print $2}')"
