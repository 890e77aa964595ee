#!/usr/bin/env bash
# Cross-node forwarding against a single node, on this machine (docs/performance.md).
#
#   benchmarks/cluster_bench.sh [BUILD_DIR] [--duration=S] [--warmup=S] [--rate=MSG_S]
#
# Single node: one gannet (--workers=1) pinned to CPU 0, the load generator on
# CPU 1. Cluster: three gannet nodes (--workers=1 each), all pinned to CPU 0 so
# that the brokers have the same one core as the single node; the load
# generator on CPU 1 with its publishers on node 1 and its subscribers on node 2
# (every message crosses a node); node 3 is an idle member. Scenarios: fan-in
# 16 -> 1 at QoS 0 and QoS 1, unpaced (throughput), and 100 latency pairs at
# --rate msg/s (p50/p99). Prints the figures, cross-node / single-node ratios
# and the added p99. Every broker listens on 127.0.0.1 on free ports and is
# stopped at the end.
set -uo pipefail
BUILD_DIR=build
DURATION=6
WARMUP=2
RATE=20000
for arg in "$@"; do
  case "$arg" in
    --duration=*) DURATION=${arg#*=} ;;
    --warmup=*) WARMUP=${arg#*=} ;;
    --rate=*) RATE=${arg#*=} ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    --*) echo "cluster_bench: unknown flag $arg" >&2; exit 2 ;;
    *) BUILD_DIR=$arg ;;
  esac
done
GANNET=$BUILD_DIR/cmd/gannet/gannet
LOADGEN=$BUILD_DIR/benchmarks/loadgen/gannet_loadgen
for b in "$GANNET" "$LOADGEN"; do
  [[ -x $b ]] || { echo "cluster_bench: $b not built (make build)" >&2; exit 2; }
done
WORK=$(mktemp -d /tmp/gannet-cluster-bench.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
  PIDS=()
}
trap 'cleanup; rm -rf "$WORK"' EXIT
freePort() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
FLAGS=(--workers=1 --log_level=warn --max_inflight_messages=65535 --max_queued_messages=10000000)
echo "cluster-bench-secret" >"$WORK/secret"

# startNode DIR MQTT_PORT [cluster flags...]: pinned to CPU 0; waits for the port.
startNode() {
  local dir=$1 port=$2
  shift 2
  taskset -c 0 "$GANNET" --mqtt_listen=127.0.0.1:"$port" --data_dir="$WORK/$dir" "${FLAGS[@]}" "$@" \
    >"$WORK/$dir.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do
    (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "cluster_bench: gannet ($dir) did not start:" >&2
  tail -5 "$WORK/$dir.log" >&2
  exit 1
}

# loadgen ARGS...: on CPU 1; prints its RESULT line.
loadgen() {
  taskset -c 1 "$LOADGEN" --duration="$DURATION" --warmup="$WARMUP" "$@" 2>"$WORK/lg.err" |
    grep '^RESULT ' | tail -1
}
kv() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<"$1"; }

declare -A R
run() {  # run KEY PUB_PORT SUB_PORT ARGS...
  local key=$1 pub=$2 sub=$3
  shift 3
  R[$key]=$(loadgen --port="$pub" --sub_port="$sub" --topic_prefix="cb/$key" "$@")
  [[ -n ${R[$key]} ]] || { echo "cluster_bench: $key: no result"; sed 's/^/  /' "$WORK/lg.err" | tail -3; }
}

echo "cluster_bench: $(nproc) CPUs; brokers on CPU 0, load generator on CPU 1;" \
  "${WARMUP}s warm-up + ${DURATION}s measured per run"
SCEN=(fanin_q0 "--scenario=fanin --qos=0" fanin_q1 "--scenario=fanin --qos=1"
      latency "--scenario=latency --qos=1 --pairs=100 --rate=$RATE")

P=$(freePort)
startNode single "$P"
for ((i = 0; i < ${#SCEN[@]}; i += 2)); do
  # shellcheck disable=SC2086
  run "single_${SCEN[i]}" "$P" "$P" ${SCEN[i + 1]}
done
cleanup

M=() C=()
for n in 1 2 3; do M+=("$(freePort)"); C+=("$(freePort)"); done
for n in 1 2 3; do
  peers=()
  for m in 1 2 3; do ((m != n)) && peers+=("$m@127.0.0.1:${C[m - 1]}"); done
  startNode "node$n" "${M[n - 1]}" --node_id="$n" --cluster_listen=127.0.0.1:"${C[n - 1]}" \
    --peers="$(IFS=,; echo "${peers[*]}")" --cluster_secret_file="$WORK/secret"
done
# Wait for the links (a subscriber's route must reach node 1 before publishing:
# the load generator waits for its SUBACKs, and the route follows within a
# heartbeat; a second of margin).
sleep 2
for ((i = 0; i < ${#SCEN[@]}; i += 2)); do
  # shellcheck disable=SC2086
  run "cross_${SCEN[i]}" "${M[0]}" "${M[1]}" ${SCEN[i + 1]}
done
cleanup

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0 || a == "") print "-"; else printf "%.2f", a / b }'; }
printf '\n%-10s %-22s %14s %14s %8s\n' scenario metric single-node cross-node ratio
for s in fanin_q0 fanin_q1; do
  a=$(kv "${R[single_$s]:-}" recv_rate) b=$(kv "${R[cross_$s]:-}" recv_rate)
  printf '%-10s %-22s %14s %14s %8s\n' "$s" "msg/s received" "${a:--}" "${b:--}" "$(ratio "$b" "$a")"
done
for k in p50_us p99_us; do
  a=$(kv "${R[single_latency]:-}" "$k") b=$(kv "${R[cross_latency]:-}" "$k")
  printf '%-10s %-22s %14s %14s %8s\n' latency "$k at $RATE msg/s" "${a:--}" "${b:--}" "$(ratio "$b" "$a")"
done
a=$(kv "${R[single_latency]:-}" p99_us) b=$(kv "${R[cross_latency]:-}" p99_us)
echo
echo "cross-node / single-node QoS 0 fan-in: $(ratio "$(kv "${R[cross_fanin_q0]:-}" recv_rate)" "$(kv "${R[single_fanin_q0]:-}" recv_rate)") (target >= 0.60)"
echo "cross-node / single-node QoS 1 fan-in: $(ratio "$(kv "${R[cross_fanin_q1]:-}" recv_rate)" "$(kv "${R[single_fanin_q1]:-}" recv_rate)") (target >= 0.60)"
if [[ -n $a && -n $b ]]; then
  echo "added p99 latency at $RATE msg/s: $(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.0f", b - a }') us (target < 2000)"
fi
for k in "${!R[@]}"; do echo "$k: ${R[$k]}"; done >"$BUILD_DIR/benchmarks/cluster-bench-last.txt" 2>/dev/null || true
