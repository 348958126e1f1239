#!/usr/bin/env bash
# make bench: the mock provider and the gateway (the `dist` build we ship; PROFILE=release
# for the one `make run` starts) on loopback, load
# from a separate process (loadgen), direct vs through the gateway in the same run,
# and `bare-proxy` (forwarding only, same stack) as the floor any proxy pays here.
# Bodies number each request (`{{n}}`), so no two carry the same text.
# Everything started here is stopped on exit. Knobs: DURATION (s), RATE (req/s), CONNS,
# PROFILE (cargo profile, default dist).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/portcullis/target}"
DURATION=${DURATION:-10}
RATE=${RATE:-1000}
CONNS=${CONNS:-32}
PROFILE=${PROFILE:-dist}
BIN=$CARGO_TARGET_DIR/$PROFILE

echo "building ($PROFILE profile)..." >&2
cargo build --profile "$PROFILE" -q -p portcullis -p mock-upstream -p loadgen --bins

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
MOCK_PORT=$(free_port); GW_PORT=$(free_port); PROXY_PORT=$(free_port); POLICY_PORT=$(free_port); BARE_PORT=$(free_port)

"$BIN/mock-upstream" --listen "127.0.0.1:$MOCK_PORT" --threads 1 > "$work/mock.out" 2>&1 &
pids+=($!)
# The floor: a proxy on the same stack that does nothing but forward.
"$BIN/bare-proxy" --listen "127.0.0.1:$BARE_PORT" --upstream "127.0.0.1:$MOCK_PORT" > "$work/bare.out" 2>&1 &
pids+=($!)
env -u PORTCULLIS_CONFIG PORTCULLIS_ADMIN_PASSWORD=bench-password-123 PORTCULLIS_LOG_LEVEL=warn \
  "$BIN/portcullis" serve --data-dir "$work/data" --listen "127.0.0.1:$GW_PORT" > "$work/gw.out" 2> "$work/gw.err" &
GW_PID=$!
pids+=($GW_PID)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$GW_PORT/readyz" >/dev/null && break; sleep 0.1; done

api() { curl -sf "http://127.0.0.1:$GW_PORT$1" -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' "${@:2}"; }
json() { python3 -c "import sys,json; print(json.load(sys.stdin)$1)"; }
TOKEN=$(curl -sf "http://127.0.0.1:$GW_PORT/api/v1/auth/login" -H 'content-type: application/json' \
  -d '{"username":"admin","password":"bench-password-123"}' | json '["token"]')
GROUP=$(api /api/v1/groups -d '{"name":"bench"}' | json '["id"]')
KEY=$(api /api/v1/keys -d "{\"name\":\"bench\",\"group_id\":\"$GROUP\"}" | json '["key"]')
api /api/v1/proxies -d "{\"name\":\"bench\",\"provider\":\"openai\",\"upstream_url\":\"http://127.0.0.1:$MOCK_PORT\",\"listen_port\":$PROXY_PORT,\"auto_start\":true}" >/dev/null
api /api/v1/proxies -d "{\"name\":\"bench-policy\",\"provider\":\"openai\",\"upstream_url\":\"http://127.0.0.1:$MOCK_PORT\",\"listen_port\":$POLICY_PORT,\"auto_start\":true,\"policies\":[\"llm-critical-security\",\"secrets\",\"llm-compliance-gdpr\"]}" >/dev/null

rss_kb() { awk "/^$1:/ {print \$2}" "/proc/$GW_PID/status"; }
sleep 1
IDLE_RSS=$(rss_kb VmRSS)

DIRECT=http://127.0.0.1:$MOCK_PORT/v1/chat/completions
GATEWAY=http://127.0.0.1:$PROXY_PORT/v1/chat/completions
POLICY=http://127.0.0.1:$POLICY_PORT/v1/chat/completions
BARE=http://127.0.0.1:$BARE_PORT/v1/chat/completions
run() { "$BIN/loadgen" --header "authorization: Bearer $KEY" "$@"; }

echo "measuring ($DURATION s per run; 2 cores shared by load generator, gateway and mock)..." >&2
results=()
for target in direct gateway policy; do
  url=$DIRECT; [ $target = gateway ] && url=$GATEWAY; [ $target = policy ] && url=$POLICY
  results+=("$(run --mode closed --url "$url" --body bench/bodies/chat.json --connections "$CONNS" --duration "$DURATION" --label "$target closed chat")")
  results+=("$(run --mode closed --url "$url" --body bench/bodies/chat-stream.json --connections "$CONNS" --duration "$DURATION" --label "$target closed stream")")
  results+=("$(run --mode open --url "$url" --body bench/bodies/chat.json --rate "$RATE" --duration "$DURATION" --label "$target open chat")")
  results+=("$(run --mode ttfb --url "$url" --body bench/bodies/chat-stream.json --requests 300 --label "$target ttfb stream")")
  # A chat re-sends its history: one request at a time, the newest message new.
  results+=("$(run --mode closed --connections 1 --url "$url" --body bench/bodies/chat-history.json --duration "$DURATION" --label "$target history")")
done
results+=("$(run --mode closed --url "$BARE" --body bench/bodies/chat.json --connections "$CONNS" --duration "$DURATION" --label "bare closed chat")")
results+=("$(run --mode closed --url "$BARE" --body bench/bodies/chat-stream.json --connections "$CONNS" --duration "$DURATION" --label "bare closed stream")")
PEAK_RSS=$(rss_kb VmHWM)
EVENTS_DROPPED=$(curl -sf "http://127.0.0.1:$GW_PORT/metrics" | awk '/^portcullis_events_dropped_total/ {print $2}')

printf '%s\n' "${results[@]}" > "$work/results.jsonl"
python3 - "$work/results.jsonl" "$IDLE_RSS" "$PEAK_RSS" "$CONNS" "$RATE" "${EVENTS_DROPPED:-0}" "$PROFILE" <<'PY'
import json, sys
path, idle, peak, conns, rate, dropped, profile = sys.argv[1:]
r = {}
for line in open(path):
    line = line.strip()
    if line:
        d = json.loads(line)
        r[d["label"]] = d
def g(label, key): return r[label][key]
print()
print("| measurement | direct | gateway | gateway vs direct | gateway + policies | with policies vs direct |")
print("|---|---:|---:|---:|---:|---:|")
for kind, name in [("chat", "non-streaming"), ("stream", "streaming")]:
    d, w, q = (g(f"{t} closed {kind}", "rps") for t in ("direct", "gateway", "policy"))
    print(f"| throughput, {name}, {conns} connections (req/s) | {d:,.0f} | {w:,.0f} | {w/d:.0%} | {q:,.0f} | {q/d:.0%} |")
for p in ["p50", "p90", "p99"]:
    d, w, q = (g(f"{t} open chat", f"{p}_ms") for t in ("direct", "gateway", "policy"))
    print(f"| latency {p} at {rate} req/s open loop (ms) | {d:.3f} | {w:.3f} | +{w-d:.3f} ms | {q:.3f} | +{q-d:.3f} ms |")
for p in ["ttfb_p50", "ttfb_p99"]:
    d, w, q = (g(f"{t} ttfb stream", f"{p}_ms") for t in ("direct", "gateway", "policy"))
    print(f"| stream time to first byte {p[5:]} (ms) | {d:.3f} | {w:.3f} | +{w-d:.3f} ms | {q:.3f} | +{q-d:.3f} ms |")
d, w, q = (g(f"{t} history", "p50_ms") for t in ("direct", "gateway", "policy"))
print()
print(f"A 5-turn chat (3.2 KB; every request's newest message is new), one request at a time, p50: "
      f"direct {d:.3f} ms, gateway +{w-d:.3f} ms, with policies +{q-d:.3f} ms")
errors = sum(v.get("errors", 0) for v in r.values())
print()
print("Floor: `bare-proxy` (hyper server and pooled client, forwarding only) on the same machine:")
for kind, name in [("chat", "non-streaming"), ("stream", "streaming")]:
    d, b, w = (g(f"{t} closed {kind}", "rps") for t in ("direct", "bare", "gateway"))
    print(f"- {name}: {b:,.0f} req/s, {b/d:.0%} of direct; the gateway does {w/b:.0%} of it")
print()
print(f"gateway ({profile} build) RSS: idle {int(idle)/1024:.1f} MB, peak {int(peak)/1024:.1f} MB; load errors: {errors}; events dropped: {dropped}")
PY
