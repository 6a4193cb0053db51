// correlate() on synthetic capture pairs: every fate, every field change the path model can make,
// NAT and sequence rewriting, IPv6, UDP/ICMP, ambiguity, no manifest, absent captures and drops.
#include "controller/correlate/correlate.hpp"

#include <gtest/gtest.h>

#include "common/packet/build.hpp"
#include "common/packet/decode.hpp"
#include "controller/correlate/field_diff.hpp"

#include "tests/unit/correlate/synth_capture.hpp"

namespace tandem::correlate {
namespace {

using synth::Outcome;
using synth::Path;
using synth::Plan;

Correlation run(const synth::Pair& pair) {
  auto r = correlate(pair.client, pair.server, pair.manifest);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().text());
  return r.ok() ? std::move(r).value() : Correlation{};
}

std::vector<Fate> fates(const Correlation& c) {
  std::vector<Fate> f;
  for (const auto& p : c.probes) f.push_back(p.fate);
  return f;
}

const Finding* finding(const Correlation& c, Direction d, std::string_view field) {
  for (const auto& f : c.findings) {
    if (f.direction == d && f.field == field) return &f;
  }
  return nullptr;
}

packet::IpAddr ip(const char* s) { return *packet::IpAddr::parse(s); }

const std::vector<Outcome> kAllTcp = {Outcome::answered,  Outcome::answered_rst, Outcome::lost_forward,
                                      Outcome::unanswered, Outcome::reply_lost, Outcome::injected_rst,
                                      Outcome::icmp_error, Outcome::not_sent,  Outcome::server_icmp};
const std::vector<Fate> kAllTcpFates = {Fate::answered,   Fate::answered,   Fate::lost_forward,
                                        Fate::unanswered, Fate::reply_lost, Fate::injected,
                                        Fate::icmp_error, Fate::not_sent,   Fate::answered};

TEST(Correlate, EveryFateTcpV4WithClockOffset) {
  Path path;
  path.clock_offset_ns = 3'000'000'123;
  path.forward_hops = 2;
  path.reverse_hops = 3;
  auto c = run(synth::synthesize(path, Plan{}, kAllTcp));
  ASSERT_EQ(c.probes.size(), 9u);
  EXPECT_EQ(fates(c), kAllTcpFates);
  const auto& p = c.probes;
  EXPECT_EQ(p[0].reply, "syn_ack");
  EXPECT_EQ(p[0].rtt_us, 830);  // 2 x 400 us one way + 30 us turnaround
  EXPECT_EQ(p[0].forward_hops, 2);
  EXPECT_EQ(p[0].reverse_hops, 3);
  EXPECT_EQ(p[0].sport, 40000);
  EXPECT_EQ(p[0].server_rx_ns - p[0].client_tx_ns, 400'000 + path.clock_offset_ns);
  EXPECT_EQ(p[1].reply, "rst");
  EXPECT_EQ(p[2].reply, "");
  EXPECT_FALSE(p[2].rtt_us);
  EXPECT_EQ(p[3].forward_hops, 2);
  EXPECT_EQ(p[4].reply, "syn_ack");  // what the server sent
  EXPECT_EQ(p[5].reply, "rst");
  EXPECT_EQ(p[5].hop, ip("10.77.2.2"));  // nft's reset carries the target's address
  EXPECT_EQ(p[5].rtt_us, 200);
  EXPECT_EQ(p[6].reply, "icmp:3/13");
  EXPECT_EQ(p[6].hop, ip("10.77.1.1"));
  EXPECT_EQ(p[6].rtt_us, 150);
  EXPECT_EQ(p[7].client_probe, kNoPacket);
  EXPECT_EQ(p[8].reply, "icmp:3/13");
  EXPECT_FALSE(p[8].hop);
  // Clock from the minimum-RTT pair: exact here because the path is symmetric.
  EXPECT_EQ(c.clock.source, "probes");
  EXPECT_EQ(c.clock.offset_ns, path.clock_offset_ns);
  EXPECT_EQ(c.clock.error_ns, 400'000);
  EXPECT_TRUE(c.findings.empty());
  for (const auto& r : c.probes) EXPECT_TRUE(r.changes.empty()) << r.id;
  EXPECT_EQ(c.ambiguous, 0u);
}

TEST(Correlate, PerPacketProbeIds) {
  auto pair = synth::synthesize(Path{}, Plan{}, {Outcome::answered, Outcome::lost_forward, Outcome::answered});
  auto c = run(pair);
  // Client: probe 0, reply 0, probe 1, probe 2, reply 2 (time order).
  EXPECT_EQ(c.client_packet_probe, (std::vector<std::int32_t>{0, 0, 1, 2, 2}));
  EXPECT_EQ(c.server_packet_probe, (std::vector<std::int32_t>{0, 0, 2, 2}));
  EXPECT_EQ(c.unmatched_client, 0u);
  EXPECT_EQ(c.unmatched_server, 0u);
  EXPECT_EQ(c.client_packets, 5u);
  EXPECT_EQ(c.server_packets, 4u);
}

// The client kernel answers each SYN-ACK to a raw-socket probe with a bare RST (seq = probe seq + 1):
// both captures attribute it to its probe. A RST with any other seq, or from elsewhere, stays
// unmatched.
TEST(Correlate, ClientKernelRstBelongsToItsProbe) {
  Plan plan;
  auto pair = synth::synthesize(Path{}, plan, {Outcome::answered, Outcome::answered});
  const Path path;
  auto rst = [&](std::uint32_t i, std::uint32_t seq, const packet::IpAddr& src) {
    packet::IpSpec ip{src, path.server};
    packet::TcpSpec t;
    t.sport = static_cast<std::uint16_t>(40000 + i);
    t.dport = plan.dport;
    t.seq = seq;
    t.flags = packet::kTcpRst;
    t.window = 0;
    return *packet::build_tcp(ip, t);
  };
  const Nanos late = plan.start_ns + 1'000'000'000;
  for (std::uint32_t i = 0; i < 2; ++i) {
    const auto pkt = rst(i, plan.key.tcp_seq(i) + 1, path.client);
    synth::append_ip(pair.client, late + i, pkt, true);
    synth::append_ip(pair.server, late + i + 400'000, pkt, false);
  }
  synth::append_ip(pair.client, late + 5, rst(0, plan.key.tcp_seq(0) + 7, path.client), true);  // wrong seq
  synth::append_ip(pair.server, late + 6, rst(1, plan.key.tcp_seq(1) + 1, path.router), false);  // wrong source
  auto c = run(pair);
  EXPECT_EQ(fates(c), (std::vector<Fate>{Fate::answered, Fate::answered}));
  EXPECT_EQ(c.client_packet_probe, (std::vector<std::int32_t>{0, 0, 1, 1, 0, 1, -1}));
  EXPECT_EQ(c.server_packet_probe, (std::vector<std::int32_t>{0, 0, 1, 1, 0, 1, -1}));
  EXPECT_EQ(c.unmatched_client, 1u);
  EXPECT_EQ(c.unmatched_server, 1u);
}

// The same with NAT and a seq rewrite on the way: the server-side RST is placed by the server's view
// of its probe (no run key shortcut applies there).
TEST(Correlate, ClientKernelRstFollowedThroughNatAndSeqRewrite) {
  Path path;
  path.client_rst = true;
  path.nat_src = *packet::IpAddr::parse("10.77.2.1");
  path.nat_sport_base = 50000;
  path.seq_delta = 0x01000000;
  auto pair = synth::synthesize(path, Plan{}, {Outcome::answered, Outcome::lost_forward, Outcome::answered});
  auto c = run(pair);
  EXPECT_EQ(fates(c), (std::vector<Fate>{Fate::answered, Fate::lost_forward, Fate::answered}));
  EXPECT_EQ(c.unmatched_client, 0u);
  EXPECT_EQ(c.unmatched_server, 0u);
  EXPECT_EQ(c.client_packets, 7u);  // 3 probes, 2 SYN-ACKs, 2 RSTs
  EXPECT_EQ(c.server_packets, 6u);  // 2 probes, 2 SYN-ACKs, 2 RSTs
}

TEST(Correlate, BadChecksumOnArrival) {
  const Path path;
  packet::TcpSpec t;
  t.sport = 40000;
  t.dport = 21;
  t.seq = 7;
  auto v4 = *packet::build_tcp(packet::IpSpec{path.client, path.server}, t);
  EXPECT_EQ(bad_checksum(packet::decode_ip(v4)), std::nullopt);
  auto tcp_bad = v4;
  tcp_bad[20 + 14] ^= 0x01;  // the window: the TCP checksum no longer matches
  EXPECT_EQ(bad_checksum(packet::decode_ip(tcp_bad)), "tcp.checksum");
  auto ip_bad = v4;
  ip_bad[8] ^= 0x01;  // the TTL: the IPv4 header checksum no longer matches
  EXPECT_EQ(bad_checksum(packet::decode_ip(ip_bad)), "ip.checksum");
  auto v6 = *packet::build_tcp(packet::IpSpec{*packet::IpAddr::parse("fd77:1::2"), *packet::IpAddr::parse("fd77:2::2")}, t);
  EXPECT_EQ(bad_checksum(packet::decode_ip(v6)), std::nullopt);
  v6[40 + 14] ^= 0x01;
  EXPECT_EQ(bad_checksum(packet::decode_ip(v6)), "tcp.checksum");
  auto udp = *packet::build_udp(packet::IpSpec{path.client, path.server}, 40000, 53, std::vector<std::uint8_t>{1, 2, 3});
  EXPECT_EQ(bad_checksum(packet::decode_ip(udp)), std::nullopt);
  udp[28] ^= 0x01;
  EXPECT_EQ(bad_checksum(packet::decode_ip(udp)), "udp.checksum");
  // Cut by the snaplen: cannot be summed, so never reported.
  auto cut = packet::decode(101, std::span<const std::uint8_t>(tcp_bad).first(30), tcp_bad.size());
  EXPECT_EQ(bad_checksum(cut), std::nullopt);
}

TEST(Correlate, ManifestClockIsUsedAsGiven) {
  Path path;
  path.clock_offset_ns = -5'000'000'000;
  auto pair = synth::synthesize(path, Plan{}, {Outcome::answered, Outcome::lost_forward});
  pair.manifest.clock = ClockEstimate{-5'000'000'000, 2'000, "clock-probe"};
  auto c = run(pair);
  EXPECT_EQ(c.clock.source, "clock-probe");
  EXPECT_EQ(c.clock.offset_ns, -5'000'000'000);
  EXPECT_EQ(fates(c), (std::vector<Fate>{Fate::answered, Fate::lost_forward}));
}

TEST(Correlate, EveryFateIpv6) {
  Path path;
  path.client = ip("fd77:1::2");
  path.server = ip("fd77:2::2");
  path.router = ip("fd77:1::1");
  auto c = run(synth::synthesize(path, Plan{}, kAllTcp));
  EXPECT_EQ(fates(c), kAllTcpFates);
  EXPECT_EQ(c.probes[6].reply, "icmp:1/1");
  EXPECT_EQ(c.probes[6].hop, ip("fd77:1::1"));
  EXPECT_EQ(c.probes[5].hop, ip("fd77:2::2"));
  EXPECT_EQ(c.probes[8].reply, "icmp:1/1");
  EXPECT_TRUE(c.findings.empty());
}

TEST(Correlate, EthernetClientSll2Server) {
  Path path;
  path.client_linktype = 1;
  path.server_linktype = 276;
  auto c = run(synth::synthesize(path, Plan{}, kAllTcp));
  EXPECT_EQ(fates(c), kAllTcpFates);
}

TEST(Correlate, UdpProbes) {
  Plan plan;
  plan.l4 = Plan::L4::udp;
  plan.dport = 33434;
  auto c = run(synth::synthesize(Path{}, plan,
                                 {Outcome::answered, Outcome::lost_forward, Outcome::unanswered,
                                  Outcome::reply_lost, Outcome::icmp_error, Outcome::server_icmp}));
  EXPECT_EQ(fates(c), (std::vector<Fate>{Fate::answered, Fate::lost_forward, Fate::unanswered,
                                         Fate::reply_lost, Fate::icmp_error, Fate::answered}));
  EXPECT_EQ(c.probes[0].reply, "udp");
  EXPECT_EQ(c.probes[4].hop, ip("10.77.1.1"));
  EXPECT_EQ(c.probes[5].reply, "icmp:3/13");
}

TEST(Correlate, IcmpEchoProbesV4AndV6) {
  for (bool v6 : {false, true}) {
    Path path;
    if (v6) {
      path.client = ip("fd77:1::2");
      path.server = ip("fd77:2::2");
      path.router = ip("fd77:1::1");
    }
    Plan plan;
    plan.l4 = Plan::L4::icmp;
    auto c = run(synth::synthesize(path, plan,
                                   {Outcome::answered, Outcome::lost_forward, Outcome::reply_lost,
                                    Outcome::icmp_error, Outcome::unanswered}));
    EXPECT_EQ(fates(c), (std::vector<Fate>{Fate::answered, Fate::lost_forward, Fate::reply_lost,
                                           Fate::icmp_error, Fate::unanswered}))
        << v6;
    EXPECT_EQ(c.probes[0].reply, v6 ? "icmp:129/0" : "icmp:0/0");
    EXPECT_EQ(c.probes[0].sport, 0);
  }
}

// --- field changes -------------------------------------------------------------------------------

std::vector<Outcome> answered(int n) { return std::vector<Outcome>(static_cast<std::size_t>(n), Outcome::answered); }

TEST(Correlate, DscpRewritten) {
  Path path;
  path.set_dscp = 0;
  Plan plan;
  plan.tos = 46 << 2;
  auto c = run(synth::synthesize(path, plan, answered(5)));
  ASSERT_EQ(c.findings.size(), 1u);
  const auto& f = c.findings[0];
  EXPECT_EQ(f.code, "modified");
  EXPECT_EQ(f.direction, Direction::forward);
  EXPECT_EQ(f.field, "ip.dscp");
  EXPECT_EQ(f.sent, 46);
  EXPECT_EQ(f.received, 0);
  EXPECT_EQ(f.probes, 5u);
  EXPECT_EQ(f.distinct, 1u);
}

TEST(Correlate, MssClampedForwardAndReverse) {
  Path path;
  path.clamp_mss = 1200;
  path.clamp_reply_mss = 1380;
  auto c = run(synth::synthesize(path, Plan{}, answered(4)));
  ASSERT_EQ(c.findings.size(), 2u);
  EXPECT_EQ(c.findings[0].field, "tcp.option.mss");
  EXPECT_EQ(c.findings[0].direction, Direction::forward);
  EXPECT_EQ(c.findings[0].sent, 1460);
  EXPECT_EQ(c.findings[0].received, 1200);
  EXPECT_EQ(c.findings[0].probes, 4u);
  EXPECT_EQ(c.findings[1].direction, Direction::reverse);
  EXPECT_EQ(c.findings[1].received, 1380);
}

TEST(Correlate, SackPermittedStrippedIsRemovedNotReordered) {
  Path path;
  path.strip_sack_perm = true;
  auto c = run(synth::synthesize(path, Plan{}, answered(3)));
  ASSERT_EQ(c.findings.size(), 1u);
  EXPECT_EQ(c.findings[0].field, "tcp.option.sack_perm");
  EXPECT_EQ(c.findings[0].sent, true);
  EXPECT_TRUE(c.findings[0].received.is_null());
  EXPECT_EQ(c.findings[0].probes, 3u);
}

TEST(Correlate, OptionOrderChanged) {
  Path path;
  path.rotate_options = true;
  auto c = run(synth::synthesize(path, Plan{}, answered(2)));
  ASSERT_EQ(c.findings.size(), 1u);
  EXPECT_EQ(c.findings[0].field, "tcp.options.order");
  EXPECT_EQ(c.findings[0].sent, nlohmann::json({"mss", "sack_perm", "timestamp", "wscale"}));
  EXPECT_EQ(c.findings[0].received, nlohmann::json({"sack_perm", "timestamp", "wscale", "mss"}));
}

TEST(Correlate, NatRewritesSourceAddressAndPort) {
  Path path;
  path.nat_src = ip("10.77.2.1");
  path.nat_sport_base = 61000;
  auto c = run(synth::synthesize(path, Plan{}, {Outcome::answered, Outcome::answered, Outcome::answered,
                                                Outcome::answered, Outcome::answered, Outcome::lost_forward,
                                                Outcome::reply_lost}));
  EXPECT_EQ(fates(c), (std::vector<Fate>{Fate::answered, Fate::answered, Fate::answered, Fate::answered,
                                         Fate::answered, Fate::lost_forward, Fate::reply_lost}));
  const auto* src = finding(c, Direction::forward, "ip.src");
  ASSERT_TRUE(src);
  EXPECT_EQ(src->sent, "10.77.1.2");
  EXPECT_EQ(src->received, "10.77.2.1");
  EXPECT_EQ(src->probes, 6u);
  const auto* sport = finding(c, Direction::forward, "tcp.sport");
  ASSERT_TRUE(sport);
  EXPECT_EQ(sport->probes, 6u);
  EXPECT_EQ(sport->distinct, 6u);  // merged: one port pair per probe
  const auto* dst = finding(c, Direction::reverse, "ip.dst");
  ASSERT_TRUE(dst);
  EXPECT_EQ(dst->sent, "10.77.2.1");
  EXPECT_EQ(dst->received, "10.77.1.2");
  EXPECT_EQ(dst->probes, 5u);
  EXPECT_TRUE(finding(c, Direction::reverse, "tcp.dport"));
  EXPECT_FALSE(finding(c, Direction::forward, "tcp.seq"));
  EXPECT_FALSE(finding(c, Direction::forward, "ip.id"));
}

TEST(Correlate, SequenceRewritten) {
  Path path;
  path.seq_delta = 0x01000000;
  path.server_isn_delta = 0x2000;
  auto c = run(synth::synthesize(path, Plan{}, {Outcome::answered, Outcome::answered, Outcome::unanswered,
                                                Outcome::lost_forward}));
  EXPECT_EQ(fates(c), (std::vector<Fate>{Fate::answered, Fate::answered, Fate::unanswered, Fate::lost_forward}));
  // One (sent, received) pair per probe, few enough to stay separate findings.
  auto probes_with = [&](Direction d) {
    std::uint64_t n = 0;
    for (const auto& f : c.findings) n += (f.direction == d && f.field == "tcp.seq") ? f.probes : 0;
    return n;
  };
  EXPECT_EQ(probes_with(Direction::forward), 3u);
  EXPECT_EQ(probes_with(Direction::reverse), 2u);
  EXPECT_EQ(c.findings.size(), 5u);
}

TEST(Correlate, NatPlusSequenceRewriteMatchesOnIpIdAndTime) {
  // Only the IP ID survives (ports NATed, seq rewritten, TSval constant as tandem sends it): one
  // invariant, so the match needs the clock and a unique time window.
  Path path;
  path.nat_src = ip("10.77.2.1");
  path.nat_sport_base = 61000;
  path.seq_delta = 77;
  path.clock_offset_ns = 250'000'000;
  Plan plan;
  plan.tsval = 1;
  auto pair = synth::synthesize(path, plan, {Outcome::answered, Outcome::unanswered, Outcome::lost_forward});
  {
    auto c = run(pair);  // no clock: nothing is certain
    EXPECT_EQ(c.clock.source, "none");
    EXPECT_EQ(fates(c), (std::vector<Fate>{Fate::unknown, Fate::unknown, Fate::lost_forward}));
    EXPECT_NE(c.probes[0].note.find("unidentified"), std::string::npos) << c.probes[0].note;
  }
  pair.manifest.clock = ClockEstimate{250'000'000, 50'000, "clock-probe"};
  auto c = run(pair);
  EXPECT_EQ(fates(c), (std::vector<Fate>{Fate::answered, Fate::unanswered, Fate::lost_forward}));
  EXPECT_TRUE(finding(c, Direction::forward, "tcp.seq"));
}

TEST(Correlate, DuplicatedAtServerIsAmbiguous) {
  auto c = run(synth::synthesize(Path{}, Plan{}, {Outcome::answered, Outcome::duplicated, Outcome::answered}));
  EXPECT_EQ(fates(c), (std::vector<Fate>{Fate::answered, Fate::unknown, Fate::answered}));
  EXPECT_EQ(c.probes[1].note, "ambiguous: 2 server packets match");
  EXPECT_EQ(c.ambiguous, 1u);
  EXPECT_TRUE(c.probes[1].changes.empty());
}

// --- evidence missing ----------------------------------------------------------------------------

TEST(Correlate, ServerCaptureAbsent) {
  auto pair = synth::synthesize(Path{}, Plan{}, kAllTcp);
  pair.server = CaptureSide{};
  auto c = run(pair);
  for (std::size_t i = 0; i < c.probes.size(); ++i) {
    Fate want = i == 6 ? Fate::icmp_error : i == 7 ? Fate::not_sent : Fate::unknown;
    EXPECT_EQ(c.probes[i].fate, want) << i;
    if (want == Fate::unknown) {
      EXPECT_EQ(c.probes[i].note, "server capture absent");
    }
  }
  EXPECT_EQ(c.probes[0].reply, "syn_ack");  // what the client saw is still reported
  EXPECT_FALSE(c.server_present);
}

TEST(Correlate, ClientCaptureAbsent) {
  auto pair = synth::synthesize(Path{}, Plan{}, {Outcome::answered, Outcome::lost_forward});
  pair.client = CaptureSide{};
  auto c = run(pair);
  EXPECT_EQ(fates(c), (std::vector<Fate>{Fate::unknown, Fate::unknown}));
  EXPECT_EQ(c.probes[0].note, "client capture absent");
}

TEST(Correlate, DropsMakeMissingEvidenceUnknown) {
  auto pair = synth::synthesize(Path{}, Plan{}, kAllTcp);
  pair.server.stats.dropped = 3;
  auto c = run(pair);
  EXPECT_EQ(c.probes[0].fate, Fate::answered);       // evidence complete
  EXPECT_EQ(c.probes[2].fate, Fate::unknown);        // lost_forward or dropped by the capture?
  EXPECT_EQ(c.probes[2].note, "server capture dropped 3 packet(s)");
  EXPECT_EQ(c.probes[3].fate, Fate::unknown);        // the reply may be what was dropped
  EXPECT_EQ(c.probes[4].fate, Fate::reply_lost);     // the missing part is on the client side
  pair.server.stats.dropped = 0;
  pair.client.stats.if_dropped = 1;
  c = run(pair);
  EXPECT_EQ(c.probes[4].fate, Fate::unknown);
  EXPECT_EQ(c.probes[4].note, "client capture dropped 1 packet(s)");
  EXPECT_EQ(c.probes[7].fate, Fate::unknown);
  EXPECT_EQ(c.probes[2].fate, Fate::lost_forward);
}

TEST(Correlate, NoManifestNumbersProbesInSendOrder) {
  // tcpdump on both ends: no key, no count, no addresses, stats unavailable.
  Path path;
  path.nat_src = ip("10.77.2.1");
  auto pair = synth::synthesize(path, Plan{}, {Outcome::answered, Outcome::lost_forward, Outcome::answered_rst,
                                               Outcome::unanswered, Outcome::injected_rst, Outcome::icmp_error,
                                               Outcome::reply_lost});
  pair.manifest = RunManifest{};
  pair.client.stats = {};
  pair.server.stats = {};
  auto c = run(pair);
  ASSERT_EQ(c.probes.size(), 7u);
  for (std::uint32_t i = 0; i < 7; ++i) EXPECT_EQ(c.probes[i].id, i);
  EXPECT_EQ(fates(c), (std::vector<Fate>{Fate::answered, Fate::lost_forward, Fate::answered, Fate::unanswered,
                                         Fate::injected, Fate::icmp_error, Fate::reply_lost}));
  EXPECT_TRUE(finding(c, Direction::forward, "ip.src"));
  ASSERT_EQ(c.variants.size(), 1u);
  EXPECT_EQ(c.variants[0].name, "default");
}

TEST(Correlate, VariantsFromManifest) {
  auto pair = synth::synthesize(Path{}, Plan{}, answered(3));
  pair.manifest.variants = {Variant{"baseline", "none", 0, "random"}, Variant{"linux", "mss=1460", 0, "random"}};
  pair.manifest.probe_variant = {0, 1, 1};
  auto c = run(pair);
  EXPECT_EQ(c.probes[0].variant, 0);
  EXPECT_EQ(c.probes[2].variant, 1);
  EXPECT_EQ(c.variants.size(), 2u);
}

TEST(Correlate, Errors) {
  auto pair = synth::synthesize(Path{}, Plan{}, answered(2));
  auto bad = pair;
  bad.server.linktype = 147;
  auto r = correlate(bad.client, bad.server, bad.manifest);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::usage);
  EXPECT_EQ(r.error().text(), "correlate: server capture has link type 147, which cannot be decoded");
  bad = pair;
  bad.manifest.l4 = "sctp";
  EXPECT_FALSE(correlate(bad.client, bad.server, bad.manifest).ok());
  bad = pair;
  bad.manifest.probe_variant = {0, 3};
  EXPECT_FALSE(correlate(bad.client, bad.server, bad.manifest).ok());
}

TEST(Correlate, MalformedPacketsAreSkipped) {
  auto pair = synth::synthesize(Path{}, Plan{}, answered(2));
  pcapio::PacketBuffer junk;
  std::vector<std::uint8_t> bytes = {0x45, 0x00, 0x00};
  pair.server.packets.append(pcapio::PacketView{pair.server.packets[0].ts_ns, 3, bytes});
  auto c = run(pair);
  EXPECT_EQ(fates(c), (std::vector<Fate>{Fate::answered, Fate::answered}));
  EXPECT_EQ(c.unmatched_server, 1u);
}

TEST(Correlate, AggregateFindingsSortsAndCounts) {
  std::vector<ProbeRecord> probes(3);
  probes[0].changes = {{Direction::reverse, "ip.dscp", 0, 1}, {Direction::forward, "tcp.option.mss", 1460, 1200}};
  probes[1].changes = {{Direction::forward, "tcp.option.mss", 1460, 1200}};
  probes[2].changes = {{Direction::forward, "tcp.option.mss", 1460, 536}};
  auto f = aggregate_findings(probes);
  ASSERT_EQ(f.size(), 3u);
  EXPECT_EQ(f[0].field, "tcp.option.mss");
  EXPECT_EQ(f[0].probes, 2u);
  EXPECT_EQ(f[1].received, 536);
  EXPECT_EQ(f[2].direction, Direction::reverse);
}

TEST(Correlate, ReplyKindText) {
  EXPECT_EQ(reply_kind_text(6, 0x12, 0, 0), "syn_ack");
  EXPECT_EQ(reply_kind_text(6, 0x14, 0, 0), "rst");
  EXPECT_EQ(reply_kind_text(17, 0, 0, 0), "udp");
  EXPECT_EQ(reply_kind_text(1, 0, 3, 13), "icmp:3/13");
}

}  // namespace
}  // namespace tandem::correlate
