#!/usr/bin/env bash
# Installs every Debian 12 package tandem needs to build, test and run its lab.
#   deploy/install-deps.sh          build + test + lab dependencies
#   deploy/install-deps.sh --bench  also the peer tools and extras bench/ compares against
#   deploy/install-deps.sh --corpus also what tests/scenarios/real/make_corpus.sh needs to re-make
#                                   the real-capture corpus (a kernel client in python, curl)
# Idempotent: a package already installed is left alone. Needs root (apt-get).
set -euo pipefail

pkgs=(
  build-essential cmake pkg-config git
  libpcap-dev libzmq3-dev cppzmq-dev libsodium-dev libcereal-dev libspdlog-dev libfmt-dev
  libcli11-dev nlohmann-json3-dev libtomlplusplus-dev libgtest-dev libgmock-dev
  iproute2 nftables tcpdump tshark procps
)
if [[ "${1:-}" == "--bench" ]]; then
  pkgs+=(nmap hping3 python3-scapy libbenchmark-dev clang-14 libclang-rt-14-dev hyperfine time)
fi
if [[ "${1:-}" == "--corpus" ]]; then
  pkgs+=(python3 curl)
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "install-deps: need root to install: ${missing[*]}" >&2
    exit 2
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  apt-get install -y --no-install-recommends "${missing[@]}"
fi
