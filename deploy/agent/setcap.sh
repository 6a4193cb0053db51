#!/bin/sh
# Without systemd: give the binary CAP_NET_RAW as a file capability, then run it as an ordinary
# user (not root). CAP_NET_ADMIN is not needed (docs/agent.md "Privileges").
set -eu
BIN=${1:-/usr/local/bin/tandem-agent}
setcap cap_net_raw+ep "$BIN"
getcap "$BIN"
