#!/usr/bin/env bash
# TLS against plain TCP, Gannet and Mosquitto 2.0 side by side, one run, same
# load generator (gannet_loadgen --tls). See docs/performance.md, "TLS against
# plain TCP".
#
#   benchmarks/tls_bench.sh [BUILD_DIR] [--duration=S] [--warmup=S] [--repeat=N]
#                           [--nice=N] [--connections=N] [--keys=LIST]
#                           [--scenarios=LIST] [--tls_version=1.2|1.3]
#                           [--mosquitto=PATH] [--gannet=PATH]
#                           [--gannet_flags="--flag=value ..."]
#
# Scenarios (all by default):
#   fanin_q0  16 publishers -> 1 subscriber, QoS 0, msg/s received
#   fanin_q1  the same at QoS 1
#   connect   --connections (5000) new connections, --connect_window 100 at a
#             time: TCP + (TLS handshake) + CONNECT/CONNACK per second; also the
#             broker's RSS per idle connection
# Each runs against gannet and mosquitto, plain and TLS. TLS uses a throwaway CA
# and server certificates made here with the openssl CLI; --keys (default
# ecdsa,rsa) lists the server keys: ecdsa = ECDSA P-256, rsa = RSA 2048. The
# connect scenario runs once per key; fanin runs with the first key only (the
# key signs the handshake and nothing else: bulk traffic is the same AEAD
# cipher whatever the key). Every TLS connection makes a full handshake (no
# resumption). fanin clients verify the broker's certificate against the CA;
# connect clients do not (client-side work only, the broker's is the same, and
# it would make the load generator the limit even sooner).
# Besides the rates, the broker's CPU time per message (ns) and per connection
# (us): where the load generator, not the broker, is the limit (an ECDSA
# handshake costs the client more than the server), that is the fair figure.
#
# Like compare.sh's per-core table: the broker is pinned to CPU 0, the load
# generator to CPU 1; gannet --workers=1. Every run gets a fresh broker on
# 127.0.0.1 and a free port. --repeat=N runs everything N times and reports the
# median run (by throughput, connect: connections/s); raw RESULT lines of every
# run go to BUILD_DIR/benchmarks/tls-last.txt. --nice=-10 runs brokers and
# generator ahead of other work on a shared machine (root only; with
# autogroups, in a session of its own: see prioritize in bench_lib.sh).
set -uo pipefail
# freePort, stopBroker, waitListening, rssKb, kv, medianLine, fmt, ratio
# shellcheck source=bench_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench_lib.sh"

BUILD_DIR=build
DURATION=5
WARMUP=2
REPEAT=1
NICE=0
CONNECTIONS=5000
HOLD=3  # the script reads the broker's RSS 1 s into it
KEYS=ecdsa,rsa
SCENARIOS=fanin_q0,fanin_q1,connect
TLS_VERSION=
MOSQUITTO=$(command -v mosquitto 2>/dev/null || echo /usr/sbin/mosquitto)
GANNET=
# As compare.sh: Gannet's per-client bounds lifted to match the Mosquitto config.
GANNET_FLAGS="--max_inflight_messages=65535 --max_queued_messages=10000000"

die() { echo "tls_bench.sh: $*" >&2; exit 2; }
for arg in "$@"; do
  case "$arg" in
    -h|--help) usage; exit 0 ;;
    --duration=*) DURATION=${arg#*=} ;;
    --warmup=*) WARMUP=${arg#*=} ;;
    --repeat=*) REPEAT=${arg#*=} ;;
    --nice=*) NICE=${arg#*=} ;;
    --connections=*) CONNECTIONS=${arg#*=} ;;
    --keys=*) KEYS=${arg#*=} ;;
    --scenarios=*) SCENARIOS=${arg#*=} ;;
    --tls_version=*) TLS_VERSION=${arg#*=} ;;
    --mosquitto=*) MOSQUITTO=${arg#*=} ;;
    --gannet=*) GANNET=${arg#*=} ;;
    --gannet_flags=*) GANNET_FLAGS=${arg#*=} ;;
    --*) die "unknown flag $arg (see --help)" ;;
    *) BUILD_DIR=$arg ;;
  esac
done
[[ $DURATION =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "--duration: expected seconds, got '$DURATION'"
[[ $WARMUP =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "--warmup: expected seconds, got '$WARMUP'"
[[ $REPEAT =~ ^[1-9][0-9]?$ ]] || die "--repeat: expected 1..99"
[[ $CONNECTIONS =~ ^[1-9][0-9]*$ ]] || die "--connections: expected a positive integer"
[[ -z $TLS_VERSION || $TLS_VERSION == 1.2 || $TLS_VERSION == 1.3 ]] ||
  die "--tls_version: expected 1.2 or 1.3"
if ! [[ $NICE =~ ^-?[0-9]+$ ]] || ((NICE < -20 || NICE > 19)); then
  die "--nice: expected -20..19"
fi
for k in ${KEYS//,/ }; do
  case "$k" in ecdsa|rsa) ;; *) die "unknown key '$k' (ecdsa, rsa)" ;; esac
done
[[ -n ${KEYS//,/} ]] || die "--keys: empty"
for s in ${SCENARIOS//,/ }; do
  case "$s" in fanin_q0|fanin_q1|connect) ;; *) die "unknown scenario '$s'" ;; esac
done
FIRST_KEY=${KEYS%%,*}
prioritize "$NICE" "$0" "$@"
command -v openssl >/dev/null || die "needs the openssl command"

REPO=$(cd "$(dirname "$0")/.." && pwd)
if [[ ! -d $BUILD_DIR && -d $REPO/$BUILD_DIR ]]; then BUILD_DIR=$REPO/$BUILD_DIR; fi
ASKED_BUILD_DIR=$BUILD_DIR
BUILD_DIR=$(cd "$BUILD_DIR" 2>/dev/null && pwd) || die "build directory '$ASKED_BUILD_DIR' not found"
LOADGEN=$BUILD_DIR/benchmarks/loadgen/gannet_loadgen
GANNET=${GANNET:-$BUILD_DIR/cmd/gannet/gannet}
[[ -x $LOADGEN ]] || die "no load generator at $LOADGEN; build it first:
  cmake -S $REPO -B $BUILD_DIR -DCMAKE_BUILD_TYPE=Release && cmake --build $BUILD_DIR --target gannet gannet_loadgen"
"$LOADGEN" --help | grep -q -- '--tls' || die "$LOADGEN has no --tls: rebuild it"

BROKERS=()
if [[ -x $GANNET ]]; then BROKERS+=(gannet); else echo "NOTE: no gannet at $GANNET: Mosquitto only."; fi
if [[ -x $MOSQUITTO ]]; then BROKERS+=(mosquitto); else echo "NOTE: no Mosquitto at $MOSQUITTO: gannet only."; fi
((${#BROKERS[@]} > 0)) || die "neither gannet nor Mosquitto is available"

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
if [[ $NOFILE != unlimited ]] && ((NOFILE < CONNECTIONS + 200)); then
  echo "NOTE: the descriptor limit is $NOFILE: connect scenario reduced to $((NOFILE - 200)) connections."
  CONNECTIONS=$((NOFILE - 200))
fi

PIN_BROKER=(taskset -c 0)
PIN_LOADGEN=(taskset -c 1)
if (($(nproc) < 2)) || ! command -v taskset >/dev/null; then
  echo "NOTE: fewer than 2 CPUs or no taskset: running unpinned."
  PIN_BROKER=()
  PIN_LOADGEN=()
fi
PRIO=()
((NICE != 0)) && PRIO=(nice -n "$NICE")

WORK=$(mktemp -d /tmp/gannet-tls-bench.XXXXXX)
RAW=$BUILD_DIR/benchmarks/tls-last.txt
mkdir -p "$BUILD_DIR/benchmarks"
: >"$RAW"
BROKER_PID=
trap 'stopBroker; rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM

# makePki: a throwaway CA (ECDSA P-256) and one server certificate per key in
# KEYS, valid for localhost and 127.0.0.1: $WORK/ca.pem, $WORK/server-KEY.{pem,key}.
makePki() {
  local k
  (
    cd "$WORK" || exit 1
    openssl ecparam -name prime256v1 -genkey -noout -out ca.key &&
      openssl req -x509 -new -key ca.key -sha256 -days 2 -subj "/CN=gannet bench CA" -out ca.pem &&
      printf '%s\n' 'subjectAltName=DNS:localhost,IP:127.0.0.1' 'basicConstraints=CA:FALSE' \
        'keyUsage=digitalSignature,keyEncipherment' 'extendedKeyUsage=serverAuth' >server.ext ||
      exit 1
    for k in ${KEYS//,/ }; do
      if [[ $k == ecdsa ]]; then
        openssl ecparam -name prime256v1 -genkey -noout -out "server-$k.key"
      else
        openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "server-$k.key"
      fi &&
        openssl req -new -key "server-$k.key" -subj "/CN=localhost" -out "server-$k.csr" &&
        openssl x509 -req -in "server-$k.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
          -sha256 -extfile server.ext -out "server-$k.pem" || exit 1
    done
  ) >"$WORK/pki.log" 2>&1 || { cat "$WORK/pki.log" >&2; die "could not make the certificates"; }
}

keyName() { [[ $1 == ecdsa ]] && echo "ECDSA P-256" || echo "RSA 2048"; }

# startBroker BROKER MODE: MODE is plain or tls-KEY. Sets BROKER_PID and PORT.
startBroker() {
  local broker=$1 mode=$2 attempt log key=${2#tls-}
  local cmd=("${PRIO[@]}" "${PIN_BROKER[@]}")
  for attempt in 1 2 3; do
    PORT=$(freePort)
    log=$WORK/$broker-$PORT.log
    if [[ $broker == mosquitto ]]; then
      # The Mosquitto config of compare.sh (no queue or inflight maximum, TCP_NODELAY).
      # `user`: started as root, Mosquitto would switch to user mosquitto, who
      # cannot read the key.
      {
        echo "listener $PORT 127.0.0.1"
        if [[ $mode == tls-* ]]; then
          echo "certfile $WORK/server-$key.pem"
          echo "keyfile $WORK/server-$key.key"
        fi
        printf '%s\n' 'allow_anonymous true' 'max_connections -1' 'max_queued_messages 0' \
          'max_inflight_messages 0' 'set_tcp_nodelay true' 'persistence false' \
          'log_dest stderr' 'log_type error' 'log_type warning' "user $(id -un)"
      } >"$WORK/mosquitto-$PORT.conf"
      "${cmd[@]}" "$MOSQUITTO" -c "$WORK/mosquitto-$PORT.conf" >"$log" 2>&1 &
    else
      local listen=(--mqtt_listen="127.0.0.1:$PORT")
      if [[ $mode == tls-* ]]; then
        # The plain listener cannot be turned off: any free port.
        listen=(--mqtt_listen=127.0.0.1:0 --mqtts_listen="127.0.0.1:$PORT"
          --tls_cert_file="$WORK/server-$key.pem" --tls_key_file="$WORK/server-$key.key")
      fi
      mkdir -p "$WORK/data-$PORT"
      # shellcheck disable=SC2086  # GANNET_FLAGS is a list of flags
      "${cmd[@]}" "$GANNET" "${listen[@]}" --data_dir="$WORK/data-$PORT" --workers=1 \
        --log_level=warn $GANNET_FLAGS >"$log" 2>&1 &
    fi
    BROKER_PID=$!
    waitListening "$BROKER_PID" "$PORT" && return 0
    echo "  $broker ($mode) did not start listening on 127.0.0.1:$PORT (attempt $attempt):" >&2
    tail -5 "$log" | sed 's/^/    /' >&2
    stopBroker
  done
  return 1
}

declare -A RESULT  # [broker|mode|scenario] = the median RESULT line
declare -A ALL     # [broker|mode|scenario] = the RESULT lines of every repeat
declare -A RSS     # [broker|mode] = KiB per idle connection (median run's)
declare -A RSSALL  # [broker|mode] = the KiB per idle connection of every connect run
RUNS=()

# runOne BROKER MODE SCENARIO
runOne() {
  local broker=$1 mode=$2 scenario=$3 out args=() lgpid rc line rss0 rss1 key=${2#tls-}
  case "$scenario" in
    connect) args=(--scenario=connect --connections="$CONNECTIONS" --hold="$HOLD") ;;
    fanin_q0) args=(--scenario=fanin --qos=0) ;;
    fanin_q1) args=(--scenario=fanin --qos=1) ;;
  esac
  if [[ $mode == tls-* ]]; then
    args+=(--tls)
    [[ $scenario != connect ]] && args+=(--cafile="$WORK/ca.pem")
    [[ -n $TLS_VERSION ]] && args+=(--tls_version="$TLS_VERSION")
  fi
  startBroker "$broker" "$mode" || { echo "  $scenario: $broker ($mode) failed to start, skipped"; return; }
  sleep 0.3
  out=$WORK/$broker-$mode-$scenario.out
  rss0=$(rssKb "$BROKER_PID")
  "${PRIO[@]}" "${PIN_LOADGEN[@]}" "$LOADGEN" --port="$PORT" --broker_pid="$BROKER_PID" \
    --duration="$DURATION" --warmup="$WARMUP" "${args[@]}" >"$out" 2>"$out.err" &
  lgpid=$!
  rss1=
  if [[ $scenario == connect ]]; then
    while kill -0 "$lgpid" 2>/dev/null && ! grep -q '^HOLDING' "$out"; do sleep 0.05; done
    if grep -q '^HOLDING' "$out"; then
      sleep 1  # let the broker finish its per-connection allocations
      rss1=$(rssKb "$BROKER_PID")
    fi
  fi
  wait "$lgpid"
  rc=$?
  if ! kill -0 "$BROKER_PID" 2>/dev/null; then
    echo "  $scenario: $broker ($mode) exited during the run; log:"
    tail -5 "$WORK/$broker-$PORT.log" | sed 's/^/    /'
  fi
  stopBroker
  line=$(grep '^RESULT ' "$out" | tail -1)
  echo "$broker $mode: ${line:-no result (exit $rc)}" >>"$RAW"
  if ((rc != 0)) || [[ -z $line ]]; then
    echo "  $scenario: load generator failed against $broker ($mode) (exit $rc):"
    sed 's/^/    /' "$out.err" | tail -5
    return
  fi
  local id="$broker|$mode|$scenario" metric=recv_rate u
  [[ $scenario == connect ]] && metric=conn_per_s
  # The broker's CPU per unit of work, from its share of a core in the window.
  u=$(kv "$line" broker_cpu_util)
  if [[ -n $u && $scenario == connect ]]; then
    line+=" broker_us_per_conn=$(awk -v u="$u" -v t="$(kv "$line" connect_s)" -v n="$CONNECTIONS" \
      'BEGIN { printf "%.1f", u * t * 1e6 / n }')"
  elif [[ -n $u ]]; then
    line+=" broker_ns_per_msg=$(awk -v u="$u" -v r="$(kv "$line" recv_rate)" \
      'BEGIN { if (r > 0) printf "%.1f", u * 1e9 / r }')"
  fi
  [[ -z ${ALL[$id]:-} ]] && RUNS+=("$id")
  ALL[$id]+="$line"$'\n'
  RESULT[$id]=$(medianLine "${ALL[$id]}" "$metric")
  if [[ $scenario == connect ]]; then
    echo "  $broker $mode RSS: ${rss0:-?} KiB before, ${rss1:-?} KiB with $CONNECTIONS idle connections" >>"$RAW"
  fi
  if [[ -n $rss0 && -n $rss1 ]]; then
    RSSALL[$broker|$mode]+="$(awk -v a="$rss0" -v b="$rss1" -v n="$CONNECTIONS" \
      'BEGIN { printf "%.2f", (b - a) / n }')"$'\n'
    # The median of the runs that have a reading (not tied to the median run:
    # a reading can be missed, e.g. if the script did not get a CPU in time).
    RSS[$broker|$mode]=$(grep . <<<"${RSSALL[$broker|$mode]}" | sort -g |
      awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }')
  fi
  printf '  %-10s %-10s %-9s %s\n' "$broker" "$mode" "$scenario" "$(grep -v '^RESULT\|^HOLDING' "$out" | head -1)"
}

echo "TLS vs plain TCP, Gannet vs Mosquitto: $(nproc) CPUs ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)),"
echo "kernel $(uname -r), $(openssl version | cut -d' ' -f1-2), load average $(cut -d' ' -f1-3 /proc/loadavg) at start."
echo "Scenarios: $SCENARIOS; fanin: ${WARMUP}s warm-up + ${DURATION}s measured; connect: $CONNECTIONS connections."
echo "Broker on CPU 0, load generator on CPU 1; gannet --workers=1 $GANNET_FLAGS."
echo "Server keys: $(for k in ${KEYS//,/ }; do printf '%s; ' "$(keyName "$k")"; done)CA: ECDSA P-256. TLS version: ${TLS_VERSION:-1.2 or 1.3, as negotiated}."
((REPEAT > 1)) && echo "Each run $REPEAT times; the table shows the median run (by throughput)."
((NICE != 0)) && echo "Brokers and load generator run at nice $NICE$([[ -n ${GANNET_BENCH_AUTOGROUP:-} ]] && echo ", in an autogroup of nice $(sed -n 's/.* nice //p' /proc/self/autogroup)")."
echo "Mosquitto: $("$MOSQUITTO" -h 2>/dev/null | head -1)"
echo "Raw RESULT lines: $RAW"
makePki
START=$SECONDS
for s in ${SCENARIOS//,/ }; do
  modes=(plain "tls-$FIRST_KEY")
  if [[ $s == connect ]]; then
    modes=(plain)
    for k in ${KEYS//,/ }; do modes+=("tls-$k"); done
  fi
  for b in "${BROKERS[@]}"; do
    for m in "${modes[@]}"; do
      for ((rep = 0; rep < REPEAT; ++rep)); do runOne "$b" "$m" "$s"; done
    done
  done
done

value() { kv "${RESULT[$1|$2|$3]:-}" "$4"; }
row() { printf '%-9s %-32s %11s %11s %6s %11s %11s %6s %7s %7s\n' "$@"; }

# metricRow SCENARIO LABEL KEY DECIMALS TLS_MODE
metricRow() {
  local s=$1 label=$2 key=$3 dec=$4 tm=$5 gp gt mp mt
  gp=$(value gannet plain "$s" "$key")
  gt=$(value gannet "$tm" "$s" "$key")
  mp=$(value mosquitto plain "$s" "$key")
  mt=$(value mosquitto "$tm" "$s" "$key")
  row "$s" "$label" "$(fmt "$gp" "$dec")" "$(fmt "$gt" "$dec")" "$(ratio "$gt" "$gp")" \
    "$(fmt "$mp" "$dec")" "$(fmt "$mt" "$dec")" "$(ratio "$mt" "$mp")" \
    "$(ratio "$gp" "$mp")" "$(ratio "$gt" "$mt")"
}

echo
echo "== TLS vs plain; broker on CPU 0, load generator on CPU 1 =="
row "" "" gannet gannet TLS/ mosquitto mosquitto TLS/ g/m g/m
row scenario metric plain TLS plain plain TLS plain plain TLS
row --------- -------------------------------- ----------- ----------- ------ ----------- ----------- ------ ------- -------
for s in ${SCENARIOS//,/ }; do
  case "$s" in
    fanin_q0|fanin_q1)
      metricRow "$s" "msg/s ($(keyName "$FIRST_KEY"))" recv_rate 0 "tls-$FIRST_KEY"
      metricRow "$s" "broker CPU ns/msg" broker_ns_per_msg 0 "tls-$FIRST_KEY"
      ;;
    connect)
      for k in ${KEYS//,/ }; do metricRow connect "conn/s ($(keyName "$k"))" conn_per_s 0 "tls-$k"; done
      for k in ${KEYS//,/ }; do
        metricRow connect "broker CPU us/conn ($(keyName "$k"))" broker_us_per_conn 1 "tls-$k"
      done
      for k in ${KEYS//,/ }; do
        metricRow connect "hs p50 us ($(keyName "$k"))" handshake_p50_us 0 "tls-$k"
      done
      for k in ${KEYS//,/ }; do
        gp=${RSS[gannet|plain]:-} gt=${RSS[gannet|tls-$k]:-}
        mp=${RSS[mosquitto|plain]:-} mt=${RSS[mosquitto|tls-$k]:-}
        row connect "KiB/idle conn ($(keyName "$k"))" "$(fmt "$gp" 2)" "$(fmt "$gt" 2)" \
          "$(ratio "$gt" "$gp")" "$(fmt "$mp" 2)" "$(fmt "$mt" 2)" "$(ratio "$mt" "$mp")" \
          "$(ratio "$gp" "$mp")" "$(ratio "$gt" "$mt")"
      done
      ;;
  esac
done
echo "TLS/plain: the broker's TLS figure over its plain one. g/m: gannet / mosquitto."
echo "Higher is better for msg/s and conn/s; lower for broker CPU per message / connection"
echo "(its CPU time in the window / work done in it), hs p50 us (TCP connect -> CONNACK, TLS"
echo "handshake included, 100 in progress) and KiB/idle conn (RSS growth / connections held)."
echo
echo "Negotiated (first handshake of the median run):"
for id in "${RUNS[@]}"; do
  IFS='|' read -r b m s <<<"$id"
  [[ $m == tls-* ]] || continue
  printf '  %-10s %-10s %-9s %s\n' "$b" "$m" "$s" "$(kv "${RESULT[$id]}" tls)"
done
echo
echo "CPU in the measured window (connect: until the last CONNACK), shares of one core:"
echo "lg = load generator, b = broker; wait = runnable but waiting for a CPU (above ~0.05:"
echo "the machine was not idle and the figures are disturbed)."
printf '%-10s %-10s %-9s %7s %7s %7s %7s %9s\n' broker mode scenario "lg cpu" "lg wait" \
  "b cpu" "b wait" delivered
for id in "${RUNS[@]}"; do
  IFS='|' read -r b m s <<<"$id"
  line=${RESULT[$id]}
  dp=$(kv "$line" delivered_pct)
  printf '%-10s %-10s %-9s %7s %7s %7s %7s %9s\n' "$b" "$m" "$s" \
    "$(fmt "$(kv "$line" lg_cpu_util)" 2)" "$(fmt "$(kv "$line" lg_wait_util)" 2)" \
    "$(fmt "$(kv "$line" broker_cpu_util)" 2)" "$(fmt "$(kv "$line" broker_wait_util)" 2)" \
    "$([[ -n $dp ]] && echo "$dp%" || echo -)"
done
echo
echo "Took $((SECONDS - START)) s; load average $(cut -d' ' -f1-3 /proc/loadavg) at the end."
