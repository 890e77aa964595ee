#!/usr/bin/env bash
# Three gannet nodes on this machine, one cluster:
#   node N: MQTT 127.0.0.1:188(2+N), cluster 127.0.0.1:794(5+N), metrics 127.0.0.1:910N,
#           data ./data/nodeN; shared secret ./data/cluster.secret (made once).
# Runs in the foreground; Ctrl-C (or SIGTERM) stops all three. `make cluster` calls it.
#
#   deploy/local-cluster.sh [BUILD_DIR] [extra gannet flags...]
set -euo pipefail
BUILD_DIR=${1:-build}
shift || true
GANNET=$BUILD_DIR/cmd/gannet/gannet
[[ -x $GANNET ]] || { echo "local-cluster: $GANNET not built (make build)" >&2; exit 2; }
mkdir -p data
SECRET=data/cluster.secret
if [[ ! -s $SECRET ]]; then
  head -c 32 /dev/urandom | base64 > "$SECRET"
  chmod 600 "$SECRET"
fi
pids=()
stop() {
  trap - INT TERM EXIT
  # SIGINT: stop at once (SIGTERM would drain each node into the others).
  for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop INT TERM EXIT
for n in 1 2 3; do
  peers=()
  for m in 1 2 3; do ((m != n)) && peers+=("$m@127.0.0.1:$((7945 + m))"); done
  "$GANNET" --node_id=$n --mqtt_listen=127.0.0.1:$((1882 + n)) --data_dir=data/node$n \
    --cluster_listen=127.0.0.1:$((7945 + n)) --peers="$(IFS=,; echo "${peers[*]}")" \
    --cluster_secret_file="$SECRET" --metrics_listen=127.0.0.1:$((9100 + n)) "$@" \
    2> >(sed -u "s/^/[node$n] /" >&2) &
  pids+=($!)
done
echo "local-cluster: nodes on MQTT ports 1883 1884 1885 (cluster 7946-7948); Ctrl-C stops them."
echo "  status: $BUILD_DIR/cmd/gannetctl/gannetctl --server=127.0.0.1:7946 --cluster_secret_file=$SECRET status"
wait -n "${pids[@]}" || true
echo "local-cluster: a node exited; stopping the others" >&2
