# shellcheck shell=bash
# Shell helpers shared by benchmarks/compare.sh and benchmarks/tls_bench.sh.
# Sourced, not run. The caller keeps the running broker's pid in BROKER_PID.

# A port nobody listens on. Racy by nature; callers retry if bind fails.
freePort() {
  local port
  while true; do
    port=$((20000 + RANDOM % 30000))
    ss -Htan "sport = :$port" 2>/dev/null | grep -q . || { echo "$port"; return; }
  done
}

# Stops the broker of BROKER_PID (TERM, then KILL after 5 s) and clears it.
stopBroker() {
  if [[ -n ${BROKER_PID:-} ]]; then
    kill -TERM "$BROKER_PID" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$BROKER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$BROKER_PID" 2>/dev/null
    wait "$BROKER_PID" 2>/dev/null
    BROKER_PID=
  fi
}

# waitListening PID PORT: 0 once something listens on 127.0.0.1:PORT, 1 if PID
# exited first or after 10 s.
waitListening() {
  for _ in $(seq 100); do
    kill -0 "$1" 2>/dev/null || return 1
    ss -Hltn "sport = :$2" 2>/dev/null | grep -q . && return 0
    sleep 0.1
  done
  return 1
}

rssKb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null; }

# kv LINE KEY: the value of KEY=... in a RESULT line.
kv() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<"$1"; }

# medianLine LINES KEY: of the RESULT lines (one per run), the one whose KEY is
# the median (the lower middle one for an even count).
medianLine() {
  local lines=$1 key=$2
  while IFS= read -r l; do
    [[ -n $l ]] && printf '%s\t%s\n' "$(kv "$l" "$key")" "$l"
  done <<<"$lines" | sort -g -k1,1 | awk -F'\t' '{ v[NR] = $2 } END { print v[int((NR + 1) / 2)] }'
}

fmt() {  # fmt VALUE DECIMALS: "-" when empty
  if [[ -z $1 ]]; then echo "-"; else awk -v v="$1" -v d="$2" 'BEGIN { printf "%.*f", d, v }'; fi
}

ratio() {  # ratio A B: A / B to 2 decimals, "-" when either is missing
  if [[ -z $1 || -z $2 ]]; then echo "-"; else
    awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "-"; else printf "%.2f", a / b }'
  fi
}

# prioritize NICE SCRIPT ARGS...: makes --nice work where the kernel groups
# processes by session (CONFIG_SCHED_AUTOGROUP, /proc/sys/kernel/sched_autogroup_enabled
# = 1, the default on desktop and many server kernels): there a nice value only
# ranks processes within their own session, so `nice -n -10` does nothing
# against a compiler started from another terminal. The script is run again in
# a session of its own (setsid) whose autogroup gets the nice value, which ranks
# the whole run against other sessions without touching the caller's session.
# Returns if there is nothing to do (NICE 0, no autogroups, already done);
# otherwise exits with the script's status. Ctrl-C is passed on to the run.
prioritize() {
  local nice=$1
  shift
  if [[ -n ${GANNET_BENCH_AUTOGROUP:-} ]]; then
    if ! echo "$nice" >/proc/self/autogroup 2>/dev/null; then
      echo "NOTE: could not set the autogroup nice value to $nice (root only): --nice only ranks processes within this session."
    fi
    return
  fi
  ((nice != 0)) || return
  [[ $(cat /proc/sys/kernel/sched_autogroup_enabled 2>/dev/null) == 1 ]] || return
  command -v setsid >/dev/null || return
  local child rc
  GANNET_BENCH_AUTOGROUP=1 setsid --wait "$@" &
  child=$!
  trap 'kill -INT -- -"$child" 2>/dev/null || kill -INT "$child" 2>/dev/null' INT TERM
  while true; do
    wait "$child"
    rc=$?
    kill -0 "$child" 2>/dev/null || exit "$rc"  # else a signal interrupted the wait
  done
}

# The calling script's header comment (after the #! line), for --help.
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
