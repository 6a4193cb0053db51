#!/usr/bin/env bash
# Re-makes the real-capture corpus (tests/scenarios/real/<scenario>/): for every scenario, three
# fresh network namespaces (client, middlebox, server), an nftables ruleset, a real kernel listener,
# a real kernel client (python sockets or curl), tcpdump on the client and on the server the way
# admins take captures, and the ground truth computed from the captures by oracle.py (not by
# tandem), cross-checked with the nft counters and the client's own results.
#
# Usage: sudo tests/scenarios/real/make_corpus.sh [SCENARIO...]    (default: all; root needed)
# Not part of the test run: the captures it makes are committed, and real_corpus_test reads them.
# The timing of a real kernel is not bit-for-bit reproducible, so a re-made scenario has other
# ports and sequence numbers; its truth.json is made with it, so the pair stays consistent.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
P="rc$$"
C="$P-client" M="$P-mb" S="$P-server"
WORK="$(mktemp -d "/tmp/tandem-corpus-$P.XXXXXX")"
PIDS=()

die() { echo "make_corpus: $*" >&2; exit 1; }
[[ $(id -u) -eq 0 ]] || die "needs root (network namespaces, nftables, tcpdump)"
for t in ip nft tcpdump tshark editcap python3 curl; do
  command -v "$t" >/dev/null || die "missing tool: $t (deploy/install-deps.sh)"
done

stop_pids() {
  local p
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  PIDS=()
}

lab_down() {
  stop_pids
  local ns
  for ns in "$C" "$M" "$S"; do
    ip netns del "$ns" 2>/dev/null || true
  done
}

cleanup() {
  lab_down
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# lab_up [bridge]: client 10.77.1.2 fd77:1::2 -- middlebox 10.77.1.1|10.77.2.1 -- server 10.77.2.2
# fd77:2::2 (DESIGN.md section 4). With "bridge", the server's address sits on br0 whose port is the
# veth, as on a container or VM host.
lab_up() {
  local bridge="${1:-}" ns sif=s0
  for ns in "$C" "$M" "$S"; do
    ip netns add "$ns"
    # Before any interface exists, so every interface inherits it (see controller/lab/lab.cpp).
    ip netns exec "$ns" sysctl -q -w net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 \
      net.ipv4.icmp_ratelimit=0 net.ipv6.icmp.ratelimit=0
    ip -n "$ns" link set lo up
  done
  ip link add c0 netns "$C" type veth peer name m0 netns "$M"
  ip link add m1 netns "$M" type veth peer name s0 netns "$S"
  ip -n "$C" addr add 10.77.1.2/24 dev c0
  ip -n "$C" addr add fd77:1::2/64 dev c0 nodad
  ip -n "$M" addr add 10.77.1.1/24 dev m0
  ip -n "$M" addr add fd77:1::1/64 dev m0 nodad
  ip -n "$M" addr add 10.77.2.1/24 dev m1
  ip -n "$M" addr add fd77:2::1/64 dev m1 nodad
  if [[ $bridge == bridge ]]; then
    ip -n "$S" link add br0 type bridge
    ip -n "$S" link set s0 master br0
    ip -n "$S" link set br0 up
    sif=br0
  fi
  ip -n "$S" addr add 10.77.2.2/24 dev "$sif"
  ip -n "$S" addr add fd77:2::2/64 dev "$sif" nodad
  ip -n "$C" link set c0 up
  ip -n "$M" link set m0 up
  ip -n "$M" link set m1 up
  ip -n "$S" link set s0 up
  ip -n "$C" route add default via 10.77.1.1
  ip -n "$C" -6 route add default via fd77:1::1
  ip -n "$S" route add default via 10.77.2.1
  ip -n "$S" -6 route add default via fd77:2::1
  ip netns exec "$M" sysctl -q -w net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
  # Warm the neighbour caches so the first SYN is not delayed by ARP/ND.
  # (a UDP datagram to the discard port; its ICMP error comes before any capture starts)
  ip netns exec "$C" python3 -c 'import socket, time
for a, f in (("10.77.2.2", socket.AF_INET), ("fd77:2::2", socket.AF_INET6)):
    socket.socket(f, socket.SOCK_DGRAM).sendto(b"x", (a, 9))
time.sleep(0.3)'
}

# start_capture NS FILE ARGS...: tcpdump writing FILE, returns once it listens.
start_capture() {
  local ns="$1" file="$2"
  shift 2
  ip netns exec "$ns" tcpdump -U -n -w "$file" "$@" 2>"$file.log" &
  PIDS+=($!)
  local i
  for i in $(seq 1 50); do
    grep -q "listening on" "$file.log" 2>/dev/null && return 0
    sleep 0.1
  done
  die "tcpdump did not start: $(cat "$file.log")"
}

start_server() {
  ip netns exec "$S" python3 "$HERE/corpus_server.py" "$@" >"$WORK/server.log" 2>&1 &
  PIDS+=($!)
  local i
  for i in $(seq 1 50); do
    grep -q ready "$WORK/server.log" 2>/dev/null && return 0
    sleep 0.1
  done
  die "listener did not start: $(cat "$WORK/server.log")"
}

# counters NS...: every named nft counter of the namespaces as {"name": {"packets": n, "bytes": n}}.
counters() {
  local ns
  for ns in "$@"; do ip netns exec "$ns" nft -j list counters; done | python3 -c '
import json, sys
out = {}
for line in sys.stdin:
    for o in json.loads(line)["nftables"]:
        if "counter" in o:
            c = o["counter"]
            out[c["name"]] = {"packets": c["packets"], "bytes": c["bytes"]}
print(json.dumps(out, indent=1, sort_keys=True))'
}

# One run of a scenario into directory $1, driven by the variables the scenario function set:
#   MB_NFT SRV_NFT BRIDGE NO_TS TARGET ATTEMPTS TIMEOUT INTERVAL TOS CLIENT_SNAP CLIENT_FILTER
#   SERVER_EVIDENCE (full | q_in | lo | any) USE_CURL EXTRA_FLOWS
run_once() {
  local d="$1"
  mkdir -p "$d"
  lab_up "$BRIDGE"
  [[ -n $MB_NFT ]] && ip netns exec "$M" nft -f - <<<"$MB_NFT"
  [[ -n $SRV_NFT ]] && ip netns exec "$S" nft -f - <<<"$SRV_NFT"
  [[ $NO_TS == 1 ]] && ip netns exec "$C" sysctl -q -w net.ipv4.tcp_timestamps=0
  [[ -n $EXTRA_FLOWS ]] && ip -n "$C" addr add 10.77.1.3/24 dev c0
  local sif=s0 srvaddr=10.77.2.2
  [[ $BRIDGE == bridge ]] && sif=br0
  [[ $TARGET == *:* ]] && srvaddr=fd77:2::2
  start_server "$srvaddr" 21

  start_capture "$C" "$d/client.pcap" -i c0 -s "$CLIENT_SNAP" $CLIENT_FILTER
  start_capture "$M" "$d/mb_in.pcap" -i m0 -s 96 tcp
  start_capture "$M" "$d/mb_out.pcap" -i m1 -s 96 tcp
  start_capture "$S" "$d/server_full.pcap" -i "$sif" -s 200 tcp
  case "$SERVER_EVIDENCE" in
    full) ;;
    q_in) start_capture "$S" "$d/server.pcap" -i "$sif" -Q in -s 200 tcp ;;
    lo) start_capture "$S" "$d/server.pcap" -i lo -s 200 tcp ;;
    any) start_capture "$S" "$d/server.pcap" -i any -s 200 tcp ;;
    *) die "bad SERVER_EVIDENCE $SERVER_EVIDENCE" ;;
  esac

  if [[ -n $EXTRA_FLOWS ]]; then
    # Five connections to a closed port first (the kernel answers RST), then a second client
    # address connecting to port 21 at the same time as the main client.
    ip netns exec "$C" python3 "$HERE/corpus_client.py" --target "$TARGET" --port 22 --attempts 5 \
      --interval 0.2 --timeout 2 --bind 10.77.1.2 --label port22 --out "$d/results_port22.json"
    ip netns exec "$C" python3 "$HERE/corpus_client.py" --target "$TARGET" --port 21 --attempts "$ATTEMPTS" \
      --interval "$INTERVAL" --timeout "$TIMEOUT" --bind 10.77.1.3 --label other --out "$d/results_other.json" &
    local other=$!
  fi
  if [[ $USE_CURL == 1 ]]; then
    local i
    for i in $(seq 1 "$ATTEMPTS"); do
      ip netns exec "$C" curl -s -o /dev/null --connect-timeout "$TIMEOUT" --max-time "$TIMEOUT" \
        -w '%{local_port} %{time_connect} %{exitcode}\n' "ftp://$TARGET:21/" >>"$d/curl.txt" || true
    done
    python3 - "$d/curl.txt" "$d/results_main.json" <<'PY'
import json, sys
att = []
for i, line in enumerate(open(sys.argv[1])):
    port, tconnect, code = line.split()
    # curl's own view: a connect time means the TCP handshake completed (the FTP part then fails,
    # the listener only sends a banner and closes).
    att.append({"attempt": i, "label": "main", "src": "", "sport": int(port),
                "result": "connected" if float(tconnect) > 0 else "timeout", "curl_exit": int(code)})
json.dump({"client": "curl", "attempts": att}, open(sys.argv[2], "w"), indent=1)
PY
  else
    local bind=""
    [[ -n $EXTRA_FLOWS ]] && bind="--bind 10.77.1.2"
    ip netns exec "$C" python3 "$HERE/corpus_client.py" --target "$TARGET" --port 21 --attempts "$ATTEMPTS" \
      --interval "$INTERVAL" --timeout "$TIMEOUT" --tos "$TOS" $bind --out "$d/results_main.json"
  fi
  [[ -n $EXTRA_FLOWS ]] && wait "$other"
  sleep 1  # the last FIN/ACK exchanges and the server's last SYN-ACK retransmissions
  stop_pids
  python3 - "$d"/results_*.json >"$d/client_results.json" <<'PY'
import json, sys
att = []
for f in sys.argv[1:]:
    att += json.load(open(f))["attempts"]
print(json.dumps({"attempts": att}, indent=1))
PY
  counters "$M" "$S" >"$d/nft_counters.json"
  { echo "# middlebox"; ip netns exec "$M" nft list ruleset; echo "# server"; ip netns exec "$S" nft list ruleset; } \
    >"$d/nft_ruleset.txt"
  lab_down
}

# defaults, reset before every scenario
reset_vars() {
  MB_NFT="" SRV_NFT="" BRIDGE="" NO_TS=0 TARGET=10.77.2.2 ATTEMPTS=60 TIMEOUT=8 INTERVAL=0.25 TOS=0
  CLIENT_SNAP=200 CLIENT_FILTER=tcp SERVER_EVIDENCE=full USE_CURL=0 EXTRA_FLOWS=""
  DESC="" EXPECT="" CHECKS="{}" FWD="[]" REV="[]" EVIDENCE=full CLIENT_ADDR=10.77.1.2
}

# nft_table HOOK "COUNTER..." RULE...: table inet corpus with the named counters and one filter
# chain on HOOK (forward: the middlebox; input: the server's host firewall) holding the RULEs.
# Impairments use numgen inc (deterministic), never numgen random.
nft_table() {
  local hook="$1" counters="$2" c r
  shift 2
  echo "table inet corpus {"
  for c in $counters; do echo "  counter $c {}"; done
  echo "  chain impair {"
  echo "    type filter hook $hook priority 0; policy accept;"
  for r in "$@"; do echo "    $r"; done
  echo "  }"
  echo "}"
}
SYN='tcp flags & (syn | ack) == syn'
SYNACK='tcp flags & (syn | ack) == syn | ack'

# A middlebox dropping SYNs to port 21: drop_nft MATCH LIMIT, e.g. drop_nft "ip saddr 10.77.1.2" 3
# drops 3 of every 10 (30 %).
drop_nft() {
  nft_table forward "syn_seen syn_drop" "$1 tcp dport 21 $SYN counter name syn_seen" \
    "$1 tcp dport 21 $SYN numgen inc mod 10 < $2 counter name syn_drop drop"
}
DROP_CHECKS='{"syn_seen": "syn_copies", "syn_drop": "lost_forward"}'
LOSS_EXPECT='{"verdict_code_in": ["lost_forward"], "verdict_code_not_in": ["injected", "corrupted", "clean", "capture_incomplete"]}'
GONE_EXPECT='{"verdict_code_in": ["capture_incomplete"], "verdict_code_not_in": ["injected", "corrupted", "clean", "lost_forward", "reply_lost", "unanswered"]}'

sc_clean() {
  DESC="No impairment: every SYN answered at the first copy (the baseline: 'clean' must stay reachable on real captures)."
  MB_NFT="$(nft_table forward syn_seen "ip saddr 10.77.1.2 tcp dport 21 $SYN counter name syn_seen")"
  ATTEMPTS=40 CHECKS='{"syn_seen": "answered"}'
  EXPECT='{"verdict_code_in": ["clean"], "verdict_code_not_in": ["injected", "corrupted", "capture_incomplete", "lost_forward"]}'
}

# The base of most scenarios: 30 % of the client's SYNs dropped in the middlebox.
drop_30() { MB_NFT="$(drop_nft "ip saddr 10.77.1.2" 3)" CHECKS="$DROP_CHECKS" EXPECT="$LOSS_EXPECT"; }

sc_syn_drop_30() {
  DESC="Middlebox drops 30 % of SYNs (numgen inc mod 10 < 3); the kernel client retransmits (1 s, 3 s, 7 s)."
  drop_30
}
sc_syn_drop_60() {
  DESC="Middlebox drops 60 % of SYNs (numgen inc mod 10 < 6): 2-3 copies of one SYN are lost before one gets through."
  MB_NFT="$(drop_nft "ip saddr 10.77.1.2" 6)" CHECKS="$DROP_CHECKS" EXPECT="$LOSS_EXPECT"
}
sc_synack_drop_30() {
  DESC="Middlebox drops 30 % of the server's SYN-ACKs; the server retransmits them and answers the client's retransmitted SYNs."
  MB_NFT="$(nft_table forward "synack_seen synack_drop" \
    "ip saddr 10.77.2.2 tcp sport 21 $SYNACK counter name synack_seen" \
    "ip saddr 10.77.2.2 tcp sport 21 $SYNACK numgen inc mod 10 < 3 counter name synack_drop drop")"
  CHECKS='{"synack_seen": "replies_sent", "synack_drop": "replies_lost"}'
  EXPECT='{"verdict_code_in": ["reply_lost"], "verdict_code_not_in": ["injected", "corrupted", "clean", "capture_incomplete", "lost_forward"]}'
}
sc_host_firewall_30() {
  DESC="The server's own nftables (input hook) drops 30 % of SYNs to port 21: tcpdump on the server sees them, the kernel never answers."
  SRV_NFT="$(nft_table input fw_drop "tcp dport 21 $SYN numgen inc mod 10 < 3 counter name fw_drop drop")"
  CHECKS='{"fw_drop": "unanswered"}'
  EXPECT='{"verdict_code_in": ["unanswered"], "verdict_code_not_in": ["injected", "corrupted", "clean", "capture_incomplete", "lost_forward"]}'
}
sc_injected_rst() {
  DESC="Middlebox answers 30 % of SYNs with 'reject with tcp reset' in the server's name; the server never sees those."
  MB_NFT="$(nft_table forward syn_reject \
    "ip saddr 10.77.1.2 tcp dport 21 $SYN numgen inc mod 10 < 3 counter name syn_reject reject with tcp reset")"
  CHECKS='{"syn_reject": "injected"}'
  EXPECT='{"verdict_code_in": ["injected"], "verdict_code_not_in": ["corrupted", "clean", "capture_incomplete"]}'
}
sc_mss_clamp_curl() {
  DESC="Middlebox clamps the SYNs' MSS to 1200 (tcp option maxseg size set 1200); the client is curl (ftp://), one connection at a time."
  MB_NFT="$(nft_table forward mss_set \
    "ip daddr 10.77.2.2 tcp dport 21 $SYN counter name mss_set tcp option maxseg size set 1200")"
  USE_CURL=1 ATTEMPTS=30 TIMEOUT=5
  CHECKS='{"mss_set": "syn_copies"}' FWD='["tcp.option.mss"]'
  EXPECT='{"verdict_code_in": ["path_modifies"], "verdict_code_not_in": ["injected", "corrupted", "clean", "capture_incomplete", "lost_forward"]}'
}
sc_dscp_rewrite() {
  DESC="The client sends with DSCP EF (IP_TOS 0xb8); the middlebox rewrites it to CS0 (ip dscp set cs0)."
  MB_NFT="$(nft_table forward dscp_syn "ip daddr 10.77.2.2 tcp dport 21 $SYN counter name dscp_syn" \
    "ip daddr 10.77.2.2 tcp dport 21 ip dscp set cs0")"
  TOS=184 CHECKS='{"dscp_syn": "syn_copies"}' FWD='["ip.dscp"]'
  EXPECT='{"verdict_code_in": ["path_modifies"], "verdict_code_not_in": ["injected", "corrupted", "clean", "capture_incomplete", "lost_forward"]}'
}
sc_nat_port_rewrite() {
  DESC="Middlebox source NAT to 10.77.2.1:40000-40100 (address and source port change) and 30 % SYN drop before it."
  MB_NFT="$(drop_nft "ip saddr 10.77.1.2" 3)
table ip corpusnat {
  chain post {
    type nat hook postrouting priority 100; policy accept;
    ip saddr 10.77.1.2 oifname \"m1\" meta l4proto tcp snat to 10.77.2.1:40000-40100 random
  }
}"
  CHECKS="$DROP_CHECKS" FWD='["ip.src", "tcp.sport"]' REV='["ip.dst", "tcp.dport"]' EXPECT="$LOSS_EXPECT"
}
sc_ipv6_syn_drop_30() {
  DESC="IPv6 (fd77:1::2 -> [fd77:2::2]:21), middlebox drops 30 % of SYNs."
  MB_NFT="$(drop_nft "ip6 saddr fd77:1::2" 3)" TARGET=fd77:2::2 CLIENT_ADDR=fd77:1::2
  CHECKS="$DROP_CHECKS" EXPECT="$LOSS_EXPECT"
}
sc_no_timestamps_syn_drop_30() {
  DESC="Client without TCP timestamps (net.ipv4.tcp_timestamps=0): the copies of a SYN differ only in IP ID and time; middlebox drops 30 %."
  drop_30
  NO_TS=1
}
sc_server_any_bridge() {
  DESC="Server behind a bridge (br0 with the veth as port) captured with tcpdump -i any: every server-side packet twice; middlebox drops 30 % of SYNs."
  drop_30
  BRIDGE=bridge SERVER_EVIDENCE=any
}
sc_server_q_in() {
  DESC="Server capture taken with tcpdump -Q in (no packet the server sent); middlebox drops 30 % of SYNs. Only 'never reached the server' is provable."
  drop_30
  SERVER_EVIDENCE=q_in EVIDENCE=inbound_only EXPECT="$GONE_EXPECT"
}
sc_server_empty() {
  DESC="Server capture taken on the wrong interface (lo): an empty file; middlebox drops 30 % of SYNs. Nothing about the server is provable."
  drop_30
  SERVER_EVIDENCE=lo EVIDENCE=none EXPECT="$GONE_EXPECT"
}
sc_client_snaplen_64() {
  DESC="Client capture with tcpdump -s 64 (TCP options cut off); middlebox drops 30 % of SYNs. Nothing is added or removed by the path."
  drop_30
  CLIENT_SNAP=64
}
sc_other_flows_and_clients() {
  DESC="Five connections to a closed port 22 first (RST from the server's kernel), then 10.77.1.2 -> :21 while a second client 10.77.1.3 connects to :21 too; the client capture is 'host 10.77.1.2'; middlebox drops 30 % of both clients' SYNs to 21."
  # Each client its own drop rule (and numgen counter), so the main client's counters check its truth.
  drop_30
  MB_NFT="$MB_NFT
$(nft_table forward "other_seen other_drop" "ip saddr 10.77.1.3 tcp dport 21 $SYN counter name other_seen" \
    "ip saddr 10.77.1.3 tcp dport 21 $SYN numgen inc mod 10 < 3 counter name other_drop drop" | sed 's/corpus/corpus_other/')"
  EXTRA_FLOWS=1 CLIENT_FILTER="tcp and host 10.77.1.2"
}

# Writes the oracle config for scenario dir $1 (name $2, evidence server capture = $3 relative to it).
write_config() {
  local d="$1" name="$2" oracle_server="$3"
  python3 - "$d/oracle/config.json" <<PY
import json, sys
cfg = {
  "scenario": "$name",
  "description": """$DESC""",
  "client_pcap": "../client.pcap",
  "oracle_server_pcap": "$oracle_server",
  "mb_in_pcap": "mb_in.pcap",
  "mb_out_pcap": "mb_out.pcap",
  "client_results": "../client_results.json",
  "nft_counters": "nft_counters.json",
  "client_addr": "$CLIENT_ADDR",
  "target": "$TARGET",
  "port": 21,
  "evidence": "$EVIDENCE",
  "counter_checks": json.loads('''$CHECKS'''),
  "expected_forward": json.loads('''$FWD'''),
  "expected_reverse": json.loads('''$REV'''),
  "expect": json.loads('''$EXPECT'''),
  "truth_out": "../truth.json",
}
json.dump(cfg, open(sys.argv[1], "w"), indent=1)
PY
}

# Moves run directory $1 into the scenario folder $2 (evidence = client.pcap + server.pcap there,
# oracle material in oracle/), then runs the oracle.
install_scenario() {
  local run="$1" name="$2" server_src="$3"
  local d="$HERE/$name"
  rm -rf "$d"
  mkdir -p "$d/oracle"
  cp "$run/client.pcap" "$d/client.pcap"
  cp "$server_src" "$d/server.pcap"
  cp "$run/client_results.json" "$d/client_results.json"
  cp "$run/mb_in.pcap" "$run/mb_out.pcap" "$run/nft_counters.json" "$run/nft_ruleset.txt" "$d/oracle/"
  local oracle_server="../server.pcap"
  if [[ $SERVER_EVIDENCE != full || $server_src != "$run/server.pcap" ]]; then
    cp "$run/server_full.pcap" "$d/oracle/server_full.pcap"
    oracle_server="server_full.pcap"
  fi
  write_config "$d" "$name" "$oracle_server"
  python3 "$HERE/oracle.py" "$d/oracle/config.json" || die "$name: the oracle's cross-checks failed"
}

make_scenario() {
  local name="$1"
  reset_vars
  "sc_$name"
  local run="$WORK/$name"
  run_once "$run"
  [[ $SERVER_EVIDENCE == full ]] && cp "$run/server_full.pcap" "$run/server.pcap"
  install_scenario "$run" "$name" "$run/server.pcap"
}

# The server capture of another run of the same scenario (taken earlier): once as it is, once
# shifted by +3600 s (editcap -t), as if the server's clock were an hour off as well.
make_other_run() {
  reset_vars
  sc_syn_drop_30
  run_once "$WORK/other_a"
  sleep 20
  run_once "$WORK/other_b"
  SERVER_EVIDENCE=full EVIDENCE=none EXPECT="$GONE_EXPECT"
  DESC="Server capture from another run of the same scenario (syn_drop_30) taken about a minute earlier: no probe of the client capture is in it."
  install_scenario "$WORK/other_b" server_other_run "$WORK/other_a/server_full.pcap"
  editcap -t 3600 "$WORK/other_a/server_full.pcap" "$WORK/other_a/shifted.pcap"
  DESC="Server capture from another run of the same scenario taken earlier AND shifted by +3600 s (editcap -t 3600): no probe of the client capture is in it."
  install_scenario "$WORK/other_b" server_other_run_shifted "$WORK/other_a/shifted.pcap"
}

ALL=(clean syn_drop_30 syn_drop_60 synack_drop_30 host_firewall_30 injected_rst mss_clamp_curl dscp_rewrite
  nat_port_rewrite ipv6_syn_drop_30 no_timestamps_syn_drop_30 server_any_bridge server_q_in server_empty
  client_snaplen_64 other_flows_and_clients other_run)
todo=("$@")
[[ ${#todo[@]} -eq 0 ]] && todo=("${ALL[@]}")
for name in "${todo[@]}"; do
  if [[ $name == other_run ]]; then
    make_other_run
  else
    declare -F "sc_$name" >/dev/null || die "unknown scenario $name (known: ${ALL[*]})"
    make_scenario "$name"
  fi
done
