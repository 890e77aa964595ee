#!/usr/bin/env bash
# Installs the Debian 12 packages Gannet needs to build, test and benchmark.
# Idempotent: does nothing (and needs no network) when everything is present.
set -euo pipefail
pkgs=(build-essential cmake make pkg-config ccache clang
      libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
      librocksdb-dev libabsl-dev prometheus-cpp-dev libspdlog-dev
      libgtest-dev libgmock-dev libbenchmark-dev libssl-dev
      mosquitto mosquitto-clients python3-paho-mqtt procps iproute2 iptables
      unzip python3-yaml prometheus)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages: ${missing[*]}; run as root or: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
