#!/usr/bin/env bash
# demo.sh: klingfan and klingsim together on loopback. klingsim creates
# tasks, moves them to a final status and posts signed callbacks, dropping
# 30% and duplicating 10% of them; `klingctl listen` shows the events as
# they arrive; the reconciler passes every 15s; at the end a pass run now
# (`klingctl reconcile`) recovers the outcomes whose callbacks were dropped,
# and the summary says what each did, read from the server.
#
# Overrides (environment):
#   DEMO_HTTP     klingfan's HTTP address      (default 127.0.0.1:18080)
#   DEMO_GRPC     klingfan's gRPC address      (default 127.0.0.1:19090)
#   DEMO_SIM      klingsim's address           (default 127.0.0.1:18090)
#   DEMO_SECONDS  how long tasks run before the final pass (default 60; 0 = until Ctrl-C)
set -euo pipefail

BIN=${BIN:-./bin}
HTTP=${DEMO_HTTP:-127.0.0.1:18080}
GRPC=${DEMO_GRPC:-127.0.0.1:19090}
SIM=${DEMO_SIM:-127.0.0.1:18090}
SECONDS_TO_RUN=${DEMO_SECONDS:-60}

# Refuse ports something already answers on: the demo would otherwise talk
# to that program and fail with a confusing token error.
busy=0
for pair in "DEMO_HTTP=$HTTP" "DEMO_GRPC=$GRPC" "DEMO_SIM=$SIM"; do
	var=${pair%%=*} addr=${pair#*=}
	if (exec 3<>"/dev/tcp/${addr%:*}/${addr##*:}") 2>/dev/null; then
		echo "demo: $addr is in use; stop what listens there or choose another address with $var=host:port" >&2
		busy=1
	fi
done
[ "$busy" = 0 ] || exit 1

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
metric() { curl -fsS "http://$HTTP/metrics" | awk -v m="$1" 'index($0, m) == 1 { s += $NF } END { print s + 0 }'; }

echo "== klingfan on http://$HTTP (gRPC $GRPC), reconciling against klingsim on http://$SIM every 15s"
KLINGFAN_ADMIN_TOKEN=$TOKEN KLING_API_KEY=$KEY "$BIN/klingfan" serve --data-dir "$DATA" \
	--http-addr "$HTTP" --grpc-addr "$GRPC" --log-level error \
	--kling-api-url "http://$SIM" --reconcile-interval 15s --reconcile-webhook sim &
pids+=($!)
for _ in $(seq 100); do curl -fsS "http://$HTTP/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
ctl webhooks create --id sim --scheme standard --secret "$SECRET" >/dev/null
echo "== registration 'sim' (Standard Webhooks) created"

KLING_API_KEY=$KEY KLINGSIM_WEBHOOK_SECRET=$SECRET "$BIN/klingsim" --addr "$SIM" \
	--callback-url "http://$HTTP/webhooks/kling/sim" --rate 1 --step 2s \
	--drop 0.3 --duplicate 0.1 --delay 0.1 --reorder 0.05 2>/dev/null &
pids+=($!)

echo "== klingctl listen: events as subscribers see them, for ${SECONDS_TO_RUN}s (sequence, type, job, status, source)"
mkfifo "$DATA/listen"
jq -rc --unbuffered '[.sequence, .type, .job.jobId, .job.status, .sourceFormat] | @tsv' <"$DATA/listen" &
printer=$!
"$BIN/klingctl" --server "$GRPC" --token "$TOKEN" listen --json 2>/dev/null >"$DATA/listen" &
listener=$!
pids+=("$printer" "$listener")

if [ "$SECONDS_TO_RUN" = 0 ]; then wait "${pids[0]}"; exit 0; fi
sleep "$SECONDS_TO_RUN"

# Stop the listener and let its printer drain, so what follows is not
# interleaved with events.
kill "$listener" 2>/dev/null || true
wait "$listener" 2>/dev/null || true
wait "$printer" 2>/dev/null || true

ok=$(metric 'klingfan_reconcile_passes_total{outcome="ok"')
failed=$(($(metric 'klingfan_reconcile_passes_total') - ok))
periodic=$(metric 'klingfan_reconcile_events_recovered_total')
echo "== the periodic passes: $ok ok, $failed failed, $periodic events recovered"
echo "   (a periodic pass leaves tasks of the last 2 minutes to callbacks still on their way)"
if [ "$failed" != 0 ]; then echo "   (a pass fails while klingsim is not answering yet, as at the very start)"; fi

echo "== klingctl reconcile --since 1h: a pass now, which leaves nothing to callbacks (recovered events are TASK_QUERY)"
report=$(ctl reconcile --http-url "http://$HTTP" --since 1h 2>&1) || true
echo "$report"
now=$(awk -F': ' '/^recovered: /{print $2}' <<<"$report")
echo "== this pass recovered ${now:-nothing (see above)}; the periodic ones $periodic"
echo "== /readyz"
curl -fsS "http://$HTTP/readyz"
echo
