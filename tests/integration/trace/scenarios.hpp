// The trace lab's scenarios: one middlebox (or server firewall) per fate and per finding of DESIGN.md
// §5. Rules match both families unless the family is part of the expression (ip/ip6 dscp).
#pragma once

namespace tandem::testing {

constexpr char kClean[] = R"(name = "trace-clean"
[server]
listen = [21]
)";

// Exactly 3 SYNs in every 10 consecutive ones are dropped, whatever the counter's start.
constexpr char kLostForward[] = R"(name = "trace-lost-forward"
[middlebox]
nft = """
table inet imp {
  chain forw {
    type filter hook forward priority 0;
    tcp dport 21 tcp flags syn numgen inc mod 10 < 3 drop
  }
}
"""
[server]
listen = [21]
)";

// The server's own firewall drops the SYNs after its capture point (libpcap sees them first).
constexpr char kUnanswered[] = R"(name = "trace-unanswered"
[server]
listen = [21]
nft = """
table inet fw {
  chain in {
    type filter hook input priority 0;
    tcp dport 21 tcp flags syn drop
  }
}
"""
)";

constexpr char kReplyLost[] = R"(name = "trace-reply-lost"
[middlebox]
nft = """
table inet imp {
  chain forw {
    type filter hook forward priority 0;
    tcp sport 21 tcp flags & (syn | ack) == syn | ack drop
  }
}
"""
[server]
listen = [21]
)";

// 3 in every 10 SYN-ACKs dropped on the way back, the server's retransmissions counted alike: of
// 30 probes' first SYN-ACKs (counter 0..29) 9 are dropped; their 9 retransmissions ~1 s later
// (counter 30..38) lose 3 more, so 6 probes get a retransmitted answer within the run's tail.
constexpr char kReplyLostRetransmitted[] = R"(name = "trace-reply-lost-retransmitted"
[middlebox]
nft = """
table inet imp {
  chain forw {
    type filter hook forward priority 0;
    tcp sport 21 tcp flags & (syn | ack) == syn | ack numgen inc mod 10 < 3 drop
  }
}
"""
[server]
listen = [21]
)";

constexpr char kInjected[] = R"(name = "trace-injected"
[middlebox]
nft = """
table inet imp {
  chain forw {
    type filter hook forward priority 0;
    tcp dport 21 reject with tcp reset
  }
}
"""
[server]
listen = [21]
)";

constexpr char kIcmpError[] = R"(name = "trace-icmp-error"
[middlebox]
nft = """
table inet imp {
  chain forw {
    type filter hook forward priority 0;
    tcp dport 21 reject with icmpx type admin-prohibited
  }
}
"""
[server]
listen = [21]
)";

constexpr char kDscp[] = R"(name = "trace-dscp"
[middlebox]
nft = """
table inet imp {
  chain forw {
    type filter hook forward priority 0;
    tcp dport 21 ip dscp set cs1
    tcp dport 21 ip6 dscp set cs1
  }
}
"""
[server]
listen = [21]
)";

constexpr char kMss[] = R"(name = "trace-mss"
[middlebox]
nft = """
table inet imp {
  chain forw {
    type filter hook forward priority 0;
    tcp dport 21 tcp flags syn tcp option maxseg size set 1200
  }
}
"""
[server]
listen = [21]
)";

constexpr char kSack[] = R"(name = "trace-sack"
[middlebox]
nft = """
table inet imp {
  chain forw {
    type filter hook forward priority 0;
    tcp dport 21 tcp flags syn reset tcp option sack-perm
  }
}
"""
[server]
listen = [21]
)";

// Only the probes are masqueraded: the controller's connection to the server agent (port 7070)
// keeps its source address.
constexpr char kNat[] = R"(name = "trace-nat"
[middlebox]
nft = """
table inet nat {
  chain post {
    type nat hook postrouting priority srcnat;
    oifname "eth-srv" tcp dport 21 masquerade
  }
}
"""
[server]
listen = [21]
)";

// The other findings of DESIGN.md §5, one middlebox rewrite each (SYNs only unless said).
constexpr char kEcn[] = R"(name = "trace-ecn"
[middlebox]
nft = """
table inet imp {
  chain forw {
    type filter hook forward priority 0;
    tcp dport 21 ip ecn set ce
    tcp dport 21 ip6 ecn set ce
  }
}
"""
[server]
listen = [21]
)";

// A TTL normaliser: routers only decrement, so a TTL that arrives higher was rewritten.
constexpr char kTtl[] = R"(name = "trace-ttl"
[middlebox]
nft = """
table inet imp {
  chain forw {
    type filter hook forward priority 0;
    tcp dport 21 ip ttl set 200
    tcp dport 21 ip6 hoplimit set 200
  }
}
"""
[server]
listen = [21]
)";

constexpr char kIpId[] = R"(name = "trace-ipid"
[middlebox]
nft = """
table inet imp {
  chain forw {
    type filter hook forward priority 0;
    tcp dport 21 ip id set 4242
  }
}
"""
[server]
listen = [21]
)";

constexpr char kDf[] = R"(name = "trace-df"
[middlebox]
nft = """
table inet imp {
  chain forw {
    type filter hook forward priority 0;
    tcp dport 21 ip frag-off set 0
  }
}
"""
[server]
listen = [21]
)";

constexpr char kWindow[] = R"(name = "trace-window"
[middlebox]
nft = """
table inet imp {
  chain forw {
    type filter hook forward priority 0;
    tcp dport 21 tcp flags syn tcp window set 1024
  }
}
"""
[server]
listen = [21]
)";

// Raw rewrite of the shift count with the options mss,sack,ts,nop,ws: bytes 38-39 of the TCP header
// (length 3, shift count) 0x0307 -> 0x030e. nftables does not fix the checksum after a raw `@th`
// write (the server's kernel would drop the SYN: `unanswered`), so the same rule adds -7 to the
// urgent pointer (ignored without URG, and not a compared field): the ones'-complement sum, hence
// the checksum, stays valid.
constexpr char kWscale[] = R"(name = "trace-wscale"
[middlebox]
nft = """
table inet imp {
  chain forw {
    type filter hook forward priority 0;
    tcp dport 21 tcp flags syn @th,304,16 set 0x030e @th,144,16 set 0xfff8
  }
}
"""
[server]
listen = [21]
)";

constexpr char kTimestamp[] = R"(name = "trace-timestamp"
[middlebox]
nft = """
table inet imp {
  chain forw {
    type filter hook forward priority 0;
    tcp dport 21 tcp flags syn tcp option timestamp tsval set 7
  }
}
"""
[server]
listen = [21]
)";

constexpr char kUnknownKind[] = R"(name = "trace-unknownkind"
[middlebox]
nft = """
table inet imp {
  chain forw {
    type filter hook forward priority 0;
    tcp dport 21 tcp flags syn tcp option 253 exists reset tcp option 253
  }
}
"""
[server]
listen = [21]
)";

// mss=1460,sack,nop,nop (02 04 05 b4 04 02 01 01) rewritten to sack,nop,nop,mss=1460: the same
// 16-bit words in another order, so the checksum stays valid without nftables fixing it.
constexpr char kOrder[] = R"(name = "trace-order"
[middlebox]
nft = """
table inet imp {
  chain forw {
    type filter hook forward priority 0;
    tcp dport 21 tcp flags syn @th,160,32 set 0x04020101 @th,192,32 set 0x020405b4
  }
}
"""
[server]
listen = [21]
)";

// The same rewrite without the checksum compensation: the server's kernel drops every SYN after
// its capture saw it. tandem must blame the path (`corrupted`), not the server (`unanswered`).
constexpr char kCorrupt[] = R"(name = "trace-corrupt"
[middlebox]
nft = """
table inet imp {
  chain forw {
    type filter hook forward priority 0;
    tcp dport 21 tcp flags syn @th,304,16 set 0x030e
  }
}
"""
[server]
listen = [21]
)";

// A port forward: the client aims at the middlebox's own address, port 21; the middlebox DNATs to the
// server, port 2121. With --server-target the server agent captures the rewritten flow.
constexpr char kDnat[] = R"(name = "trace-dnat"
[middlebox]
nft = """
table inet nat {
  chain pre {
    type nat hook prerouting priority dstnat;
    iifname "eth-cli" ip daddr 10.77.1.1 tcp dport 21 dnat ip to 10.77.2.2:2121
    iifname "eth-cli" ip6 daddr fd77:1::1 tcp dport 21 dnat ip6 to [fd77:2::2]:2121
  }
}
"""
[server]
listen = [2121]
)";

// The way back: the server's SYN-ACK has its MSS clamped.
constexpr char kReplyMss[] = R"(name = "trace-replymss"
[middlebox]
nft = """
table inet imp {
  chain forw {
    type filter hook forward priority 0;
    tcp sport 21 tcp flags & (syn | ack) == syn | ack tcp option maxseg size set 1000
  }
}
"""
[server]
listen = [21]
)";

}  // namespace tandem::testing
