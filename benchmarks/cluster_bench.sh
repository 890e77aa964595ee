#!/usr/bin/env bash
# Cross-node forwarding against a single node, on this machine (docs/performance.md).
#
#   benchmarks/cluster_bench.sh [BUILD_DIR] [--duration=S] [--warmup=S] [--rate=MSG_S]
#                               [--layout=one-core|two-cores|both] [--repeat=N]
#
# Layout one-core: the single node (--workers=1) on CPU 0 and the load
# generator on CPU 1; the cluster's three nodes (--workers=1 each) all on CPU 0,
# so the brokers have the same one core as the single node. Layout two-cores:
# nothing pinned — the single node with --workers=2, or the three nodes with
# --workers=1 each, share both cores with the load generator. In the cluster
# the load generator's publishers are on node 1 and its subscribers on node 2
# (every message crosses a node); node 3 is an idle member. Scenarios: fan-in
# 16 -> 1 at QoS 0 and QoS 1, unpaced (throughput), and 100 latency pairs at
# --rate msg/s (p50/p99). Prints the figures, cross-node / single-node ratios
# and the added p99; with --repeat=N each figure is the median of N runs (the
# machine is shared: single runs vary by tens of percent). Every broker
# listens on 127.0.0.1 on free ports and is stopped at the end.
set -uo pipefail
BUILD_DIR=build
DURATION=6
WARMUP=2
RATE=20000
LAYOUT=both
REPEAT=1
for arg in "$@"; do
  case "$arg" in
    --repeat=*) REPEAT=${arg#*=} ;;
    --layout=*) LAYOUT=${arg#*=} ;;
    --duration=*) DURATION=${arg#*=} ;;
    --warmup=*) WARMUP=${arg#*=} ;;
    --rate=*) RATE=${arg#*=} ;;
    -h|--help) sed -n '2,/^set /p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; exit 0 ;;
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
  for p in "${PIDS[@]}"; do kill -INT "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
  PIDS=()
}
trap 'cleanup; rm -rf "$WORK"' EXIT
freePort() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
FLAGS=(--log_level=warn --max_inflight_messages=65535 --max_queued_messages=10000000)
BROKER_CPUS=0 LG_CPUS=1
echo "cluster-bench-secret" >"$WORK/secret"

# startNode DIR MQTT_PORT [flags...]: on $BROKER_CPUS; waits for the port.
startNode() {
  local dir=$1 port=$2
  shift 2
  taskset -c "$BROKER_CPUS" "$GANNET" --mqtt_listen=127.0.0.1:"$port" --data_dir="$WORK/$dir" "${FLAGS[@]}" "$@" \
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

# loadgen ARGS...: on $LG_CPUS; prints its RESULT line.
loadgen() {
  taskset -c "$LG_CPUS" "$LOADGEN" --duration="$DURATION" --warmup="$WARMUP" "$@" 2>"$WORK/lg.err" |
    grep '^RESULT ' | tail -1
}
kv() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<"$1"; }

declare -A R
# run KEY PUB_PORT SUB_PORT ARGS...: --repeat times; keeps the run with the
# median figure (recv_rate; p99_us for the latency scenario).
run() {
  local key=$1 pub=$2 sub=$3 by=recv_rate lines=() line r
  shift 3
  [[ $key == *latency* ]] && by=p99_us
  for ((r = 0; r < REPEAT; r++)); do
    line=$(loadgen --port="$pub" --sub_port="$sub" --topic_prefix="cb/$key/$r" "$@")
    if [[ -z $line ]]; then
      echo "cluster_bench: $key: no result"
      sed 's/^/  /' "$WORK/lg.err" | tail -3
      continue
    fi
    lines+=("$(kv "$line" "$by") $line")
  done
  ((${#lines[@]})) || return
  R[$key]=$(printf '%s\n' "${lines[@]}" | sort -g | sed -n "$(((${#lines[@]} + 1) / 2))p" | cut -d' ' -f2-)
}

SCEN=(fanin_q0 "--scenario=fanin --qos=0" fanin_q1 "--scenario=fanin --qos=1"
      latency "--scenario=latency --qos=1 --pairs=100 --rate=$RATE")

# measure LAYOUT: single node, then the three-node cluster, then the table.
measure() {
  local layout=$1 single_workers
  if [[ $layout == one-core ]]; then
    BROKER_CPUS=0 LG_CPUS=1 single_workers=1
    echo "== one-core: brokers on CPU 0, load generator on CPU 1;" \
      "${WARMUP}s warm-up + ${DURATION}s measured per run"
  else
    BROKER_CPUS=0-1 LG_CPUS=0-1 single_workers=2
    echo "== two-cores: nothing pinned (single node --workers=2; three nodes --workers=1);" \
      "${WARMUP}s warm-up + ${DURATION}s measured per run"
  fi
  local P
  P=$(freePort)
  startNode single "$P" --workers="$single_workers"
  for ((i = 0; i < ${#SCEN[@]}; i += 2)); do
    # shellcheck disable=SC2086
    run "${layout}_single_${SCEN[i]}" "$P" "$P" ${SCEN[i + 1]}
  done
  cleanup
  rm -rf "$WORK/single"

  local M=() C=() n m peers
  for n in 1 2 3; do M+=("$(freePort)"); C+=("$(freePort)"); done
  for n in 1 2 3; do
    peers=()
    for m in 1 2 3; do ((m != n)) && peers+=("$m@127.0.0.1:${C[m - 1]}"); done
    startNode "node$n" "${M[n - 1]}" --workers=1 --node_id="$n" \
      --cluster_listen=127.0.0.1:"${C[n - 1]}" --peers="$(IFS=,; echo "${peers[*]}")" \
      --cluster_secret_file="$WORK/secret"
  done
  # Wait for the links (a subscriber's route must reach node 1 before
  # publishing: the load generator waits for its SUBACKs, and the route follows
  # within a heartbeat; a second of margin).
  sleep 2
  for ((i = 0; i < ${#SCEN[@]}; i += 2)); do
    # shellcheck disable=SC2086
    run "${layout}_cross_${SCEN[i]}" "${M[0]}" "${M[1]}" ${SCEN[i + 1]}
  done
  cleanup
  rm -rf "$WORK"/node?

  local s k a b
  printf '\n%-10s %-22s %14s %14s %8s\n' scenario metric single-node cross-node ratio
  for s in fanin_q0 fanin_q1; do
    a=$(kv "${R[${layout}_single_$s]:-}" recv_rate) b=$(kv "${R[${layout}_cross_$s]:-}" recv_rate)
    printf '%-10s %-22s %14s %14s %8s\n' "$s" "msg/s received" "${a:--}" "${b:--}" "$(ratio "$b" "$a")"
  done
  for k in p50_us p99_us; do
    a=$(kv "${R[${layout}_single_latency]:-}" "$k") b=$(kv "${R[${layout}_cross_latency]:-}" "$k")
    printf '%-10s %-22s %14s %14s %8s\n' latency "$k at $RATE msg/s" "${a:--}" "${b:--}" "$(ratio "$b" "$a")"
  done
  a=$(kv "${R[${layout}_single_latency]:-}" p99_us) b=$(kv "${R[${layout}_cross_latency]:-}" p99_us)
  echo
  for s in fanin_q0 fanin_q1; do
    echo "$layout: cross-node / single-node ${s/fanin_q/QoS } fan-in:" \
      "$(ratio "$(kv "${R[${layout}_cross_$s]:-}" recv_rate)" "$(kv "${R[${layout}_single_$s]:-}" recv_rate)") (target >= 0.60)"
  done
  if [[ -n $a && -n $b ]]; then
    echo "$layout: added p99 latency at $RATE msg/s: $(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.0f", b - a }') us (target < 2000)"
  fi
  echo
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0 || a == "") print "-"; else printf "%.2f", a / b }'; }
echo "cluster_bench: $(nproc) CPUs"
case "$LAYOUT" in
  one-core|two-cores) measure "$LAYOUT" ;;
  both) measure one-core; measure two-cores ;;
  *) echo "cluster_bench: --layout is one-core, two-cores or both" >&2; exit 2 ;;
esac
for k in "${!R[@]}"; do echo "$k: ${R[$k]}"; done >"$BUILD_DIR/benchmarks/cluster-bench-last.txt" 2>/dev/null || true
