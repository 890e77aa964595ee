#!/usr/bin/env bash
# Side-by-side benchmark: Gannet against Mosquitto 2.0, same load generator, same
# scenarios, one run. See docs/performance.md.
#
#   benchmarks/compare.sh [BUILD_DIR] [--duration=S] [--warmup=S] [--connections=N]
#                         [--hold=S] [--scenarios=LIST] [--tables=LIST]
#                         [--loadgen_threads=N] [--mosquitto=PATH] [--gannet=PATH]
#                         [--nice=N] [--gannet_flags="--flag=value ..."]
#                         [--latency_rate=MSG_S] [--repeat=N]
#
# Scenarios: connect, fanin_q0, fanin_q1, fanout, latency, fanin_q1_persist (all
# by default). fanin_q1_persist is QoS 1 fan-in to a persistent subscriber:
# Mosquitto with `persistence true`, gannet with --fsync=false and --fsync=true
# (rows skipped if the build rejects --fsync), against gannet's in-memory
# fanin_q1 figure; it also reports the broker's disk bytes written per message.
#
# BUILD_DIR (default build/) must hold benchmarks/loadgen/gannet_loadgen; Gannet
# is taken from BUILD_DIR/cmd/gannet/gannet (or --gannet) and skipped, with a
# note, when it is missing. Two tables:
#   per-core   the broker pinned to CPU 0 (taskset -c 0), the load generator to
#              CPU 1; gannet --workers=1.
#   all-cores  nothing pinned; gannet --workers=0 (one worker per core). The load
#              generator shares the cores with the broker.
# --repeat=N runs every scenario N times (each on a fresh broker) and reports the
# run with the median throughput (connect: connections/s), so that one disturbed
# run does not decide a ratio; the raw RESULT lines of all runs are kept.
# Every broker is started fresh for every scenario on 127.0.0.1 and a free port,
# and stopped at the end (trap). Ratios are gannet / mosquitto; the metric column
# says whether higher or lower is better. --nice=-10 runs brokers and load
# generator at a higher priority than other work on a shared machine (root only;
# with autogroups, in a session of its own: see prioritize in bench_lib.sh).
set -uo pipefail
# freePort, stopBroker, rssKb, kv, medianLine, fmt, ratio
# shellcheck source=bench_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench_lib.sh"

BUILD_DIR=build
DURATION=6
WARMUP=2
CONNECTIONS=10000
HOLD=3
SCENARIOS=connect,fanin_q0,fanin_q1,fanout,latency,fanin_q1_persist
TABLES=per-core,all-cores
LOADGEN_THREADS=1
MOSQUITTO=$(command -v mosquitto 2>/dev/null || echo /usr/sbin/mosquitto)
NICE=0
# Gannet's per-client bounds set to match the Mosquitto config below (no maximum
# inflight, no maximum queue): a like-for-like comparison. Override with
# --gannet_flags.
GANNET_FLAGS="--max_inflight_messages=65535 --max_queued_messages=10000000"
LATENCY_RATE=20000
REPEAT=1
GANNET=

die() { echo "compare.sh: $*" >&2; exit 2; }
for arg in "$@"; do
  case "$arg" in
    -h|--help) usage; exit 0 ;;
    --duration=*) DURATION=${arg#*=} ;;
    --warmup=*) WARMUP=${arg#*=} ;;
    --connections=*) CONNECTIONS=${arg#*=} ;;
    --hold=*) HOLD=${arg#*=} ;;
    --scenarios=*) SCENARIOS=${arg#*=} ;;
    --tables=*) TABLES=${arg#*=} ;;
    --loadgen_threads=*) LOADGEN_THREADS=${arg#*=} ;;
    --mosquitto=*) MOSQUITTO=${arg#*=} ;;
    --gannet=*) GANNET=${arg#*=} ;;
    --nice=*) NICE=${arg#*=} ;;
    --gannet_flags=*) GANNET_FLAGS=${arg#*=} ;;
    --latency_rate=*) LATENCY_RATE=${arg#*=} ;;
    --repeat=*) REPEAT=${arg#*=} ;;
    --*) die "unknown flag $arg (see --help)" ;;
    *) BUILD_DIR=$arg ;;
  esac
done
[[ $DURATION =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "--duration: expected seconds, got '$DURATION'"
[[ $WARMUP =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "--warmup: expected seconds, got '$WARMUP'"
[[ $HOLD =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "--hold: expected seconds, got '$HOLD'"
[[ $CONNECTIONS =~ ^[1-9][0-9]*$ ]] || die "--connections: expected a positive integer"
[[ $LOADGEN_THREADS =~ ^[1-9][0-9]*$ ]] || die "--loadgen_threads: expected a positive integer"
[[ $REPEAT =~ ^[1-9][0-9]?$ ]] || die "--repeat: expected 1..99"
[[ $LATENCY_RATE =~ ^[1-9][0-9]*$ ]] || die "--latency_rate: expected a positive integer (msg/s)"
if ! [[ $NICE =~ ^-?[0-9]+$ ]] || ((NICE < -20 || NICE > 19)); then
  die "--nice: expected -20..19"
fi
# With autogroups, --nice needs a session of its own (bench_lib.sh).
prioritize "$NICE" "$0" "$@"
for s in ${SCENARIOS//,/ }; do
  case "$s" in
    connect|fanin_q0|fanin_q1|fanout|latency|fanin_q1_persist) ;;
    *) die "unknown scenario '$s'" ;;
  esac
done
for t in ${TABLES//,/ }; do
  case "$t" in per-core|all-cores) ;; *) die "unknown table '$t' (per-core, all-cores)" ;; esac
done

REPO=$(cd "$(dirname "$0")/.." && pwd)
if [[ ! -d $BUILD_DIR && -d $REPO/$BUILD_DIR ]]; then BUILD_DIR=$REPO/$BUILD_DIR; fi
ASKED_BUILD_DIR=$BUILD_DIR
BUILD_DIR=$(cd "$BUILD_DIR" 2>/dev/null && pwd) || die "build directory '$ASKED_BUILD_DIR' not found"
LOADGEN=$BUILD_DIR/benchmarks/loadgen/gannet_loadgen
GANNET=${GANNET:-$BUILD_DIR/cmd/gannet/gannet}
[[ -x $LOADGEN ]] || die "no load generator at $LOADGEN; build it first:
  cmake -S $REPO -B $BUILD_DIR -DCMAKE_BUILD_TYPE=Release && cmake --build $BUILD_DIR --target gannet_loadgen"

BROKERS=()
if [[ -x $GANNET ]]; then
  BROKERS+=(gannet)
else
  echo "NOTE: no gannet binary at $GANNET: running Mosquitto only (the gannet column stays empty)."
fi
if [[ -x $MOSQUITTO ]]; then
  BROKERS+=(mosquitto)
else
  echo "NOTE: no Mosquitto at $MOSQUITTO (apt-get install mosquitto): running gannet only."
fi
((${#BROKERS[@]} > 0)) || die "neither gannet nor Mosquitto is available"

# 10,000 idle connections need as many descriptors in the broker and in the load
# generator; both inherit this limit.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
if [[ $NOFILE != unlimited ]] && ((NOFILE < CONNECTIONS + 200)); then
  echo "NOTE: the descriptor limit is $NOFILE (ulimit -Hn): connect scenario reduced to $((NOFILE - 200)) connections."
  CONNECTIONS=$((NOFILE - 200))
fi

NCPU=$(nproc)
PIN_BROKER=(taskset -c 0)
PIN_LOADGEN=(taskset -c 1)
if ((NCPU < 2)) || ! command -v taskset >/dev/null; then
  echo "NOTE: fewer than 2 CPUs or no taskset: the per-core table runs unpinned."
  PIN_BROKER=()
  PIN_LOADGEN=()
fi
PRIO=()
((NICE != 0)) && PRIO=(nice -n "$NICE")

WORK=$(mktemp -d /tmp/gannet-compare.XXXXXX)
# Broker data (gannet --data_dir, Mosquitto persistence_location) must be on a
# disk for fanin_q1_persist: on tmpfs fsync is free and write_bytes stays 0.
DATA_ROOT=$WORK
if [[ $(stat -f -c %T "$WORK" 2>/dev/null) == tmpfs ]]; then
  mkdir -p "$BUILD_DIR/benchmarks"
  DATA_ROOT=$(mktemp -d "$BUILD_DIR/benchmarks/compare-data.XXXXXX")
fi
RAW=$BUILD_DIR/benchmarks/compare-last.txt
: >"$RAW"
BROKER_PID=
cleanup() { stopBroker; }
trap 'cleanup; rm -rf "$WORK" "$DATA_ROOT"' EXIT
trap 'exit 130' INT TERM

# startBroker BROKER TABLE [PERSIST [GANNET_EXTRA]]: starts it in the background,
# sets BROKER_PID and PORT. PERSIST=1: Mosquitto with `persistence true`.
# Returns 2 if gannet exited with status 2 naming the flag of GANNET_EXTRA (the
# build does not know it), 1 if the broker did not start.
startBroker() {
  local broker=$1 table=$2 persist=${3:-0} extra=${4:-} attempt log status
  local pin=("${PRIO[@]}")
  [[ $table == per-core ]] && pin+=("${PIN_BROKER[@]}")
  for attempt in 1 2 3; do
    PORT=$(freePort)
    log=$WORK/$broker-$PORT.log
    if [[ $broker == mosquitto ]]; then
      # mosquitto.conf(5): max_queued_messages 0 and max_inflight_messages 0 mean
      # "no maximum", so that no QoS 0 message is dropped for a subscriber that is
      # momentarily behind (the default, 1000, drops them) and QoS 1 deliveries
      # are not throttled to 20 in flight. TCP_NODELAY as Gannet sets it.
      cat >"$WORK/mosquitto-$PORT.conf" <<EOF
listener $PORT 127.0.0.1
allow_anonymous true
max_connections -1
max_queued_messages 0
max_inflight_messages 0
set_tcp_nodelay true
log_dest stderr
log_type error
log_type warning
EOF
      if ((persist)); then
        # autosave_interval stays at its default (1800 s). `user`: started as
        # root, Mosquitto would switch to user mosquitto, who cannot write here.
        mkdir -p "$DATA_ROOT/mosquitto-$PORT"
        printf 'persistence true\npersistence_location %s/\nuser %s\n' \
          "$DATA_ROOT/mosquitto-$PORT" "$(id -un)" >>"$WORK/mosquitto-$PORT.conf"
      else
        echo "persistence false" >>"$WORK/mosquitto-$PORT.conf"
      fi
      "${pin[@]}" "$MOSQUITTO" -c "$WORK/mosquitto-$PORT.conf" >"$log" 2>&1 &
    else
      local workers=1
      [[ $table == all-cores ]] && workers=0
      mkdir -p "$DATA_ROOT/data-$PORT"
      # shellcheck disable=SC2086  # GANNET_FLAGS and extra are lists of flags
      "${pin[@]}" "$GANNET" --mqtt_listen="127.0.0.1:$PORT" --data_dir="$DATA_ROOT/data-$PORT" \
        --workers=$workers --log_level=warn $GANNET_FLAGS $extra >"$log" 2>&1 &
    fi
    BROKER_PID=$!
    for _ in $(seq 100); do
      if ! kill -0 "$BROKER_PID" 2>/dev/null; then
        wait "$BROKER_PID" 2>/dev/null
        status=$?
        if [[ $broker == gannet && $status == 2 && -n $extra ]] &&
          grep -q -- "${extra%%=*}" "$log"; then
          BROKER_PID=
          return 2
        fi
        break
      fi
      if ss -Hltn "sport = :$PORT" 2>/dev/null | grep -q .; then return 0; fi
      sleep 0.1
    done
    echo "  $broker did not start listening on 127.0.0.1:$PORT (attempt $attempt):" >&2
    tail -5 "$log" | sed 's/^/    /' >&2
    cleanup
  done
  return 1
}

declare -A RESULT   # [table|run|scenario] = RESULT line of the load generator
declare -A RSS      # [table|broker] = KiB per idle connection
declare -A ALL      # [table|run|scenario] = the RESULT lines of every repeat
RUNS=()             # table|run|scenario of every run with a result, in order
FSYNC_UNSUPPORTED=0

# runScenario TABLE RUN SCENARIO. RUN is a broker (gannet, mosquitto) or, for
# fanin_q1_persist, gannet@fsync=false / gannet@fsync=true (gannet with that flag).
runScenario() {
  local table=$1 run=$2 scenario=$3 out args=() rss0 rss1 lgpid rc persist=0 extra='' st
  local broker=${run%%@*}
  [[ $run == *@* ]] && extra="--${run#*@}"
  local pin=("${PRIO[@]}")
  [[ $table == per-core ]] && pin+=("${PIN_LOADGEN[@]}")
  case "$scenario" in
    connect) args=(--scenario=connect --connections="$CONNECTIONS" --hold="$HOLD") ;;
    fanin_q0) args=(--scenario=fanin --qos=0) ;;
    fanin_q1) args=(--scenario=fanin --qos=1) ;;
    fanout) args=(--scenario=fanout --qos=0) ;;
    latency) args=(--scenario=latency --qos=1 --pairs=100 --rate="$LATENCY_RATE") ;;
    fanin_q1_persist)
      # Fixed client id for the subscriber (cleanSession=0), derived from the prefix.
      args=(--scenario=fanin --qos=1 --persistent --topic_prefix=compare/persist)
      persist=1
      ;;
  esac
  [[ -n $extra && $extra == --fsync=* ]] && ((FSYNC_UNSUPPORTED)) && return
  startBroker "$broker" "$table" "$persist" "$extra"
  st=$?
  if ((st == 2)) && [[ $extra == --fsync=* ]]; then
    echo "  gannet: --fsync not supported by this build"
    FSYNC_UNSUPPORTED=1
    return
  fi
  ((st == 0)) || { echo "  $scenario: $run failed to start, skipped"; return; }
  sleep 0.3
  out=$WORK/$table-$run-$scenario.out
  rss0=$(rssKb "$BROKER_PID")
  "${pin[@]}" "$LOADGEN" --port="$PORT" --broker_pid="$BROKER_PID" --duration="$DURATION" \
    --warmup="$WARMUP" --threads="$LOADGEN_THREADS" "${args[@]}" >"$out" 2>"$out.err" &
  lgpid=$!
  if [[ $scenario == connect ]]; then
    # The load generator prints HOLDING once every connection has its CONNACK.
    while kill -0 "$lgpid" 2>/dev/null && ! grep -q '^HOLDING' "$out"; do sleep 0.05; done
    if grep -q '^HOLDING' "$out"; then
      sleep 1  # let the broker finish its per-connection allocations
      rss1=$(rssKb "$BROKER_PID")
      if [[ -n $rss0 && -n $rss1 ]]; then
        RSS[$table|$broker]=$(awk -v a="$rss0" -v b="$rss1" -v n="$CONNECTIONS" \
          'BEGIN { printf "%.2f", (b - a) / n }')
        echo "  $broker RSS: ${rss0} KiB before, ${rss1} KiB with $CONNECTIONS idle connections" >>"$RAW"
      fi
    fi
  fi
  wait "$lgpid"
  rc=$?
  if ! kill -0 "$BROKER_PID" 2>/dev/null; then
    echo "  $scenario: $broker exited during the run; log:"
    tail -5 "$WORK/$broker-$PORT.log" | sed 's/^/    /'
  fi
  cleanup
  local line
  line=$(grep '^RESULT ' "$out" | tail -1)
  echo "[$table] $run: ${line:-no result (exit $rc)}" >>"$RAW"
  if ((rc != 0)) || [[ -z $line ]]; then
    echo "  $scenario: load generator failed against $run (exit $rc):"
    sed 's/^/    /' "$out.err" | tail -5
    return
  fi
  ALL[$table|$run|$scenario]+="$line"$'\n'
  if [[ -z ${RESULT[$table|$run|$scenario]:-} ]]; then RUNS+=("$table|$run|$scenario"); fi
  RESULT[$table|$run|$scenario]=$(medianLine "${ALL[$table|$run|$scenario]}" \
    "$([[ $scenario == connect ]] && echo conn_per_s || echo recv_rate)")
  printf '  %-18s %-16s %s\n' "$run" "$scenario" "$(grep -v '^RESULT\|^HOLDING' "$out" | head -1)"
}

row() { printf '%-16s %-30s %12s %12s %7s\n' "$@"; }

# metricRow TABLE SCENARIO LABEL KEY DECIMALS [GANNET_RUN]
metricRow() {
  local g m
  g=$(kv "${RESULT[$1|${6:-gannet}|$2]:-}" "$4")
  m=$(kv "${RESULT[$1|mosquitto|$2]:-}" "$4")
  row "$2" "$3" "$(fmt "$g" "$5")" "$(fmt "$m" "$5")" "$(ratio "$g" "$m")"
}

# persistRows TABLE: fanin_q1_persist, each metric for both fsync settings.
persistRows() {
  local f label key dec better spec
  for spec in "msg/s|recv_rate|0|(higher)" "p50 us|p50_us|1|(lower)" "p99 us|p99_us|1|(lower)" \
    "disk B/msg|disk_bytes_per_msg|1|(lower)"; do
    IFS='|' read -r label key dec better <<<"$spec"
    for f in false true; do
      metricRow "$1" fanin_q1_persist "$label fsync=$f $better" "$key" "$dec" "gannet@fsync=$f"
    done
  done
}

# persistTargets TABLE: the issue's targets for gannet --fsync=false.
persistTargets() {
  local g r m
  g=$(kv "${RESULT[$1|gannet@fsync=false|fanin_q1_persist]:-}" recv_rate)
  r=$(kv "${RESULT[$1|gannet|fanin_q1]:-}" recv_rate)
  m=$(kv "${RESULT[$1|mosquitto|fanin_q1_persist]:-}" recv_rate)
  echo "fanin_q1_persist: the mosquitto column is Mosquitto with persistence true (autosave every"
  echo "1800 s: nothing is written in the window); gannet has its store on. Latency = from"
  echo "queued by a publisher to received, unpaced (mostly queueing at saturation). disk"
  echo "B/msg = broker write_bytes (/proc/PID/io, WAL + flush + compaction) / msg received."
  ((FSYNC_UNSUPPORTED)) && echo "gannet: --fsync not supported by this build: its fanin_q1_persist rows are empty."
  echo "gannet fsync=false / gannet in-memory fanin_q1 ($(fmt "$r" 0) msg/s): $(ratio "$g" "$r") (target >= 0.75)"
  echo "gannet fsync=false / mosquitto persistence true: $(ratio "$g" "$m") (target >= 1.5)"
}

printTable() {
  local table=$1 s g m
  echo
  if [[ $table == per-core ]]; then
    echo "== Per core: broker on CPU 0, load generator on CPU 1; gannet --workers=1 =="
  else
    echo "== All cores: nothing pinned, gannet --workers=0; Mosquitto is single-threaded;"
    echo "   the load generator shares the $NCPU cores with the broker =="
  fi
  row scenario metric gannet mosquitto ratio
  row --------- ------------------------------ ------------ ------------ -------
  for s in ${SCENARIOS//,/ }; do
    case "$s" in
      connect)
        metricRow "$table" connect "connections/s (higher)" conn_per_s 0
        g=${RSS[$table|gannet]:-}
        m=${RSS[$table|mosquitto]:-}
        row connect "RSS KiB/idle conn (lower)" "$(fmt "$g" 2)" "$(fmt "$m" 2)" "$(ratio "$g" "$m")"
        ;;
      fanin_q0) metricRow "$table" fanin_q0 "msg/s received (higher)" recv_rate 0 ;;
      fanin_q1) metricRow "$table" fanin_q1 "msg/s received (higher)" recv_rate 0 ;;
      fanout) metricRow "$table" fanout "deliveries/s (higher)" recv_rate 0 ;;
      latency)
        metricRow "$table" latency "msg/s achieved ($LATENCY_RATE)" recv_rate 0
        metricRow "$table" latency "p50 us (lower)" p50_us 1
        metricRow "$table" latency "p99 us (lower)" p99_us 1
        metricRow "$table" latency "p99.9 us (lower)" p999_us 1
        metricRow "$table" latency "max us (lower)" max_us 1
        ;;
      fanin_q1_persist) persistRows "$table" ;;
    esac
  done
  [[ ,$SCENARIOS, == *,fanin_q1_persist,* ]] && { echo; persistTargets "$table"; }
  echo
  echo "CPU in the measured window (connect: until the last CONNACK). lg cpu s = load"
  echo "generator CPU seconds; the rest are shares of one core: lg cpu = load generator"
  echo "(per thread, it has $LOADGEN_THREADS), broker cpu = broker process;"
  echo "wait = time spent runnable but waiting for a CPU behind other processes (above"
  echo "~0.05 the machine was not idle and the figures are disturbed); delivered = received"
  echo "/ (published x fan-out) after the drain; disk B/msg = broker write_bytes / msg received."
  printf '%-16s %-18s %8s %6s %7s %6s %6s %9s %10s\n' scenario run "lg cpu s" "lg cpu" \
    "lg wait" "broker" "b wait" delivered "disk B/msg"
  local key run line dp
  for key in "${RUNS[@]}"; do
    [[ $key == "$table|"* ]] || continue
    IFS='|' read -r _ run s <<<"$key"
    line=${RESULT[$key]}
    dp=$(kv "$line" delivered_pct)
    printf '%-16s %-18s %8s %6s %7s %6s %6s %9s %10s\n' "$s" "$run" \
      "$(fmt "$(kv "$line" lg_cpu_s)" 2)" "$(fmt "$(kv "$line" lg_cpu_util)" 2)" \
      "$(fmt "$(kv "$line" lg_wait_util)" 2)" \
      "$(fmt "$(kv "$line" broker_cpu_util)" 2)" "$(fmt "$(kv "$line" broker_wait_util)" 2)" \
      "$([[ -n $dp ]] && echo "$dp%" || echo -)" "$(fmt "$(kv "$line" disk_bytes_per_msg)" 1)"
  done
}

echo "Gannet vs Mosquitto: $(nproc) CPUs ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)),"
echo "kernel $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg) at start."
echo "Scenarios: $SCENARIOS; ${WARMUP}s warm-up + ${DURATION}s measured each; brokers: ${BROKERS[*]}."
((REPEAT > 1)) && echo "Each run $REPEAT times; the tables show the median run (by throughput)."
((NICE != 0)) && echo "Brokers and load generator run at nice $NICE."
[[ -n $GANNET_FLAGS ]] && echo "Extra gannet flags: $GANNET_FLAGS"
echo "Mosquitto: $("$MOSQUITTO" -h 2>/dev/null | head -1)"
echo "Raw RESULT lines: $RAW"
START=$SECONDS
for table in ${TABLES//,/ }; do
  echo
  echo "-- running the $table table --"
  echo "== $table ==" >>"$RAW"
  for s in ${SCENARIOS//,/ }; do
    runs=("${BROKERS[@]}")
    if [[ $s == fanin_q1_persist ]]; then
      runs=()
      for b in "${BROKERS[@]}"; do
        if [[ $b == gannet ]]; then
          # gannet's in-memory reference is its fanin_q1 figure of this table.
          if [[ -z ${RESULT[$table|gannet|fanin_q1]:-} ]]; then
            for ((rep = 0; rep < REPEAT; ++rep)); do runScenario "$table" gannet fanin_q1; done
          fi
          runs+=(gannet@fsync=false gannet@fsync=true)
        else
          runs+=("$b")
        fi
      done
    fi
    for b in "${runs[@]}"; do
      for ((rep = 0; rep < REPEAT; ++rep)); do runScenario "$table" "$b" "$s"; done
    done
  done
done
for table in ${TABLES//,/ }; do printTable "$table"; done
echo
echo "Took $((SECONDS - START)) s; load average $(cut -d' ' -f1-3 /proc/loadavg) at the end."
echo "Other processes on this machine disturb the figures: compare runs made on an idle machine."
