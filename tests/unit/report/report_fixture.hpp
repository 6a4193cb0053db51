// Hand-made inputs for the renderer tests: one probe of every fate, real packets for the captures.
#pragma once

#include <vector>

#include "common/packet/build.hpp"
#include "controller/report/report.hpp"

namespace tandem::report::test {

inline packet::IpAddr ip(const char* s) { return *packet::IpAddr::parse(s); }

inline std::vector<std::uint8_t> syn(const char* src, const char* dst, std::uint16_t sport, std::uint32_t seq,
                                     std::uint8_t flags = packet::kTcpSyn) {
  packet::IpSpec i{ip(src), ip(dst), 0, 64, 1, true, 0};
  packet::TcpSpec t;
  t.sport = sport;
  t.dport = 21;
  t.seq = seq;
  t.flags = flags;
  if (flags & packet::kTcpAck) {
    t.dport = sport;
    t.sport = 21;
  }
  return packet::build_tcp(i, t).value();
}

inline void add(correlate::CaptureSide& side, Nanos ts, const std::vector<std::uint8_t>& bytes) {
  side.packets.append({ts, static_cast<std::uint32_t>(bytes.size()), bytes});
}

constexpr Nanos kT0 = 1'700'000'000'000'000'000;

// Probe i has fate i (kFateCount probes); probe 0 answered with a full round trip in both captures.
struct Fixture {
  correlate::Correlation c;
  correlate::CaptureSide client, server;
  ReportContext ctx;
  Verdict verdict;

  Fixture() {
    client.present = server.present = true;
    client.linktype = server.linktype = 101;  // LINKTYPE_RAW
    c.client_present = c.server_present = true;
    c.clock = {2'000'000, 100'000, "probes"};
    c.client_stats.available = true;
    c.client_stats.received = 10;
    c.client_stats.dropped = 0;
    c.server_stats.available = false;
    c.server_stats.unavailable_reason = "offline file: drops unknown";
    for (std::uint32_t i = 0; i < correlate::kFateCount; ++i) {
      correlate::ProbeRecord p;
      p.id = i;
      p.sport = static_cast<std::uint16_t>(40000 + i);
      p.fate = static_cast<correlate::Fate>(i);
      p.client_tx_ns = kT0 + i * 10'000'000LL;
      c.probes.push_back(p);
    }
    // Probe 0: answered, seen everywhere.
    auto& a = c.probes[0];
    add(client, a.client_tx_ns, syn("10.77.1.2", "10.77.2.2", 40000, 1000));
    a.client_probe = 0;
    add(server, a.client_tx_ns + 3'000'000, syn("10.77.1.2", "10.77.2.2", 40000, 1000));
    a.server_probe = 0;
    a.server_rx_ns = a.client_tx_ns + 3'000'000;
    add(server, a.client_tx_ns + 3'050'000, syn("10.77.2.2", "10.77.1.2", 40000, 555, packet::kTcpSyn | packet::kTcpAck));
    a.server_reply = 1;
    add(client, a.client_tx_ns + 2'100'000, syn("10.77.2.2", "10.77.1.2", 40000, 555, packet::kTcpSyn | packet::kTcpAck));
    a.client_reply = 1;
    a.reply = "syn_ack";
    a.rtt_us = 2100;
    a.forward_hops = 1;
    a.reverse_hops = 1;
    // Probe 1: lost_forward, only in the client capture.
    add(client, c.probes[1].client_tx_ns, syn("10.77.1.2", "10.77.2.2", 40001, 2000));
    c.probes[1].client_probe = 2;
    c.probes[4].hop = ip("10.77.1.1");
    c.probes[4].reply = "rst";
    c.probes[5].hop = ip("10.77.1.1");
    c.probes[5].reply = "icmp:3/13";
    c.probes[7].note = "server capture dropped packets";
    c.client_packet_probe = {0, 0, 1};
    c.server_packet_probe = {0, 0};
    add(client, kT0 + 500'000'000, syn("10.0.0.9", "10.0.0.8", 1234, 1));  // unrelated
    c.client_packet_probe.push_back(-1);
    c.client_packets = client.packets.size();
    c.server_packets = server.packets.size();
    c.unmatched_client = 1;
    correlate::Finding f;
    f.direction = correlate::Direction::forward;
    f.field = "tcp.option.mss";
    f.sent = 1460;
    f.received = 1200;
    f.probes = 3;
    c.findings.push_back(f);
    correlate::Finding g;
    g.direction = correlate::Direction::forward;
    g.field = "tcp.option.sack_perm";
    g.sent = true;
    g.received = nullptr;
    g.probes = correlate::kFateCount;
    c.findings.push_back(g);
    ctx.mode = "analyze";
    ctx.target = ip("10.77.2.2");
    ctx.dport = 21;
    ctx.client = ip("10.77.1.2");
    ctx.server = ip("10.77.2.2");
    ctx.count = 8;
    ctx.rate_pps = 100;
    verdict.code = "lost_forward";
    verdict.text = "Some probes were lost before the server.";
    verdict.problem = true;
    verdict.severity = diagnose::Severity::problem;
    verdict.secondary.push_back({"modified", "MSS rewritten.", diagnose::Severity::warning});
  }
};

}  // namespace tandem::report::test
