#!/usr/bin/env python3
"""Ground truth for one corpus scenario, computed without tandem.

All namespaces of the corpus lab share one kernel clock, so a packet's timestamps in the client,
middlebox and server captures are directly comparable: a SYN copy is "seen at the server" when the
server's full capture holds a SYN with the same sequence number and destination port within
WINDOW seconds after the client sent it (the ISN is random per connection and the copies of one
connection are >= 1 s apart, so seq + time identify a copy across NAT). The server's replies are
its SYN-ACK/RST packets acknowledging seq+1; each belongs to the latest copy the server received
before it, and its "direct" reply is the one sent within WINDOW of that copy (later ones are the
server's retransmissions). A reply reached the client when the client capture holds the same
packet (seq, ack, flags) within WINDOW after the server sent it; a reply at the client that the
server never sent is injected.

Fates (DESIGN.md section 5): answered (the copy's first reply reached the client), reply_lost
(it did not; replies.received counts later copies that did), unanswered, lost_forward, injected.
The fate tandem is expected to give can be weaker than the true fate when the evidence capture
cannot prove it (config "evidence"): "inbound_only" (tcpdump -Q in) keeps only fates the inbound
packets prove, "none" (empty, wrong or other-window server capture) makes every fate unknown.

Cross-checks (the script exits 1 when one fails): every client attempt's result
(client_results.json) agrees with the replies the client capture holds; every nft counter named in
the config equals the quantity computed from the captures; every lost copy entered the middlebox
and never left it (when middlebox captures are given).

Usage: oracle.py CONFIG.json   (paths inside CONFIG are relative to its directory)
"""
import json
import os
import subprocess
import sys

WINDOW = 0.05

FIELDS = ["frame.number", "frame.time_epoch", "ip.src", "ip.dst", "ipv6.src", "ipv6.dst",
          "tcp.srcport", "tcp.dstport", "tcp.seq_raw", "tcp.ack_raw", "tcp.flags",
          "ip.dsfield.dscp", "ipv6.tclass.dscp", "ip.id", "tcp.window_size_value",
          "tcp.options.mss_val", "tcp.options.wscale.shift", "tcp.options.sack_perm",
          "tcp.options.timestamp.tsval", "frame.cap_len", "frame.len"]


class OracleError(Exception):
    pass


def read_pcap(path):
    """Every TCP packet of a capture as a dict (tshark fields, first occurrence)."""
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        return []
    cmd = ["tshark", "-r", path, "-Y", "tcp and not icmp and not icmpv6", "-T", "fields",
           "-E", "separator=\t", "-E", "occurrence=f"]
    for f in FIELDS:
        cmd += ["-e", f]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    pkts = []
    for line in out.splitlines():
        v = dict(zip(FIELDS, line.split("\t")))
        flags = int(v["tcp.flags"], 16)
        pkts.append({
            "frame": int(v["frame.number"]),
            "t": float(v["frame.time_epoch"]),
            "src": v["ip.src"] or v["ipv6.src"],
            "dst": v["ip.dst"] or v["ipv6.dst"],
            "sport": int(v["tcp.srcport"]),
            "dport": int(v["tcp.dstport"]),
            "seq": int(v["tcp.seq_raw"]),
            "ack": int(v["tcp.ack_raw"]) if v["tcp.ack_raw"] else 0,
            "syn": bool(flags & 0x02), "rst": bool(flags & 0x04), "ackf": bool(flags & 0x10),
            "flags": flags,
            "dscp": v["ip.dsfield.dscp"] or v["ipv6.tclass.dscp"],
            "ipid": v["ip.id"],
            "window": v["tcp.window_size_value"],
            "mss": v["tcp.options.mss_val"],
            "wscale": v["tcp.options.wscale.shift"],
            "sack_perm": v["tcp.options.sack_perm"] != "",
            "tsval": v["tcp.options.timestamp.tsval"],
            "truncated": int(v["frame.cap_len"]) < int(v["frame.len"]),
        })
    return pkts


def is_syn(p):
    return p["syn"] and not p["ackf"] and not p["rst"]


def is_reply(p):
    # A SYN-ACK, or an RST (with ACK) answering a SYN.
    return (p["syn"] and p["ackf"]) or p["rst"]


def same_packet(a, b):
    return a["seq"] == b["seq"] and a["ack"] == b["ack"] and a["flags"] == b["flags"]


def diff_fields(a, b, direction):
    """Fields that changed between a (as sent) and b (as received), as tandem names them."""
    out = set()
    addr = "ip.src" if direction == "forward" else "ip.dst"
    port = "tcp.sport" if direction == "forward" else "tcp.dport"
    sent_addr = a["src"] if direction == "forward" else a["dst"]
    recv_addr = b["src"] if direction == "forward" else b["dst"]
    if sent_addr != recv_addr:
        out.add(addr)
    if (a["sport"], a["dport"]) != (b["sport"], b["dport"]):
        out.add(port)
    if a["dscp"] != b["dscp"]:
        out.add("ip.dscp")
    if a["ipid"] != b["ipid"]:
        out.add("ip.id")
    if a["window"] != b["window"]:
        out.add("tcp.window")
    if not a["truncated"] and not b["truncated"]:
        for k, name in (("mss", "tcp.option.mss"), ("wscale", "tcp.option.wscale"),
                        ("sack_perm", "tcp.option.sack_perm")):
            if a[k] != b[k]:
                out.add(name)
        if (a["tsval"] == "") != (b["tsval"] == ""):
            out.add("tcp.option.timestamp")
    return out


def compute(cfg, base):
    client = read_pcap(os.path.join(base, cfg["client_pcap"]))
    server = read_pcap(os.path.join(base, cfg["oracle_server_pcap"]))
    caddr, port = cfg["client_addr"], cfg["port"]
    saddr = cfg.get("server_addr", cfg["target"])

    syns = [p for p in client if is_syn(p) and p["src"] == caddr and p["dport"] == port]
    if not syns:
        raise OracleError("no client SYN from %s to port %d in %s" % (caddr, port, cfg["client_pcap"]))
    by_seq = {}
    for s in server:
        if is_syn(s) and s["dst"] == saddr and s["dport"] == port:
            by_seq.setdefault(s["seq"], []).append(s)
    used = set()
    seen = {}
    for c in syns:
        for s in by_seq.get(c["seq"], []):
            if id(s) not in used and c["t"] - 0.001 <= s["t"] <= c["t"] + WINDOW:
                used.add(id(s))
                seen[c["frame"]] = s
                break

    # Server replies, each to the latest server copy of its connection sent before it.
    server_copies = sorted(seen.values(), key=lambda s: s["t"])
    replies = {id(s): [] for s in server_copies}
    for r in server:
        if not (is_reply(r) and r["src"] == saddr and r["sport"] == port):
            continue
        owner = None
        for s in server_copies:
            # Strictly before: one clock, and a timer retransmission can leave the server
            # microseconds before the client's next copy arrives (then it is the earlier copy's).
            if s["t"] <= r["t"] and s["src"] == r["dst"] and s["sport"] == r["dport"] \
                    and (r["ack"] - s["seq"]) % 2**32 == 1:
                owner = s
        if owner is not None:
            replies[id(owner)].append(r)

    # Which server replies reached the client.
    client_replies = [p for p in client if is_reply(p) and p["dst"] == caddr and p["sport"] == port]
    taken = set()
    arrived = {}
    for rs in replies.values():
        for r in rs:
            for p in client_replies:
                if id(p) not in taken and same_packet(r, p) and r["t"] - 0.001 <= p["t"] <= r["t"] + WINDOW:
                    taken.add(id(p))
                    arrived[id(r)] = p
                    break
    # Identical replies (a timer retransmission and the answer to the client's next copy) that
    # left the server less than 1 ms apart: which one reached the client is decided by the shared
    # clock alone, so tandem needs its offset estimate that precise. Noted per copy in truth.json.
    tight = {}
    all_replies = [(r, owner_id) for owner_id, rs in replies.items() for r in rs]
    for r, oid in all_replies:
        for r2, oid2 in all_replies:
            if oid2 != oid and same_packet(r, r2) and abs(r2["t"] - r["t"]) < 0.001:
                us = int(abs(r2["t"] - r["t"]) * 1e6)
                tight[oid] = min(tight.get(oid, us), us)
    injected = {}
    for p in client_replies:
        if id(p) in taken:
            continue
        owner = None
        for c in syns:
            if c["t"] <= p["t"] and c["sport"] == p["dport"] and (p["ack"] - c["seq"]) % 2**32 == 1:
                owner = c
        if owner is not None:
            injected.setdefault(owner["frame"], []).append(p)

    out = []
    forward, reverse = set(), set()
    for c in syns:
        e = {"frame": c["frame"], "sport": c["sport"], "seq": c["seq"]}
        s = seen.get(c["frame"])
        if s is None:
            e["fate"] = "injected" if c["frame"] in injected else "lost_forward"
        else:
            forward |= diff_fields(c, s, "forward")
            rs = replies[id(s)]
            direct = [r for r in rs if r["t"] <= s["t"] + WINDOW]
            received = sum(1 for r in rs if id(r) in arrived)
            if not rs:
                e["fate"] = "unanswered"
            elif not direct:
                raise OracleError("frame %d: the server's first reply came %.3f s after the SYN (no direct reply)"
                                  % (c["frame"], rs[0]["t"] - s["t"]))
            else:
                e["fate"] = "answered" if id(direct[0]) in arrived else "reply_lost"
                e["replies"] = {"sent": len(rs), "received": received}
                e["replies_received"] = received
                if e["fate"] == "answered":
                    reverse |= diff_fields(direct[0], arrived[id(direct[0])], "reverse")
            if id(s) in tight:
                e["tight_reply_timing_us"] = tight[id(s)]
        out.append(e)
    return client, server, syns, out, forward, reverse, replies, arrived


def evidence_fate(true_fate, evidence):
    if evidence == "full":
        return true_fate
    if evidence == "inbound_only":
        # Without the server's outbound packets only "the server never saw it" is provable.
        return true_fate if true_fate in ("lost_forward", "injected") else "unknown"
    if evidence == "none":
        return "unknown"
    raise OracleError("unknown evidence mode " + evidence)


def check_client_results(cfg, base, client, truth):
    """Every attempt of the client (by its port and start time: the kernel may reuse a port for a
    later attempt) agrees with what the client capture holds for its connection (port + ISN)."""
    results = json.load(open(os.path.join(base, cfg["client_results"])))
    mine = [a for a in results["attempts"] if a["label"] == cfg.get("client_label", "main")]
    conns = {}
    for e in truth:
        conns.setdefault((e["sport"], e["seq"]), e)
    first_t = {}
    for p in client:
        if is_syn(p) and (p["sport"], p["seq"]) in conns:
            first_t.setdefault((p["sport"], p["seq"]), p["t"])
    if len(mine) != len(conns):
        raise OracleError("client_results has %d attempts, the client capture %d connections" % (len(mine), len(conns)))
    counts = {}
    claimed = set()
    for a in mine:
        counts[a["result"]] = counts.get(a["result"], 0) + 1
        cand = [k for k in conns if k[0] == a["sport"] and k not in claimed
                and abs(first_t[k] - a.get("t_start", first_t[k])) < 0.5]
        if len(cand) != 1:
            raise OracleError("attempt sport %d: %d connections in the client capture" % (a["sport"], len(cand)))
        claimed.add(cand[0])
        sport, seq = cand[0]
        got = [p for p in client if is_reply(p) and p["dst"] == cfg["client_addr"] and p["dport"] == sport
               and p["sport"] == cfg["port"] and (p["ack"] - seq) % 2**32 == 1]
        synack = any(p["syn"] for p in got)
        rst = any(p["rst"] and not p["syn"] for p in got)
        want = "connected" if synack else "refused" if rst else "timeout"
        if a["result"] != want:
            raise OracleError("attempt sport %d: client says %s, its capture says %s" % (sport, a["result"], want))
    return counts


def main():
    cfg_path = sys.argv[1]
    base = os.path.dirname(os.path.abspath(cfg_path))
    cfg = json.load(open(cfg_path))
    client, server, syns, truth, forward, reverse, replies, arrived = compute(cfg, base)

    fates = {}
    for e in truth:
        fates[e["fate"]] = fates.get(e["fate"], 0) + 1
    sent_replies = sum(len(rs) for rs in replies.values())
    quantities = dict(fates)
    quantities["syn_copies"] = len(truth)
    quantities["replies_lost"] = sent_replies - len(arrived)
    quantities["replies_sent"] = sent_replies
    for k in ("answered", "lost_forward", "unanswered", "reply_lost", "injected"):
        quantities.setdefault(k, 0)

    # nft counters: each named counter must equal the quantity the config names for it.
    counters = json.load(open(os.path.join(base, cfg["nft_counters"])))
    for name, expr in cfg.get("counter_checks", {}).items():
        want = sum(quantities[t] for t in expr.split("+"))
        got = counters[name]["packets"]
        if got != want:
            raise OracleError("nft counter %s = %d but the captures give %s = %d" % (name, got, expr, want))

    # Middlebox captures: a lost copy entered the middlebox and never left it towards the server.
    if cfg.get("mb_in_pcap"):
        mb_in = read_pcap(os.path.join(base, cfg["mb_in_pcap"]))
        mb_out = read_pcap(os.path.join(base, cfg["mb_out_pcap"]))
        for e, c in zip(truth, syns):
            if e["fate"] not in ("lost_forward", "injected"):
                continue
            def near(pkts):
                return any(is_syn(p) and p["seq"] == c["seq"] and c["t"] - 0.001 <= p["t"] <= c["t"] + WINDOW
                           for p in pkts)
            if not near(mb_in) or near(mb_out):
                raise OracleError("frame %d: lost copy not seen entering the middlebox, or seen leaving it" % c["frame"])

    counts = check_client_results(cfg, base, client, truth)

    want_fw = set(cfg.get("expected_forward", []))
    want_rev = set(cfg.get("expected_reverse", []))
    if forward != want_fw or reverse != want_rev:
        raise OracleError("field changes: forward %s reverse %s, scenario expects forward %s reverse %s"
                          % (sorted(forward), sorted(reverse), sorted(want_fw), sorted(want_rev)))

    for e in truth:
        ef = evidence_fate(e["fate"], cfg.get("evidence", "full"))
        if ef != e["fate"]:
            e["true_fate"] = e["fate"]
            e["fate"] = ef
            e.pop("replies", None)
            e.pop("replies_received", None)

    fates = {}
    for e in truth:
        fates[e["fate"]] = fates.get(e["fate"], 0) + 1
    findings = [{"direction": "forward", "field": f} for f in sorted(forward)] + \
               [{"direction": "reverse", "field": f} for f in sorted(reverse)]
    if cfg.get("evidence", "full") != "full":
        findings = []
    expect = dict(cfg["expect"])
    expect["findings"] = findings
    doc = {
        "scenario": cfg["scenario"],
        "description": cfg["description"],
        "expect": expect,
        "summary": {"syn_copies": len(truth), "fates": fates,
                    "true_fates": {k: quantities[k] for k in ("answered", "lost_forward", "unanswered",
                                                               "reply_lost", "injected")},
                    "server_replies_sent": sent_replies, "server_replies_received": len(arrived)},
        "syns": truth,
        "nft_counters": {k: v["packets"] for k, v in counters.items()},
        "client_results": counts,
    }
    # One SYN copy per line, so a re-made truth.json diffs readably.
    text = json.dumps(dict(doc, syns="@SYNS@"), indent=1)
    rows = ",\n".join("  " + json.dumps(e) for e in truth)
    text = text.replace('"@SYNS@"', "[\n" + rows + "\n ]")
    with open(os.path.join(base, cfg.get("truth_out", "truth.json")), "w") as f:
        f.write(text + "\n")
    print("%s: %d SYN copies, %s" % (cfg["scenario"], len(truth),
                                     ", ".join("%s %d" % kv for kv in sorted(fates.items()))))


if __name__ == "__main__":
    try:
        main()
    except OracleError as e:
        print("oracle: " + str(e), file=sys.stderr)
        sys.exit(1)
