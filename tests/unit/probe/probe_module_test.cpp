// Probe modules without a network: build probe i with the module, decode it as a capture would,
// and hand-build the replies and ICMP errors a target or a router would send back.
#include <gtest/gtest.h>
#include <pcap/pcap.h>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "common/packet/build.hpp"
#include "common/packet/decode.hpp"
#include "common/pcapio/bpf.hpp"
#include "common/probe/probe_module.hpp"
#include "common/probe/spec.hpp"

namespace tandem::probe {
namespace {

using packet::IpAddr;
using packet::IpVersion;
using What = Observation::What;

IpAddr addr(const char* s) { return *IpAddr::parse(s); }

// The lab's addresses: client (us), server (target), the middlebox (a router on the path).
struct Hosts {
  IpAddr src, dst, router, stranger;
};
Hosts hosts(bool v6) {
  if (v6) return {addr("fd77:1::2"), addr("fd77:2::2"), addr("fd77:1::1"), addr("fd77:2::9")};
  return {addr("10.77.1.2"), addr("10.77.2.2"), addr("10.77.1.1"), addr("10.77.2.9")};
}

constexpr std::uint32_t kKey = 0x5eed1234;
constexpr std::uint32_t kCount = 100;

std::unique_ptr<ProbeModule> module_for(ProbeSpec::L4 l4, bool v6, SportPolicy sport = SportPolicy::random(),
                                        std::uint32_t count = kCount, std::uint32_t key = kKey) {
  auto h = hosts(v6);
  ProbeSpec spec = default_spec(l4, v6 ? IpVersion::v6 : IpVersion::v4);
  if (l4 == ProbeSpec::L4::tcp) spec.dport = 21;
  spec.sport = sport;
  auto m = make_probe_module(spec, ProbeEndpoints{h.src, h.dst}, RunKey{key}, count);
  EXPECT_TRUE(m.ok()) << (m ? "" : m.error().text());
  return m ? std::move(m).value() : nullptr;
}

std::vector<std::uint8_t> build_probe(ProbeModule& m, std::uint32_t index) {
  std::vector<std::uint8_t> out;
  m.build(index, out);
  return out;
}

packet::IpSpec ip_from_to(const IpAddr& from, const IpAddr& to) {
  packet::IpSpec ip;
  ip.src = from;
  ip.dst = to;
  return ip;
}

std::vector<std::uint8_t> ok(Result<std::vector<std::uint8_t>> r) {
  EXPECT_TRUE(r.ok());
  return r ? std::move(r).value() : std::vector<std::uint8_t>{};
}

// An ICMP error from `from` quoting the first `quote_l4` L4 bytes of `probe` (RFC 792's minimum
// is the IP header + 8 bytes).
std::vector<std::uint8_t> icmp_error(const IpAddr& from, const IpAddr& to, std::uint8_t type, std::uint8_t code,
                                     const std::vector<std::uint8_t>& probe, std::size_t quote_l4 = 8) {
  auto d = packet::decode_ip(probe);
  std::size_t n = std::min(probe.size(), std::size_t{d.ip.header_length} + quote_l4);
  std::vector<std::uint8_t> quote(probe.begin(), probe.begin() + static_cast<std::ptrdiff_t>(n));
  return ok(packet::build_icmp(ip_from_to(from, to), type, code, 0, quote));
}

std::optional<Observation> see(const ProbeModule& m, const std::vector<std::uint8_t>& pkt) {
  auto d = packet::decode_ip(pkt);
  EXPECT_EQ(d.l3, packet::L3::ip);
  return m.recognise(d);
}

std::string version_name(const ::testing::TestParamInfo<bool>& p) { return p.param ? "v6" : "v4"; }

// --- tcp-syn ---

class TcpSyn : public ::testing::TestWithParam<bool> {};

std::vector<std::uint8_t> tcp_reply(const Hosts& h, const ProbeModule& m, const std::vector<std::uint8_t>& probe,
                                    std::uint8_t flags, std::int64_t ack_delta = 1, int dport_delta = 0,
                                    const IpAddr* from = nullptr) {
  auto d = packet::decode_ip(probe);
  (void)m;
  packet::TcpSpec t;
  t.sport = d.tcp.dport;
  t.dport = static_cast<std::uint16_t>(d.tcp.sport + dport_delta);
  t.seq = 0x77777777;
  t.ack = static_cast<std::uint32_t>(d.tcp.seq + ack_delta);
  t.flags = flags;
  return ok(packet::build_tcp(ip_from_to(from ? *from : h.dst, h.src), t));
}

TEST_P(TcpSyn, RecognisesItsOwnProbe) {
  bool v6 = GetParam();
  auto m = module_for(ProbeSpec::L4::tcp, v6);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->name(), "tcp-syn");
  for (std::uint32_t i : {0u, 1u, 42u, kCount - 1}) {
    auto probe = build_probe(*m, i);
    auto d = packet::decode_ip(probe);
    ASSERT_EQ(d.l4, packet::L4::tcp);
    EXPECT_TRUE(d.anomalies.empty());
    EXPECT_EQ(d.tcp.seq, RunKey{kKey}.tcp_seq(i));
    EXPECT_EQ(d.tcp.sport, m->sport(i));
    EXPECT_EQ(d.tcp.dport, 21);
    EXPECT_EQ(d.tcp.flags, packet::kTcpSyn);
    if (v6) {
      EXPECT_EQ(d.ip.flow_label, RunKey{kKey}.flow_label(i));
    } else {
      EXPECT_EQ(d.ip.ip_id, RunKey{kKey}.ip_id(i));
    }
    auto o = m->recognise(d);
    ASSERT_TRUE(o) << i;
    EXPECT_EQ(o->what, What::own_probe);
    EXPECT_EQ(o->index, i);
    EXPECT_EQ(o->reply, ReplyKind::none);
  }
}

TEST_P(TcpSyn, RecognisesSynAckAndRst) {
  bool v6 = GetParam();
  auto h = hosts(v6);
  auto m = module_for(ProbeSpec::L4::tcp, v6);
  ASSERT_TRUE(m);
  auto probe = build_probe(*m, 17);

  auto o = see(*m, tcp_reply(h, *m, probe, packet::kTcpSyn | packet::kTcpAck));
  ASSERT_TRUE(o);
  EXPECT_EQ(o->what, What::reply);
  EXPECT_EQ(o->index, 17u);
  EXPECT_EQ(o->reply, ReplyKind::syn_ack);
  EXPECT_EQ(o->from, h.dst);

  o = see(*m, tcp_reply(h, *m, probe, packet::kTcpRst | packet::kTcpAck));
  ASSERT_TRUE(o);
  EXPECT_EQ(o->what, What::reply);
  EXPECT_EQ(o->index, 17u);
  EXPECT_EQ(o->reply, ReplyKind::rst);

  o = see(*m, tcp_reply(h, *m, probe, packet::kTcpAck));
  ASSERT_TRUE(o);
  EXPECT_EQ(o->reply, ReplyKind::tcp_other);
}

TEST_P(TcpSyn, RejectsWrongAckPortOrHost) {
  bool v6 = GetParam();
  auto h = hosts(v6);
  auto m = module_for(ProbeSpec::L4::tcp, v6);
  ASSERT_TRUE(m);
  auto probe = build_probe(*m, 17);
  const std::uint8_t sa = packet::kTcpSyn | packet::kTcpAck;
  EXPECT_FALSE(see(*m, tcp_reply(h, *m, probe, sa, 0)));      // ack = seq: acknowledges nothing of ours
  EXPECT_FALSE(see(*m, tcp_reply(h, *m, probe, sa, 2)));      // ack = seq + 2
  EXPECT_FALSE(see(*m, tcp_reply(h, *m, probe, sa, 1, 1)));   // to another source port
  EXPECT_FALSE(see(*m, tcp_reply(h, *m, probe, sa, 1, 0, &h.stranger)));  // from another host
  // From the target's other port.
  auto d = packet::decode_ip(probe);
  packet::TcpSpec t;
  t.sport = 22;
  t.dport = d.tcp.sport;
  t.ack = d.tcp.seq + 1;
  t.flags = sa;
  EXPECT_FALSE(see(*m, ok(packet::build_tcp(ip_from_to(h.dst, h.src), t))));
  // Another run's probe (other key) with the same index.
  auto other = module_for(ProbeSpec::L4::tcp, v6, SportPolicy::fixed(m->sport(17)), kCount, kKey + 1);
  ASSERT_TRUE(other);
  EXPECT_FALSE(see(*m, tcp_reply(h, *m, build_probe(*other, 17), sa)));
  EXPECT_FALSE(see(*m, build_probe(*other, 17)));
}

TEST_P(TcpSyn, RejectsIndicesPastTheCount) {
  bool v6 = GetParam();
  auto h = hosts(v6);
  auto unbounded = module_for(ProbeSpec::L4::tcp, v6, SportPolicy::fixed(40000), 0);
  auto bounded = module_for(ProbeSpec::L4::tcp, v6, SportPolicy::fixed(40000), 10);
  ASSERT_TRUE(unbounded && bounded);
  auto probe = build_probe(*unbounded, 10);
  EXPECT_FALSE(see(*bounded, probe));
  EXPECT_FALSE(see(*bounded, tcp_reply(h, *bounded, probe, packet::kTcpSyn | packet::kTcpAck)));
  auto o = see(*unbounded, probe);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->index, 10u);
}

TEST_P(TcpSyn, RecognisesAdminProhibitedQuotingHeaderPlus8) {
  bool v6 = GetParam();
  auto h = hosts(v6);
  auto m = module_for(ProbeSpec::L4::tcp, v6);
  ASSERT_TRUE(m);
  auto probe = build_probe(*m, 33);
  const std::uint8_t type = v6 ? 1 : 3, code = v6 ? 1 : 13;
  auto err = icmp_error(h.router, h.src, type, code, probe, 8);
  auto d = packet::decode_ip(err);
  ASSERT_EQ(d.l4, packet::L4::icmp);
  ASSERT_TRUE(d.icmp.has_quoted);
  EXPECT_EQ(d.icmp.quoted.ip.payload.size(), 8u);
  auto o = m->recognise(d);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->what, What::icmp_error);
  EXPECT_EQ(o->index, 33u);
  EXPECT_EQ(o->reply, ReplyKind::icmp_error);
  EXPECT_EQ(o->icmp_type, type);
  EXPECT_EQ(o->icmp_code, code);
  EXPECT_EQ(o->from, h.router);  // the hop that refused it, not the target

  // A full quote works too; a quote too short for the sequence number does not.
  EXPECT_TRUE(see(*m, icmp_error(h.router, h.src, type, code, probe, 1000)));
  EXPECT_FALSE(see(*m, icmp_error(h.router, h.src, type, code, probe, 4)));
  // An error quoting another run's probe, or addressed to someone else.
  auto other = module_for(ProbeSpec::L4::tcp, v6, SportPolicy::random(), kCount, kKey + 1);
  ASSERT_TRUE(other);
  EXPECT_FALSE(see(*m, icmp_error(h.router, h.src, type, code, build_probe(*other, 33))));
  EXPECT_FALSE(see(*m, icmp_error(h.router, h.stranger, type, code, probe)));
}

// Non-SYN probes (ping --flags): an ACK probe carries its identity in the acknowledgment number
// too, and the RST that answers it (seq = that ack, no ACK flag, RFC 9293 §3.10.7.1) is matched;
// a FIN probe's RST acknowledges seq + 1, a NULL probe's seq + 0.
TEST_P(TcpSyn, NonSynProbesAreMatchedToTheirRst) {
  bool v6 = GetParam();
  auto h = hosts(v6);
  for (std::uint8_t flags : {packet::kTcpAck, packet::kTcpFin, std::uint8_t{0}}) {
    ProbeSpec spec = default_spec(ProbeSpec::L4::tcp, v6 ? IpVersion::v6 : IpVersion::v4);
    spec.dport = 21;
    spec.tcp_flags = flags;
    auto m = make_probe_module(spec, ProbeEndpoints{h.src, h.dst}, RunKey{kKey}, kCount);
    ASSERT_TRUE(m.ok());
    EXPECT_EQ((*m)->name(), flags == packet::kTcpAck ? "tcp-ack" : flags ? "tcp-fin" : "tcp-null");
    auto probe = build_probe(**m, 23);
    auto d = packet::decode_ip(probe);
    EXPECT_TRUE(d.anomalies.empty());  // checksums still right after the ack patch
    EXPECT_EQ(d.tcp.flags, flags);
    std::vector<std::uint8_t> rst;
    if (flags & packet::kTcpAck) {
      EXPECT_EQ(d.tcp.ack, RunKey{kKey}.tcp_seq(23));
      packet::TcpSpec t;
      t.sport = d.tcp.dport;
      t.dport = d.tcp.sport;
      t.seq = d.tcp.ack;
      t.flags = packet::kTcpRst;
      rst = ok(packet::build_tcp(ip_from_to(h.dst, h.src), t));
    } else {
      rst = tcp_reply(h, **m, probe, packet::kTcpRst | packet::kTcpAck, (flags & packet::kTcpFin) ? 1 : 0);
    }
    auto o = see(**m, rst);
    ASSERT_TRUE(o) << int{flags};
    EXPECT_EQ(o->what, What::reply);
    EXPECT_EQ(o->index, 23u);
    EXPECT_EQ(o->reply, ReplyKind::rst);
  }
}

INSTANTIATE_TEST_SUITE_P(V4V6, TcpSyn, ::testing::Bool(), version_name);

// --- udp ---

class Udp : public ::testing::TestWithParam<bool> {};

std::vector<std::uint8_t> udp_reply(const Hosts& h, const std::vector<std::uint8_t>& probe,
                                    std::span<const std::uint8_t> payload) {
  auto d = packet::decode_ip(probe);
  return ok(packet::build_udp(ip_from_to(h.dst, h.src), d.udp.dport, d.udp.sport, payload));
}

TEST_P(Udp, ProbeCarriesTagAndIsRecognised) {
  bool v6 = GetParam();
  auto m = module_for(ProbeSpec::L4::udp, v6);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->name(), "udp");
  auto probe = build_probe(*m, 5);
  auto d = packet::decode_ip(probe);
  ASSERT_EQ(d.l4, packet::L4::udp);
  EXPECT_TRUE(d.anomalies.empty());
  EXPECT_EQ(d.udp.dport, 33434);
  EXPECT_EQ(d.udp.sport, m->sport(5));
  ASSERT_EQ(d.udp.payload.size(), kPayloadTagSize);
  EXPECT_EQ(RunKey{kKey}.index_from_payload(d.udp.payload), 5u);
  auto o = m->recognise(d);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->what, What::own_probe);
  EXPECT_EQ(o->index, 5u);
}

TEST_P(Udp, ReplyWithTag) {
  bool v6 = GetParam();
  auto h = hosts(v6);
  auto m = module_for(ProbeSpec::L4::udp, v6);
  ASSERT_TRUE(m);
  auto probe = build_probe(*m, 5);
  auto echo = packet::decode_ip(probe).udp.payload;
  std::vector<std::uint8_t> payload(echo.begin(), echo.end());
  auto o = see(*m, udp_reply(h, probe, payload));
  ASSERT_TRUE(o);
  EXPECT_EQ(o->what, What::reply);
  EXPECT_EQ(o->index, 5u);
  EXPECT_EQ(o->reply, ReplyKind::udp);
  EXPECT_EQ(o->from, h.dst);
}

TEST_P(Udp, ReplyWithoutTagResolvedBySourcePort) {
  bool v6 = GetParam();
  auto h = hosts(v6);
  auto m = module_for(ProbeSpec::L4::udp, v6);
  ASSERT_TRUE(m);
  std::vector<std::vector<std::uint8_t>> probes;
  for (std::uint32_t i = 0; i < 10; ++i) probes.push_back(build_probe(*m, i));
  const std::vector<std::uint8_t> answer = {'p', 'o', 'n', 'g'};
  for (std::uint32_t i = 0; i < 10; ++i) {
    auto o = see(*m, udp_reply(h, probes[i], answer));
    ASSERT_TRUE(o) << i;
    EXPECT_EQ(o->what, What::reply);
    EXPECT_EQ(o->index, i);
    EXPECT_EQ(o->reply, ReplyKind::udp);
  }
  // A reply to a port we never sent from, or from another host.
  auto d = packet::decode_ip(probes[0]);
  std::uint16_t unused = 1024;
  while (std::any_of(probes.begin(), probes.end(),
                     [&](const auto& p) { return packet::decode_ip(p).udp.sport == unused; })) {
    ++unused;
  }
  EXPECT_FALSE(see(*m, ok(packet::build_udp(ip_from_to(h.dst, h.src), d.udp.dport, unused, answer))));
  EXPECT_FALSE(see(*m, ok(packet::build_udp(ip_from_to(h.stranger, h.src), d.udp.dport, d.udp.sport, answer))));
  // A reply echoing another run's tag (a concurrent run whose random port collided with ours) is
  // not taken for ours, even on our port.
  RunKey other{kKey + 1};
  auto tag = other.payload_tag(0);
  EXPECT_FALSE(see(*m, udp_reply(h, probes[0], tag)));
}

TEST_P(Udp, PortUnreachableQuoting) {
  bool v6 = GetParam();
  auto h = hosts(v6);
  auto m = module_for(ProbeSpec::L4::udp, v6);
  ASSERT_TRUE(m);
  std::vector<std::vector<std::uint8_t>> probes;
  for (std::uint32_t i = 0; i < 4; ++i) probes.push_back(build_probe(*m, i));
  const std::uint8_t type = v6 ? 1 : 3, code = v6 ? 4 : 3;
  for (std::size_t quote : {std::size_t{8}, std::size_t{8 + kPayloadTagSize}, std::size_t{1000}}) {
    for (std::uint32_t i = 0; i < 4; ++i) {
      auto o = see(*m, icmp_error(h.dst, h.src, type, code, probes[i], quote));
      ASSERT_TRUE(o) << "probe " << i << " quote " << quote;
      EXPECT_EQ(o->what, What::icmp_error);
      EXPECT_EQ(o->index, i);
      EXPECT_EQ(o->reply, ReplyKind::icmp_error);
      EXPECT_EQ(o->icmp_type, type);
      EXPECT_EQ(o->icmp_code, code);
      EXPECT_EQ(o->from, h.dst);
    }
  }
  // Only the ports quoted: not enough.
  EXPECT_FALSE(see(*m, icmp_error(h.dst, h.src, type, code, probes[0], 2)));
}

TEST_P(Udp, PortReuseIsCaughtByQuotedIpIdOrFlowLabel) {
  bool v6 = GetParam();
  auto h = hosts(v6);
  // A fixed source port: every probe shares it, the latest one owns replies without a tag.
  auto m = module_for(ProbeSpec::L4::udp, v6, SportPolicy::fixed(40000));
  ASSERT_TRUE(m);
  auto first = build_probe(*m, 0);
  auto second = build_probe(*m, 1);
  const std::uint8_t type = v6 ? 1 : 3, code = v6 ? 4 : 3;
  // A short quote of the first probe arriving after the second was sent: the IP ID / flow label
  // disagree with probe 1, so it is not misattributed.
  EXPECT_FALSE(see(*m, icmp_error(h.dst, h.src, type, code, first, 8)));
  auto o = see(*m, icmp_error(h.dst, h.src, type, code, second, 8));
  ASSERT_TRUE(o);
  EXPECT_EQ(o->index, 1u);
  // With the tag quoted, the first probe is named exactly.
  o = see(*m, icmp_error(h.dst, h.src, type, code, first, 1000));
  ASSERT_TRUE(o);
  EXPECT_EQ(o->index, 0u);
  // A concurrent run on the same port: its quoted tag is not ours.
  auto other = module_for(ProbeSpec::L4::udp, v6, SportPolicy::fixed(40000), kCount, kKey + 1);
  ASSERT_TRUE(other);
  EXPECT_FALSE(see(*m, icmp_error(h.dst, h.src, type, code, build_probe(*other, 1), 1000)));
}

INSTANTIATE_TEST_SUITE_P(V4V6, Udp, ::testing::Bool(), version_name);

// --- icmp-echo ---

class IcmpEcho : public ::testing::TestWithParam<bool> {};

TEST_P(IcmpEcho, ProbeAndEchoReply) {
  bool v6 = GetParam();
  auto h = hosts(v6);
  auto m = module_for(ProbeSpec::L4::icmp, v6);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->name(), "icmp-echo");
  EXPECT_EQ(m->sport(3), 0);
  auto probe = build_probe(*m, 9);
  auto d = packet::decode_ip(probe);
  ASSERT_EQ(d.l4, packet::L4::icmp);
  EXPECT_TRUE(d.anomalies.empty());
  EXPECT_EQ(d.icmp.type, v6 ? 128 : 8);
  EXPECT_EQ(d.icmp.id(), RunKey{kKey}.icmp_ident());
  EXPECT_EQ(d.icmp.seq(), 9);
  EXPECT_EQ(RunKey{kKey}.index_from_payload(d.icmp.body), 9u);
  auto o = m->recognise(d);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->what, What::own_probe);
  EXPECT_EQ(o->index, 9u);

  // The echo reply repeats id, seq and payload.
  std::vector<std::uint8_t> body(d.icmp.body.begin(), d.icmp.body.end());
  auto reply = ok(packet::build_icmp(ip_from_to(h.dst, h.src), v6 ? 129 : 0, 0, d.icmp.rest, body));
  o = see(*m, reply);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->what, What::reply);
  EXPECT_EQ(o->index, 9u);
  EXPECT_EQ(o->reply, ReplyKind::echo_reply);
  EXPECT_EQ(o->from, h.dst);

  // Without the payload the sequence number names the probe (count <= 65536).
  o = see(*m, ok(packet::build_icmp(ip_from_to(h.dst, h.src), v6 ? 129 : 0, 0, d.icmp.rest)));
  ASSERT_TRUE(o);
  EXPECT_EQ(o->index, 9u);

  // Another identifier, another host, or a seq past the count: not ours.
  std::uint32_t other_id = (d.icmp.rest ^ 0x00010000u);
  EXPECT_FALSE(see(*m, ok(packet::build_icmp(ip_from_to(h.dst, h.src), v6 ? 129 : 0, 0, other_id))));
  EXPECT_FALSE(see(*m, ok(packet::build_icmp(ip_from_to(h.stranger, h.src), v6 ? 129 : 0, 0, d.icmp.rest, body))));
  std::uint32_t past = (d.icmp.rest & 0xffff0000u) | kCount;
  EXPECT_FALSE(see(*m, ok(packet::build_icmp(ip_from_to(h.dst, h.src), v6 ? 129 : 0, 0, past))));
}

TEST_P(IcmpEcho, ErrorQuotingTheEcho) {
  bool v6 = GetParam();
  auto h = hosts(v6);
  auto m = module_for(ProbeSpec::L4::icmp, v6);
  ASSERT_TRUE(m);
  auto probe = build_probe(*m, 12);
  // Admin-prohibited from the router; time exceeded too.
  const std::uint8_t types[][2] = {{static_cast<std::uint8_t>(v6 ? 1 : 3), static_cast<std::uint8_t>(v6 ? 1 : 13)},
                                   {static_cast<std::uint8_t>(v6 ? 3 : 11), 0}};
  for (const auto& tc : types) {
    for (std::size_t quote : {std::size_t{8}, std::size_t{1000}}) {
      auto o = see(*m, icmp_error(h.router, h.src, tc[0], tc[1], probe, quote));
      ASSERT_TRUE(o) << int{tc[0]} << "/" << int{tc[1]} << " quote " << quote;
      EXPECT_EQ(o->what, What::icmp_error);
      EXPECT_EQ(o->index, 12u);
      EXPECT_EQ(o->reply, ReplyKind::icmp_error);
      EXPECT_EQ(o->icmp_type, tc[0]);
      EXPECT_EQ(o->icmp_code, tc[1]);
      EXPECT_EQ(o->from, h.router);
    }
  }
  auto other = module_for(ProbeSpec::L4::icmp, v6, SportPolicy::random(), kCount, kKey + 1);
  ASSERT_TRUE(other);
  EXPECT_FALSE(see(*m, icmp_error(h.router, h.src, v6 ? 1 : 3, v6 ? 1 : 13, build_probe(*other, 12))));
}

INSTANTIATE_TEST_SUITE_P(V4V6, IcmpEcho, ::testing::Bool(), version_name);

// --- source port policies ---

TEST(PolicySport, Fixed) {
  RunKey k{kKey};
  for (std::uint32_t i = 0; i < 100; ++i) EXPECT_EQ(policy_sport(SportPolicy::fixed(40000), k, i), 40000);
}

TEST(PolicySport, RangeStaysInsideAndCyclesWithoutRepeats) {
  RunKey k{kKey};
  auto policy = SportPolicy::range(40000, 40100);
  std::set<std::uint16_t> seen;
  for (std::uint32_t i = 0; i < 101; ++i) {
    std::uint16_t p = policy_sport(policy, k, i);
    EXPECT_GE(p, 40000);
    EXPECT_LE(p, 40100);
    seen.insert(p);
  }
  EXPECT_EQ(seen.size(), 101u);  // every port of the range once
  EXPECT_EQ(policy_sport(policy, k, 101), policy_sport(policy, k, 0));
  // The whole port space as a range.
  auto all = SportPolicy::range(1, 65535);
  for (std::uint32_t i = 0; i < 1000; ++i) EXPECT_GE(policy_sport(all, k, i), 1);
}

TEST(PolicySport, RandomIsAbovePrivilegedAndDistinct) {
  for (std::uint32_t key : {0u, kKey, 0xffffffffu}) {
    RunKey k{key};
    std::set<std::uint16_t> seen;
    for (std::uint32_t i = 0; i < 1000; ++i) {
      std::uint16_t p = policy_sport(SportPolicy::random(), k, i);
      EXPECT_GE(p, 1024);
      seen.insert(p);
    }
    EXPECT_EQ(seen.size(), 1000u) << key;
  }
  // Another key gives another sequence.
  auto pair_of = [](std::uint32_t key) {
    return std::pair{policy_sport(SportPolicy::random(), RunKey{key}, 0), policy_sport(SportPolicy::random(), RunKey{key}, 1)};
  };
  EXPECT_NE(pair_of(1), pair_of(2));
}

TEST(PolicySport, ModulesUseThePolicy) {
  auto m = module_for(ProbeSpec::L4::tcp, false, SportPolicy::range(50000, 50009));
  ASSERT_TRUE(m);
  for (std::uint32_t i = 0; i < 20; ++i) {
    auto d = packet::decode_ip(build_probe(*m, i));
    EXPECT_EQ(d.tcp.sport, policy_sport(SportPolicy::range(50000, 50009), RunKey{kKey}, i));
    EXPECT_EQ(d.tcp.sport, m->sport(i));
  }
}

// --- BPF filters ---

TEST(BpfFilter, EveryModuleCompilesForSll2AndRaw) {
  constexpr int kLinktypeLinuxSll2 = 276;
  constexpr int kLinktypeRaw = 101;
  for (auto l4 : {ProbeSpec::L4::tcp, ProbeSpec::L4::udp, ProbeSpec::L4::icmp}) {
    for (bool v6 : {false, true}) {
      auto m = module_for(l4, v6);
      ASSERT_TRUE(m);
      std::string f = m->bpf_filter();
      auto h = hosts(v6);
      EXPECT_NE(f.find(h.dst.to_string()), std::string::npos) << f;
      EXPECT_NE(f.find(h.src.to_string()), std::string::npos) << f;
      for (int lt : {kLinktypeLinuxSll2, kLinktypeRaw}) {
        auto st = pcapio::check_filter(lt, f);
        EXPECT_TRUE(st.ok()) << m->name() << (v6 ? " v6" : " v4") << " linktype " << lt << ": "
                                    << (st ? "" : st.error().text());
      }
    }
  }
}

// Runs a filter over a raw IP packet as the kernel would (DLT_RAW), so the test checks what the
// filter lets through, not only that it compiles.
bool filter_accepts(const std::string& filter, const std::vector<std::uint8_t>& pkt) {
  pcap_t* dead = pcap_open_dead(DLT_RAW, 65535);
  bpf_program prog{};
  EXPECT_EQ(pcap_compile(dead, &prog, filter.c_str(), 1, PCAP_NETMASK_UNKNOWN), 0) << pcap_geterr(dead);
  pcap_pkthdr hdr{};
  hdr.caplen = hdr.len = static_cast<bpf_u_int32>(pkt.size());
  bool accepted = pcap_offline_filter(&prog, &hdr, pkt.data()) != 0;
  pcap_freecode(&prog);
  pcap_close(dead);
  return accepted;
}

TEST(BpfFilter, AcceptsProbesRepliesAndErrorsButNotOtherTraffic) {
  for (bool v6 : {false, true}) {
    auto h = hosts(v6);
    const std::uint8_t unreach = v6 ? 1 : 3, admin = v6 ? 1 : 13;
    auto tcp = module_for(ProbeSpec::L4::tcp, v6);
    auto udp = module_for(ProbeSpec::L4::udp, v6);
    auto icmp = module_for(ProbeSpec::L4::icmp, v6);
    ASSERT_TRUE(tcp && udp && icmp);

    auto syn = build_probe(*tcp, 1);
    std::string f = tcp->bpf_filter();
    EXPECT_TRUE(filter_accepts(f, syn)) << f;
    EXPECT_TRUE(filter_accepts(f, tcp_reply(h, *tcp, syn, packet::kTcpSyn | packet::kTcpAck))) << f;
    EXPECT_TRUE(filter_accepts(f, icmp_error(h.router, h.src, unreach, admin, syn))) << f;
    packet::TcpSpec other;
    other.sport = 5555;
    other.dport = 443;
    EXPECT_FALSE(filter_accepts(f, ok(packet::build_tcp(ip_from_to(h.src, h.stranger), other)))) << f;

    auto dgram = build_probe(*udp, 1);
    f = udp->bpf_filter();
    EXPECT_TRUE(filter_accepts(f, dgram)) << f;
    EXPECT_TRUE(filter_accepts(f, udp_reply(h, dgram, std::vector<std::uint8_t>{1, 2, 3}))) << f;
    EXPECT_TRUE(filter_accepts(f, icmp_error(h.dst, h.src, unreach, v6 ? 4 : 3, dgram))) << f;
    EXPECT_FALSE(filter_accepts(f, ok(packet::build_udp(ip_from_to(h.src, h.stranger), 5555, 53)))) << f;

    auto echo = build_probe(*icmp, 1);
    f = icmp->bpf_filter();
    EXPECT_TRUE(filter_accepts(f, echo)) << f;
    auto d = packet::decode_ip(echo);
    EXPECT_TRUE(filter_accepts(f, ok(packet::build_icmp(ip_from_to(h.dst, h.src), v6 ? 129 : 0, 0, d.icmp.rest)))) << f;
    EXPECT_TRUE(filter_accepts(f, icmp_error(h.router, h.src, unreach, admin, echo))) << f;
    EXPECT_FALSE(filter_accepts(f, ok(packet::build_udp(ip_from_to(h.dst, h.src), 5555, 53)))) << f;
  }
}

TEST(MakeProbeModule, RefusesMixedVersions) {
  auto h4 = hosts(false);
  auto h6 = hosts(true);
  auto m = make_probe_module(default_spec(ProbeSpec::L4::tcp, IpVersion::v4), ProbeEndpoints{h4.src, h6.dst},
                             RunKey{kKey}, 1);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.error().code, Errc::usage);
}

}  // namespace
}  // namespace tandem::probe
