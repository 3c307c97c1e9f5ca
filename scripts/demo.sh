#!/usr/bin/env bash
# demo.sh: klingfan and klingsim together on loopback. klingsim creates
# tasks, moves them to a final status and posts signed callbacks, dropping
# 30% and duplicating 10% of them; `klingctl listen` shows the events as
# they arrive; the reconciler (every 15s) recovers the outcomes whose
# callbacks were dropped; at the end `klingctl reconcile` shows that nothing
# is missing any more. DEMO_SECONDS (default 60; 0 = until Ctrl-C).
set -euo pipefail

BIN=${BIN:-./bin}
HTTP=${DEMO_HTTP:-127.0.0.1:18080}
GRPC=${DEMO_GRPC:-127.0.0.1:19090}
SIM=${DEMO_SIM:-127.0.0.1:18090}
SECONDS_TO_RUN=${DEMO_SECONDS:-60}
DATA=$(mktemp -d)
TOKEN=demo-admin-token-$RANDOM$RANDOM
KEY=demo-kling-api-key
SECRET=whsec_$(head -c 24 /dev/urandom | base64)
pids=()

cleanup() {
	# Newest first: the listener, then klingsim, then klingfan.
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill "${pids[i]}" 2>/dev/null || true; wait "${pids[i]}" 2>/dev/null || true; done
	rm -rf "$DATA"
}
trap cleanup EXIT INT TERM

ctl() { "$BIN/klingctl" --server "$GRPC" --token "$TOKEN" "$@"; }

echo "== klingfan on http://$HTTP (gRPC $GRPC), reconciling against klingsim on http://$SIM every 15s"
KLINGFAN_ADMIN_TOKEN=$TOKEN KLING_API_KEY=$KEY "$BIN/klingfan" serve --data-dir "$DATA" \
	--http-addr "$HTTP" --grpc-addr "$GRPC" --log-level warn \
	--kling-api-url "http://$SIM" --reconcile-interval 15s --reconcile-webhook sim &
pids+=($!)
for _ in $(seq 100); do curl -fsS "http://$HTTP/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
ctl webhooks create --id sim --scheme standard --secret "$SECRET" >/dev/null
echo "== registration 'sim' (Standard Webhooks) created"

KLING_API_KEY=$KEY KLINGSIM_WEBHOOK_SECRET=$SECRET "$BIN/klingsim" --addr "$SIM" \
	--callback-url "http://$HTTP/webhooks/kling/sim" --rate 1 --step 2s \
	--drop 0.3 --duplicate 0.1 --delay 0.1 --reorder 0.05 2>/dev/null &
pids+=($!)

echo "== klingctl listen (events as subscribers see them; source TASK_QUERY marks recovered ones)"
"$BIN/klingctl" --server "$GRPC" --token "$TOKEN" listen --json 2>/dev/null > >(jq -rc '[.sequence, .type, .job.jobId, .job.status, .sourceFormat] | @tsv') &
pids+=($!)

if [ "$SECONDS_TO_RUN" = 0 ]; then wait "${pids[0]}"; exit 0; fi
sleep "$SECONDS_TO_RUN"
echo "== klingctl reconcile --since 1h (a pass now; the periodic ones already recovered most)"
ctl reconcile --http-url "http://$HTTP" --since 1h || true
echo "== /readyz"
curl -fsS "http://$HTTP/readyz"
echo "== reconcile metrics"
curl -fsS "http://$HTTP/metrics" | grep -E '^klingfan_(reconcile|late_outcomes)' || true
