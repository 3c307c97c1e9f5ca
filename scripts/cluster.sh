#!/usr/bin/env bash
# A local cluster-mode demo: a three-node NATS JetStream cluster (natscluster,
# client ports 4222-4224) and two klingfan replicas on it:
#   replica a: HTTP 127.0.0.1:8080, gRPC 127.0.0.1:9090, data ./data/replica-a
#   replica b: HTTP 127.0.0.1:8081, gRPC 127.0.0.1:9091, data ./data/replica-b
# Logs go to ./data/*/…log. Ctrl-C stops everything; data is kept.
# `make cluster` builds the binaries and runs this.
set -euo pipefail

BIN=${BIN:-./bin}
DATA=${DATA:-./data}
NATS_URL=nats://127.0.0.1:4222,nats://127.0.0.1:4223,nats://127.0.0.1:4224

mkdir -p "$DATA/cluster" "$DATA/replica-a" "$DATA/replica-b"

# Both replicas must accept the same API token, so the demo shares one,
# generated once and kept in the data directory.
token_file="$DATA/cluster-admin-token"
if [ ! -s "$token_file" ]; then
  (umask 077; head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n' > "$token_file")
fi
export KLINGFAN_ADMIN_TOKEN
KLINGFAN_ADMIN_TOKEN=$(cat "$token_file")
export KLINGAI_WEBHOOK_SECRET=${KLINGAI_WEBHOOK_SECRET:-dev-secret}

pids=()
stop_all() {
  trap - INT TERM EXIT
  echo
  echo "stopping..."
  # Replicas first (they drain their NATS connections), then the cluster.
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill -INT "${pids[i]}" 2>/dev/null || true
    wait "${pids[i]}" 2>/dev/null || true
  done
}
trap stop_all EXIT
# Ctrl-C is how the demo ends: a clean exit, not an error for make.
trap 'exit 0' INT TERM

"$BIN/natscluster" -dir "$DATA/cluster" >"$DATA/cluster/natscluster.out" 2>"$DATA/cluster/natscluster.log" &
pids+=($!)
for _ in $(seq 1 600); do
  grep -q "ready" "$DATA/cluster/natscluster.out" 2>/dev/null && break
  if ! kill -0 "${pids[0]}" 2>/dev/null; then
    echo "natscluster failed:"; cat "$DATA/cluster/natscluster.log"; exit 1
  fi
  sleep 0.1
done
grep -q "ready" "$DATA/cluster/natscluster.out" || { echo "natscluster not ready after 60s"; exit 1; }

start_replica() { # name http grpc
  "$BIN/klingfan" serve --nats-url "$NATS_URL" \
    --http-addr "127.0.0.1:$2" --grpc-addr "127.0.0.1:$3" --public-url "http://localhost:$2" \
    --data-dir "$DATA/replica-$1" >"$DATA/replica-$1/klingfan.out" 2>"$DATA/replica-$1/klingfan.log" &
  pids+=($!)
}
wait_ready() { # name http
  for _ in $(seq 1 600); do
    curl -fsS "http://127.0.0.1:$2/readyz" >/dev/null 2>&1 && return 0
    if ! kill -0 "${pids[${#pids[@]} - 1]}" 2>/dev/null; then
      echo "replica $1 failed:"; cat "$DATA/replica-$1/klingfan.log"; exit 1
    fi
    sleep 0.1
  done
  echo "replica $1 not ready after 60s; see $DATA/replica-$1/klingfan.log"; exit 1
}
start_replica a 8080 9090
wait_ready a 8080
start_replica b 8081 9091
wait_ready b 8081

cat <<INFO
klingfan cluster demo is running (Ctrl-C stops it; data stays under $DATA):
  NATS     $NATS_URL   (3 nodes, stream and KV bucket replicated 3 times)
  replica a  HTTP http://localhost:8080  gRPC localhost:9090
  replica b  HTTP http://localhost:8081  gRPC localhost:9091
  logs     $DATA/cluster/natscluster.log, $DATA/replica-a/klingfan.log, $DATA/replica-b/klingfan.log

Try it: subscribe on replica b, post to replica a.
  export TOKEN=\$(cat $token_file) KLINGAI_WEBHOOK_SECRET=$KLINGAI_WEBHOOK_SECRET
  curl -N -H "Authorization: Bearer \$TOKEN" localhost:8081/v1/events:subscribe &
  body='{"event":"video.completed","timestamp":"2026-11-26T12:00:00Z","data":{"job_id":"job-1","status":"completed"}}'
  sig=\$(printf '%s' "\$body" | openssl dgst -sha256 -hmac "\$KLINGAI_WEBHOOK_SECRET" | awk '{print \$2}')
  curl -s localhost:8080/webhooks/klingai -H 'Content-Type: application/json' -H "X-Kling-Signature: sha256=\$sig" -d "\$body"
INFO

# Stop everything as soon as one process ends on its own (a plain loop:
# macOS ships bash 3.2, which has no `wait -n`).
while :; do
  for pid in "${pids[@]}"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      # Each process exits 0 when interrupted (a Ctrl-C reaches all of
      # them), so only another status is a failure.
      status=0
      wait "$pid" || status=$?
      if [ "$status" -ne 0 ] && [ "$status" -ne 130 ]; then
        echo "a process exited with status $status; see the logs under $DATA"
        exit 1
      fi
      exit 0
    fi
  done
  sleep 1 || true
done
