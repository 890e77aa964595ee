#!/usr/bin/env bash
# Side-by-side benchmark: Gannet against Mosquitto 2.0, same load generator, same
# scenarios, one run. See docs/performance.md.
#
#   benchmarks/compare.sh [BUILD_DIR] [--duration=S] [--warmup=S] [--connections=N]
#                         [--hold=S] [--scenarios=LIST] [--tables=LIST]
#                         [--loadgen_threads=N] [--mosquitto=PATH] [--nice=N]
#                         [--gannet_flags="--flag=value ..."] [--latency_rate=MSG_S]
#
# BUILD_DIR (default build/) must hold benchmarks/loadgen/gannet_loadgen; Gannet
# is taken from BUILD_DIR/cmd/gannet/gannet and skipped, with a note, when it is
# missing. Two tables:
#   per-core   the broker pinned to CPU 0 (taskset -c 0), the load generator to
#              CPU 1; gannet --workers=1.
#   all-cores  nothing pinned; gannet --workers=0 (one worker per core). The load
#              generator shares the cores with the broker.
# Every broker is started fresh for every scenario on 127.0.0.1 and a free port,
# and stopped at the end (trap). Ratios are gannet / mosquitto; the metric column
# says whether higher or lower is better. --nice=-10 runs brokers and load
# generator at a higher priority than other work on a shared machine (root only).
set -uo pipefail

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }

BUILD_DIR=build
DURATION=6
WARMUP=2
CONNECTIONS=10000
HOLD=3
SCENARIOS=connect,fanin_q0,fanin_q1,fanout,latency
TABLES=per-core,all-cores
LOADGEN_THREADS=1
MOSQUITTO=$(command -v mosquitto 2>/dev/null || echo /usr/sbin/mosquitto)
NICE=0
# Gannet's per-client bounds set to match the Mosquitto config below (no maximum
# inflight, no maximum queue): a like-for-like comparison. Override with
# --gannet_flags.
GANNET_FLAGS="--max_inflight_messages=65535 --max_queued_messages=10000000"
LATENCY_RATE=20000

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
    --nice=*) NICE=${arg#*=} ;;
    --gannet_flags=*) GANNET_FLAGS=${arg#*=} ;;
    --latency_rate=*) LATENCY_RATE=${arg#*=} ;;
    --*) die "unknown flag $arg (see --help)" ;;
    *) BUILD_DIR=$arg ;;
  esac
done
[[ $DURATION =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "--duration: expected seconds, got '$DURATION'"
[[ $WARMUP =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "--warmup: expected seconds, got '$WARMUP'"
[[ $HOLD =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "--hold: expected seconds, got '$HOLD'"
[[ $CONNECTIONS =~ ^[1-9][0-9]*$ ]] || die "--connections: expected a positive integer"
[[ $LOADGEN_THREADS =~ ^[1-9][0-9]*$ ]] || die "--loadgen_threads: expected a positive integer"
[[ $LATENCY_RATE =~ ^[1-9][0-9]*$ ]] || die "--latency_rate: expected a positive integer (msg/s)"
if ! [[ $NICE =~ ^-?[0-9]+$ ]] || ((NICE < -20 || NICE > 19)); then
  die "--nice: expected -20..19"
fi
for s in ${SCENARIOS//,/ }; do
  case "$s" in connect|fanin_q0|fanin_q1|fanout|latency) ;; *) die "unknown scenario '$s'" ;; esac
done
for t in ${TABLES//,/ }; do
  case "$t" in per-core|all-cores) ;; *) die "unknown table '$t' (per-core, all-cores)" ;; esac
done

REPO=$(cd "$(dirname "$0")/.." && pwd)
if [[ ! -d $BUILD_DIR && -d $REPO/$BUILD_DIR ]]; then BUILD_DIR=$REPO/$BUILD_DIR; fi
ASKED_BUILD_DIR=$BUILD_DIR
BUILD_DIR=$(cd "$BUILD_DIR" 2>/dev/null && pwd) || die "build directory '$ASKED_BUILD_DIR' not found"
LOADGEN=$BUILD_DIR/benchmarks/loadgen/gannet_loadgen
GANNET=$BUILD_DIR/cmd/gannet/gannet
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
RAW=$BUILD_DIR/benchmarks/compare-last.txt
: >"$RAW"
BROKER_PID=
cleanup() {
  if [[ -n $BROKER_PID ]]; then
    kill -TERM "$BROKER_PID" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$BROKER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$BROKER_PID" 2>/dev/null
    wait "$BROKER_PID" 2>/dev/null
    BROKER_PID=
  fi
}
trap 'cleanup; rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM

# A port nobody listens on. Racy by nature; startBroker retries if bind fails.
freePort() {
  local port
  while true; do
    port=$((20000 + RANDOM % 30000))
    ss -Htan "sport = :$port" 2>/dev/null | grep -q . || { echo "$port"; return; }
  done
}

# startBroker BROKER TABLE: starts it in the background, sets BROKER_PID and PORT.
startBroker() {
  local broker=$1 table=$2 attempt log
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
persistence false
log_dest stderr
log_type error
log_type warning
EOF
      "${pin[@]}" "$MOSQUITTO" -c "$WORK/mosquitto-$PORT.conf" >"$log" 2>&1 &
    else
      local workers=1
      [[ $table == all-cores ]] && workers=0
      mkdir -p "$WORK/data-$PORT"
      # shellcheck disable=SC2086  # GANNET_FLAGS is a list of flags
      "${pin[@]}" "$GANNET" --mqtt_listen="127.0.0.1:$PORT" --data_dir="$WORK/data-$PORT" \
        --workers=$workers --log_level=warn $GANNET_FLAGS >"$log" 2>&1 &
    fi
    BROKER_PID=$!
    for _ in $(seq 100); do
      if ! kill -0 "$BROKER_PID" 2>/dev/null; then break; fi
      if ss -Hltn "sport = :$PORT" 2>/dev/null | grep -q .; then return 0; fi
      sleep 0.1
    done
    echo "  $broker did not start listening on 127.0.0.1:$PORT (attempt $attempt):" >&2
    tail -5 "$log" | sed 's/^/    /' >&2
    cleanup
  done
  return 1
}

rssKb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null; }
kv() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<"$1"; }

declare -A RESULT   # [table|broker|scenario] = RESULT line of the load generator
declare -A RSS      # [table|broker] = KiB per idle connection

# runScenario TABLE BROKER SCENARIO
runScenario() {
  local table=$1 broker=$2 scenario=$3 out args=() rss0 rss1 lgpid rc
  local pin=("${PRIO[@]}")
  [[ $table == per-core ]] && pin+=("${PIN_LOADGEN[@]}")
  case "$scenario" in
    connect) args=(--scenario=connect --connections="$CONNECTIONS" --hold="$HOLD") ;;
    fanin_q0) args=(--scenario=fanin --qos=0) ;;
    fanin_q1) args=(--scenario=fanin --qos=1) ;;
    fanout) args=(--scenario=fanout --qos=0) ;;
    latency) args=(--scenario=latency --qos=1 --pairs=100 --rate="$LATENCY_RATE") ;;
  esac
  startBroker "$broker" "$table" || { echo "  $scenario: $broker failed to start, skipped"; return; }
  sleep 0.3
  out=$WORK/$table-$broker-$scenario.out
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
  echo "[$table] $broker: ${line:-no result (exit $rc)}" >>"$RAW"
  if ((rc != 0)) || [[ -z $line ]]; then
    echo "  $scenario: load generator failed against $broker (exit $rc):"
    sed 's/^/    /' "$out.err" | tail -5
    return
  fi
  RESULT[$table|$broker|$scenario]=$line
  printf '  %-9s %-10s %s\n' "$broker" "$scenario" "$(grep -v '^RESULT\|^HOLDING' "$out" | head -1)"
}

fmt() {  # fmt VALUE DECIMALS: "-" when empty
  if [[ -z $1 ]]; then echo "-"; else awk -v v="$1" -v d="$2" 'BEGIN { printf "%.*f", d, v }'; fi
}
ratio() {
  if [[ -z $1 || -z $2 ]]; then echo "-"; else
    awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "-"; else printf "%.2f", a / b }'
  fi
}
row() { printf '%-9s %-26s %12s %12s %7s\n' "$@"; }

# metricRow TABLE SCENARIO LABEL KEY DECIMALS
metricRow() {
  local g m
  g=$(kv "${RESULT[$1|gannet|$2]:-}" "$4")
  m=$(kv "${RESULT[$1|mosquitto|$2]:-}" "$4")
  row "$2" "$3" "$(fmt "$g" "$5")" "$(fmt "$m" "$5")" "$(ratio "$g" "$m")"
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
  row --------- -------------------------- ------------ ------------ -------
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
    esac
  done
  echo
  echo "CPU in the measured window (connect: until the last CONNACK). lg cpu s = load"
  echo "generator CPU seconds; the rest are shares of one core: lg cpu = load generator"
  echo "(per thread, it has $LOADGEN_THREADS), broker cpu = broker process;"
  echo "wait = time spent runnable but waiting for a CPU behind other processes (above"
  echo "~0.05 the machine was not idle and the figures are disturbed); delivered = received"
  echo "/ (published x fan-out) after the drain."
  printf '%-9s %-10s %9s %9s %9s %11s %11s %10s\n' scenario broker "lg cpu s" "lg cpu" \
    "lg wait" "broker cpu" "broker wait" delivered
  local b line dp
  for s in ${SCENARIOS//,/ }; do
    for b in "${BROKERS[@]}"; do
      line=${RESULT[$table|$b|$s]:-}
      [[ -n $line ]] || continue
      dp=$(kv "$line" delivered_pct)
      printf '%-9s %-10s %9s %9s %9s %11s %11s %10s\n' "$s" "$b" \
        "$(fmt "$(kv "$line" lg_cpu_s)" 2)" "$(fmt "$(kv "$line" lg_cpu_util)" 2)" \
        "$(fmt "$(kv "$line" lg_wait_util)" 2)" \
        "$(fmt "$(kv "$line" broker_cpu_util)" 2)" "$(fmt "$(kv "$line" broker_wait_util)" 2)" \
        "$([[ -n $dp ]] && echo "$dp%" || echo -)"
    done
  done
}

echo "Gannet vs Mosquitto: $(nproc) CPUs ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)),"
echo "kernel $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg) at start."
echo "Scenarios: $SCENARIOS; ${WARMUP}s warm-up + ${DURATION}s measured each; brokers: ${BROKERS[*]}."
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
    for b in "${BROKERS[@]}"; do
      runScenario "$table" "$b" "$s"
    done
  done
done
for table in ${TABLES//,/ }; do printTable "$table"; done
echo
echo "Took $((SECONDS - START)) s; load average $(cut -d' ' -f1-3 /proc/loadavg) at the end."
echo "Other processes on this machine disturb the figures: compare runs made on an idle machine."
