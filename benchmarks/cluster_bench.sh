#!/usr/bin/env bash
# Cross-node forwarding against a single node, on this machine (docs/performance.md).
#
#   benchmarks/cluster_bench.sh [BUILD_DIR] [--duration=S] [--warmup=S] [--rate=MSG_S]
#                               [--layout=one-core|two-cores|both] [--repeat=N]
#                               [--mode=forwarding|replication] [--gannet=PATH] [--loadgen=PATH]
#                               [--nice=N]
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
#
# --mode=replication: the cost of --replication_factor instead (no single node).
# The three-node cluster (same layouts) is started with --replication_factor=1,
# then with --replication_factor=2, alternately, a fresh cluster each time,
# --repeat times. With 2, node 3 is restarted once the links are up, so that
# nodes 1 and 2 choose each other as replica node (see startReplicating); node 3
# holds no session. Subscribers are persistent (gannet_loadgen --persistent:
# cleanSession=0, a new client id per run), so every delivery's inflight record
# and its acknowledgement are replicated before the publisher's PUBACK. Cases:
# "same" (publishers and the subscriber on node 1, replicating to node 2: that
# is the only traffic between nodes) and "cross" (publishers on node 1,
# subscribers on node 2, replicating to node 1). Scenarios: fan-in 16 -> 1 at
# QoS 1 unpaced (msg/s; p99 under saturation) and 100 QoS 1 latency pairs at
# --rate msg/s (p50/p99). Prints RF=1 and RF=2 side by side, the ratio RF2/RF1
# (target >= 0.60 for msg/s), every run's figure, and each node's share of a
# CPU in the measured window.
#
# Binaries: BUILD_DIR/cmd/gannet/gannet and BUILD_DIR/benchmarks/loadgen/
# gannet_loadgen, or --gannet=PATH / --loadgen=PATH (or the environment's
# GANNET_BIN / LOADGEN_BIN), e.g. copies that a concurrent build cannot replace
# mid-run. --nice=-10 runs brokers and load generator at a higher priority
# than other work on a shared machine (root only), as in compare.sh. Figures
# of the median runs (replication: of every run) are written
# to BUILD_DIR/benchmarks/cluster-bench-last.txt.
set -uo pipefail
BUILD_DIR=build
DURATION=6
WARMUP=2
RATE=20000
LAYOUT=both
REPEAT=1
MODE=forwarding
NICE=0
GANNET=${GANNET_BIN:-}
LOADGEN=${LOADGEN_BIN:-}
for arg in "$@"; do
  case "$arg" in
    --repeat=*) REPEAT=${arg#*=} ;;
    --layout=*) LAYOUT=${arg#*=} ;;
    --duration=*) DURATION=${arg#*=} ;;
    --warmup=*) WARMUP=${arg#*=} ;;
    --rate=*) RATE=${arg#*=} ;;
    --mode=*) MODE=${arg#*=} ;;
    --nice=*) NICE=${arg#*=} ;;
    --gannet=*) GANNET=${arg#*=} ;;
    --loadgen=*) LOADGEN=${arg#*=} ;;
    -h|--help) sed -n '2,/^set /p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; exit 0 ;;
    --*) echo "cluster_bench: unknown flag $arg" >&2; exit 2 ;;
    *) BUILD_DIR=$arg ;;
  esac
done
case "$MODE" in
  forwarding|replication) ;;
  *) echo "cluster_bench: --mode is forwarding or replication" >&2; exit 2 ;;
esac
[[ $REPEAT =~ ^[1-9][0-9]*$ ]] || { echo "cluster_bench: --repeat: a positive integer" >&2; exit 2; }
if ! [[ $NICE =~ ^-?[0-9]+$ ]] || ((NICE < -20 || NICE > 19)); then
  echo "cluster_bench: --nice: expected -20..19" >&2
  exit 2
fi
PRIO=()
((NICE != 0)) && PRIO=(nice -n "$NICE")
GANNET=${GANNET:-$BUILD_DIR/cmd/gannet/gannet}
LOADGEN=${LOADGEN:-$BUILD_DIR/benchmarks/loadgen/gannet_loadgen}
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
  "${PRIO[@]}" taskset -c "$BROKER_CPUS" "$GANNET" --mqtt_listen=127.0.0.1:"$port" --data_dir="$WORK/$dir" "${FLAGS[@]}" "$@" \
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
  "${PRIO[@]}" taskset -c "$LG_CPUS" "$LOADGEN" --duration="$DURATION" --warmup="$WARMUP" "$@" 2>"$WORK/lg.err" |
    grep '^RESULT ' | tail -1
}
kv() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<"$1"; }

# nodeCpu: each running broker's (PIDS, in order) share of one CPU from
# warm-up + 0.5 s to 0.5 s before the end of the measured window, "a/b/c".
HZ=$(getconf CLK_TCK)
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
nodeCpu() {
  local p a=() b=() t0 t1 i out=
  sleep "$WARMUP".5
  t0=$(date +%s.%N)
  for p in "${PIDS[@]}"; do a+=("$(ticks "$p")"); done
  sleep "$(awk -v d="$DURATION" 'BEGIN { print (d > 1.5 ? d - 1 : 0.5) }')"
  for p in "${PIDS[@]}"; do b+=("$(ticks "$p")"); done
  t1=$(date +%s.%N)
  for i in "${!a[@]}"; do
    out+=${out:+/}$(awk -v a="${a[i]}" -v b="${b[i]}" -v hz="$HZ" -v t="$t0" -v u="$t1" \
      'BEGIN { printf "%.2f", (b - a) / hz / (u - t) }')
  done
  echo "$out"
}

declare -A R L
SEQ=0
# runOnce KEY PUB_PORT SUB_PORT ARGS...: one run (a topic prefix, so client ids,
# of its own); appends "FIGURE RESULT-line cpu=a/b/c" to L[KEY] (FIGURE:
# recv_rate; p99_us for the latency scenarios).
runOnce() {
  local key=$1 pub=$2 sub=$3 by=recv_rate line sampler
  shift 3
  [[ $key == *latency* ]] && by=p99_us
  SEQ=$((SEQ + 1))
  nodeCpu >"$WORK/cpu" &
  sampler=$!
  line=$(loadgen --port="$pub" --sub_port="$sub" --topic_prefix="cb/$key/$SEQ" "$@")
  wait "$sampler"
  if [[ -z $line ]]; then
    echo "cluster_bench: $key: no result"
    sed 's/^/  /' "$WORK/lg.err" | tail -3
    return
  fi
  L[$key]+="$(kv "$line" "$by") $line cpu=$(cat "$WORK/cpu")"$'\n'
}
# pick KEY: R[KEY] = the run with the median figure.
pick() {
  local key=$1 n
  [[ -n ${L[$key]:-} ]] || return
  n=$(grep -c . <<<"${L[$key]}")
  R[$key]=$(grep . <<<"${L[$key]}" | sort -g | sed -n "$(((n + 1) / 2))p" | cut -d' ' -f2-)
}
# figures KEY: every run's figure, in run order.
figures() { grep . <<<"${L[$1]:-}" | cut -d' ' -f1 | paste -sd' '; }
# run KEY PUB_PORT SUB_PORT ARGS...: --repeat times; keeps the median run.
run() {
  local r
  for ((r = 0; r < REPEAT; r++)); do runOnce "$@"; done
  pick "$1"
}

# startCluster [FLAGS...]: three nodes (--workers=1 each, FLAGS added) in M
# (MQTT ports), C (cluster ports), X (metrics ports, --mode=replication only);
# PIDS in node order.
startCluster() {
  local n
  M=() C=() X=()
  for n in 1 2 3; do M+=("$(freePort)"); C+=("$(freePort)"); X+=("$(freePort)"); done
  for n in 1 2 3; do startClusterNode "$n" "$@"; done
  # Wait for the links (a subscriber's route must reach node 1 before
  # publishing: the load generator waits for its SUBACKs, and the route follows
  # within a heartbeat; a second of margin).
  sleep 2
}
# startClusterNode N [FLAGS...]: node N of startCluster's ports.
startClusterNode() {
  local n=$1 m peers=() metrics=()
  shift
  for m in 1 2 3; do ((m != n)) && peers+=("$m@127.0.0.1:${C[m - 1]}"); done
  [[ $MODE == replication ]] && metrics=(--metrics_listen=127.0.0.1:"${X[n - 1]}")
  startNode "node$n" "${M[n - 1]}" --workers=1 --node_id="$n" \
    --cluster_listen=127.0.0.1:"${C[n - 1]}" --peers="$(IFS=,; echo "${peers[*]}")" \
    --cluster_secret_file="$WORK/secret" "${metrics[@]}" "$@"
}
# startReplicating: startCluster with --replication_factor=2, nodes 1 and 2
# replicating to each other. A node chooses its replica node when one of its
# links comes up, among the peers already heard from as alive; a link usually
# comes up before the peer's first heartbeat (a node dials back at once when
# dialed), and nothing makes it choose again later, so a node can stay without
# one (gannet_replication_nodes 0) or get either peer, depending on the order
# the links came up in. Restarting node 3 once all are up makes nodes 1 and 2
# choose again without it. Returns 1 if they still have none.
startReplicating() {
  local got _
  startCluster --replication_factor=2
  kill -INT "${PIDS[2]}"
  wait "${PIDS[2]}" 2>/dev/null
  PIDS=("${PIDS[@]:0:2}")
  sleep 0.5
  startClusterNode 3 --replication_factor=2
  for _ in $(seq 25); do
    got=$(for n in 1 2 3; do metric "$n" gannet_replication_nodes; done | paste -sd/)
    [[ $got == 1/1/* ]] && return 0
    sleep 0.2
  done
  echo "  replica nodes chosen per node 1/2/3: $got (want 1/1/-)"
  return 1
}
# metric N NAME: node N's metric NAME, summed over its labels (0 if it has none).
metric() {
  curl -s --max-time 2 "http://127.0.0.1:${X[$1 - 1]}/metrics" |
    awk -v m="$2" '$1 == m || index($1, m "{") == 1 { s += $2 } END { print s + 0 }'
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
  if [[ $MODE == replication ]]; then
    measureReplication "$layout"
    return
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

  startCluster
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

# measureReplication LAYOUT: per repeat a fresh cluster with
# --replication_factor=1 and one with 2 (alternating which goes first), every
# case and scenario on each; then the table of medians.
REPL_CASES=(same 1 cross 2)  # case, node of the subscribers (publishers: node 1)
REPL_SCEN=(fanin_q1p "--scenario=fanin --qos=1 --persistent"
           latency "--scenario=latency --qos=1 --pairs=100 --rate=$RATE --persistent")
measureReplication() {
  local layout=$1 r rf order c i k n attempt
  for ((r = 0; r < REPEAT; r++)); do
    order="1 2"
    ((r % 2)) && order="2 1"
    for rf in $order; do
      if ((rf == 1)); then
        startCluster --replication_factor=1
      else
        for attempt in 1 2 3 0; do
          ((attempt)) || break
          startReplicating && break
          cleanup
          rm -rf "$WORK"/node?
        done
        if ((attempt == 0)); then
          echo "cluster_bench: run $((r + 1)) rf=2: nodes 1 and 2 chose no replica node" \
            "in 3 attempts: no RF=2 figures from this run"
          continue
        fi
      fi
      for ((c = 0; c < ${#REPL_CASES[@]}; c += 2)); do
        for ((i = 0; i < ${#REPL_SCEN[@]}; i += 2)); do
          # shellcheck disable=SC2086
          runOnce "${layout}_rf${rf}_${REPL_CASES[c]}_${REPL_SCEN[i]}" "${M[0]}" "${M[REPL_CASES[c + 1] - 1]}" \
            ${REPL_SCEN[i + 1]}
        done
      done
      # Where the persistent sessions were replicated to (rf=2: node 1's to
      # node 2, node 2's to node 1).
      echo "  run $((r + 1)) rf=$rf: replica sessions held per node 1/2/3 (owner):" \
        "$(for n in 1 2 3; do
             curl -s --max-time 2 "http://127.0.0.1:${X[n - 1]}/metrics" |
               sed -n 's/^gannet_replica_sessions{owner="\([0-9]*\)"} \([0-9]*\).*/\2(\1)/p' | paste -sd+
           done | sed 's/^$/0/' | paste -sd/)"
      cleanup
      rm -rf "$WORK"/node?
    done
  done
  for k in "${!L[@]}"; do [[ $k == "${layout}"_rf* ]] && pick "$k"; done

  local a b cs pre
  printf '\n%-6s %-32s %12s %12s %9s\n' case metric RF=1 RF=2 RF2/RF1
  for ((c = 0; c < ${#REPL_CASES[@]}; c += 2)); do
    cs=${REPL_CASES[c]}
    pre=${layout}_rf
    a=$(kv "${R[${pre}1_${cs}_fanin_q1p]:-}" recv_rate) b=$(kv "${R[${pre}2_${cs}_fanin_q1p]:-}" recv_rate)
    printf '%-6s %-32s %12s %12s %9s\n' "$cs" "fan-in msg/s received" "${a:--}" "${b:--}" "$(ratio "$b" "$a")"
    for k in p50_us p99_us; do
      a=$(kv "${R[${pre}1_${cs}_fanin_q1p]:-}" "$k") b=$(kv "${R[${pre}2_${cs}_fanin_q1p]:-}" "$k")
      printf '%-6s %-32s %12s %12s %9s\n' "$cs" "fan-in $k (saturated)" "${a:--}" "${b:--}" "$(ratio "$b" "$a")"
    done
    a=$(kv "${R[${pre}1_${cs}_latency]:-}" recv_rate) b=$(kv "${R[${pre}2_${cs}_latency]:-}" recv_rate)
    printf '%-6s %-32s %12s %12s %9s\n' "$cs" "latency msg/s (of $RATE)" "${a:--}" "${b:--}" "$(ratio "$b" "$a")"
    for k in p50_us p99_us; do
      a=$(kv "${R[${pre}1_${cs}_latency]:-}" "$k") b=$(kv "${R[${pre}2_${cs}_latency]:-}" "$k")
      printf '%-6s %-32s %12s %12s %9s\n' "$cs" "latency $k at $RATE msg/s" "${a:--}" "${b:--}" "$(ratio "$b" "$a")"
    done
    a=$(kv "${R[${pre}1_${cs}_fanin_q1p]:-}" cpu) b=$(kv "${R[${pre}2_${cs}_fanin_q1p]:-}" cpu)
    printf '%-6s %-32s %12s %12s\n' "$cs" "fan-in cpu node1/2/3" "${a:--}" "${b:--}"
  done
  echo
  for ((c = 0; c < ${#REPL_CASES[@]}; c += 2)); do
    cs=${REPL_CASES[c]}
    for i in fanin_q1p latency; do
      echo "$layout: runs $cs $i ($([[ $i == latency ]] && echo p99_us || echo msg/s)):" \
        "RF=1 $(figures "${layout}_rf1_${cs}_$i"); RF=2 $(figures "${layout}_rf2_${cs}_$i")"
    done
  done
  for ((c = 0; c < ${#REPL_CASES[@]}; c += 2)); do
    cs=${REPL_CASES[c]}
    echo "$layout: RF=2 / RF=1 QoS 1 persistent fan-in, $cs: $(ratio \
      "$(kv "${R[${layout}_rf2_${cs}_fanin_q1p]:-}" recv_rate)" \
      "$(kv "${R[${layout}_rf1_${cs}_fanin_q1p]:-}" recv_rate)") (target >= 0.60)"
  done
  echo
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0 || a == "") print "-"; else printf "%.2f", a / b }'; }
echo "cluster_bench: $(nproc) CPUs$( ((NICE != 0)) && echo ", brokers and load generator at nice $NICE")"
case "$LAYOUT" in
  one-core|two-cores) measure "$LAYOUT" ;;
  both) measure one-core; measure two-cores ;;
  *) echo "cluster_bench: --layout is one-core, two-cores or both" >&2; exit 2 ;;
esac
mkdir -p "$BUILD_DIR/benchmarks" 2>/dev/null
{
  for k in "${!R[@]}"; do echo "$k: ${R[$k]}"; done
  if [[ $MODE == replication ]]; then
    echo "# every run: KEY: FIGURE RESULT-line cpu=node1/node2/node3"
    for k in "${!L[@]}"; do grep . <<<"${L[$k]}" | sed "s|^|$k: |"; done
  fi
} >"$BUILD_DIR/benchmarks/cluster-bench-last.txt" 2>/dev/null || true
