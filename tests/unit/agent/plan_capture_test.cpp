#include <algorithm>
#include <map>

#include <gtest/gtest.h>

#include "agent/capture/run_capture.hpp"
#include "agent/send/plan_sender.hpp"
#include "common/packet/build.hpp"
#include "common/pcapio/packet.hpp"
#include "common/probe/plan.hpp"

namespace tandem {
namespace {

TEST(VariantSchedule, SplitmixReferenceValues) {
  // splitmix64 from seed 0: the published reference sequence.
  std::uint64_t st = 0;
  EXPECT_EQ(probe::splitmix64_next(st), 0xe220a8397b1dcdafULL);
  EXPECT_EQ(probe::splitmix64_next(st), 0x6e789e6aa1b965f4ULL);
  EXPECT_EQ(probe::splitmix64_next(st), 0x06c45d188009454fULL);
}

TEST(VariantSchedule, GoldenForControllerParity) {
  // Pinned: the controller labels probes with the same function; a change here breaks old bundles.
  auto v = probe::variant_schedule(42, 12, 4);
  // Recomputed here from the documented definition, step by step.
  std::uint64_t st = 42;
  std::vector<std::uint16_t> expect;
  for (int b = 0; b < 3; ++b) {
    std::vector<std::uint16_t> p = {0, 1, 2, 3};
    for (std::size_t i = 3; i > 0; --i) std::swap(p[i], p[tandem::probe::splitmix64_next(st) % (i + 1)]);
    expect.insert(expect.end(), p.begin(), p.end());
  }
  EXPECT_EQ(v, expect);
  // The same values as literals (computed by an independent Python transcription of the definition).
  EXPECT_EQ(v, (std::vector<std::uint16_t>{2, 0, 3, 1, 2, 3, 1, 0, 0, 3, 2, 1}));
}

TEST(VariantSchedule, DeterministicBalancedAndShuffled) {
  auto a = probe::variant_schedule(7, 1000, 6);
  EXPECT_EQ(a, probe::variant_schedule(7, 1000, 6));
  EXPECT_NE(a, probe::variant_schedule(8, 1000, 6));
  ASSERT_EQ(a.size(), 1000u);
  std::map<std::uint16_t, int> counts;
  for (auto x : a) ++counts[x];
  ASSERT_EQ(counts.size(), 6u);
  for (auto [k, n] : counts) EXPECT_TRUE(n == 166 || n == 167) << k << ": " << n;
  // Every block of 6 holds each variant once.
  for (std::size_t b = 0; b + 6 <= a.size(); b += 6) {
    std::vector<std::uint16_t> blk(a.begin() + static_cast<long>(b), a.begin() + static_cast<long>(b + 6));
    std::sort(blk.begin(), blk.end());
    EXPECT_EQ(blk, (std::vector<std::uint16_t>{0, 1, 2, 3, 4, 5}));
  }
  // Not the identity order: variants are interleaved at random.
  int identity_blocks = 0;
  for (std::size_t b = 0; b + 6 <= a.size(); b += 6)
    if (a[b] == 0 && a[b + 1] == 1 && a[b + 2] == 2 && a[b + 3] == 3 && a[b + 4] == 4 && a[b + 5] == 5) ++identity_blocks;
  EXPECT_LT(identity_blocks, 5);
}

TEST(VariantSchedule, EdgeCases) {
  EXPECT_TRUE(probe::variant_schedule(1, 0, 5).empty());
  EXPECT_EQ(probe::variant_schedule(1, 5, 0), std::vector<std::uint16_t>(5, 0));
  EXPECT_EQ(probe::variant_schedule(1, 5, 1), std::vector<std::uint16_t>(5, 0));
  auto partial = probe::variant_schedule(3, 5, 4);  // one full block + 1
  ASSERT_EQ(partial.size(), 5u);
  EXPECT_LT(partial[4], 4);
}

TEST(VariantSpecs, VariantsOverrideBaseFields) {
  proto::ProbePlan p;
  p.count = 4;
  p.dst = "192.0.2.1";
  p.dport = 21;
  p.tcp_options = "linux";
  p.tos = 0xb8;
  p.ttl = 9;
  p.window = 1000;
  p.sport = "40000";
  p.variants = {proto::ProbeVariant{"", 0, ""}, proto::ProbeVariant{"mss=1460,ws=7", 4, "41000-41010"}};
  auto s = agent::variant_specs(p);
  ASSERT_TRUE(s) << s.error().text();
  ASSERT_EQ(s->size(), 2u);
  EXPECT_TRUE((*s)[0].tcp_options.empty());
  EXPECT_EQ((*s)[0].tos, 0);
  EXPECT_EQ((*s)[0].sport, probe::SportPolicy::fixed(40000));
  EXPECT_EQ((*s)[0].dport, 21);
  EXPECT_EQ((*s)[0].ttl, 9);
  EXPECT_EQ((*s)[0].window, 1000);
  EXPECT_EQ(probe::format_tcp_options((*s)[1].tcp_options), "mss=1460,ws=7");
  EXPECT_EQ((*s)[1].sport, probe::SportPolicy::range(41000, 41010));
  proto::ProbePlan seeded;
  seeded.seed = 0xabcdef0012345678ULL;
  EXPECT_EQ(agent::run_key_for(seeded).key, 0x12345678u);
  p.variants.clear();
  auto one = agent::variant_specs(p);
  ASSERT_TRUE(one);
  ASSERT_EQ(one->size(), 1u);
  EXPECT_EQ(probe::format_tcp_options((*one)[0].tcp_options), "mss=1460,sack,ts,nop,ws=7");
}

TEST(FlowsFilter, GeneratedFromFlowsAndCompiles) {
  std::vector<proto::Flow> flows = {proto::Flow{"10.77.1.2", "10.77.2.2", proto::L4::tcp, 40000, 40100, 21}};
  auto f = agent::flows_filter(flows, "", 256);
  ASSERT_TRUE(f) << f.error().text();
  EXPECT_EQ(*f,
            "(tcp and ((dst host 10.77.2.2 and dst port 21 and src host 10.77.1.2 and src portrange 40000-40100) or "
            "(src host 10.77.2.2 and src port 21 and dst host 10.77.1.2 and dst portrange 40000-40100))) or "
            "(icmp and dst host 10.77.1.2 and (icmp[icmptype] == icmp-unreach or icmp[icmptype] == icmp-timxceed or "
            "icmp[icmptype] == icmp-paramprob) and icmp[17] == 6 and icmp[20:4] == 0xa4d0102 and icmp[24:4] == 0xa4d0202 "
            "and icmp[8 + ((icmp[8] & 0xf) << 2) + 2 : 2] == 21)");
  // IPv6 errors are matched on the quoted header too, and compile.
  auto v6err = agent::flows_filter({proto::Flow{"fd77:1::2", "fd77:2::2", proto::L4::udp, 0, 0, 33434}}, "", 256);
  ASSERT_TRUE(v6err) << v6err.error().text();
  EXPECT_NE(v6err->find("icmp6[14] == 17"), std::string::npos) << *v6err;
  EXPECT_NE(v6err->find("icmp6[50:2] == 33434"), std::string::npos) << *v6err;
  // Addresses are re-formatted from their parsed form.
  std::vector<proto::Flow> v6 = {proto::Flow{"", "FD77:2:0::2", proto::L4::udp, 0, 0, 33434},
                                 proto::Flow{"fd77:1::2", "fd77:2::2", proto::L4::icmp, 0, 0, 0}};
  auto g = agent::flows_filter(v6, "", 256);
  ASSERT_TRUE(g) << g.error().text();
  EXPECT_NE(g->find("dst host fd77:2::2 and dst port 33434"), std::string::npos) << *g;
  EXPECT_NE(g->find("(icmp6 and host fd77:2::2 and host fd77:1::2)"), std::string::npos) << *g;
  // Extra text narrows (AND) and must compile.
  auto h = agent::flows_filter(flows, "ip[1] & 0xfc == 0xb8", 256);
  ASSERT_TRUE(h);
  EXPECT_EQ(h->rfind("((tcp", 0), 0u);
  EXPECT_FALSE(agent::flows_filter(flows, "tcp and (", 256));
  // Text that only compiles next to the agent's own parentheses cannot widen the filter (P11).
  auto inj = agent::flows_filter(flows, "1=1) or (1=1", 256);
  ASSERT_FALSE(inj);
  EXPECT_NE(inj.error().text().find("does not compile on its own"), std::string::npos) << inj.error().text();
  EXPECT_FALSE(agent::flows_filter(flows, "tcp) or (udp", 256));
  EXPECT_FALSE(agent::flows_filter({}, "", 256));
}

TEST(Scrub, CutsAfterTheL4Header) {
  packet::IpSpec ip;
  ip.src = *packet::IpAddr::parse("192.0.2.1");
  ip.dst = *packet::IpAddr::parse("192.0.2.2");
  packet::TcpSpec tcp;
  tcp.sport = 1000;
  tcp.dport = 80;
  tcp.flags = 0x18;
  std::vector<std::uint8_t> payload(100, 0x41);
  auto built = packet::build_tcp(ip, tcp, payload);
  ASSERT_TRUE(built);
  const std::vector<std::uint8_t>& pkt = *built;
  pcapio::PacketView v{0, static_cast<std::uint32_t>(pkt.size()), pkt};
  EXPECT_EQ(agent::scrubbed_length(pcapio::linktype::kRaw, v), 40u);  // 20 IP + 20 TCP, no payload
}

// C2: an ICMP error keeps the quoted headers, not the quoted payload.
TEST(Scrub, IcmpErrorKeepsTheQuotedHeadersOnly) {
  packet::IpSpec inner;
  inner.src = *packet::IpAddr::parse("192.0.2.1");
  inner.dst = *packet::IpAddr::parse("192.0.2.2");
  std::vector<std::uint8_t> secret(64, 0x53);
  auto quoted = packet::build_udp(inner, 1000, 5555, secret);
  ASSERT_TRUE(quoted);
  packet::IpSpec outer;
  outer.src = inner.dst;
  outer.dst = inner.src;
  auto err = packet::build_icmp(outer, 3, 3, 0, *quoted);
  ASSERT_TRUE(err);
  pcapio::PacketView v{0, static_cast<std::uint32_t>(err->size()), *err};
  // 20 IP + 8 ICMP + 20 quoted IP + 8 quoted UDP; the 64 quoted payload bytes go.
  EXPECT_EQ(agent::scrubbed_length(pcapio::linktype::kRaw, v), 56u);
}

}  // namespace
}  // namespace tandem

TEST(StreamSchedule, EqualCountsAreTheVariantSchedule) {
  // Documented identity: with equal counts the stream interleaving is variant_schedule's.
  EXPECT_EQ(tandem::probe::stream_schedule(42, {3, 3, 3, 3}), tandem::probe::variant_schedule(42, 12, 4));
  EXPECT_EQ(tandem::probe::stream_schedule(9, {5}), std::vector<std::uint16_t>(5, 0));
  EXPECT_TRUE(tandem::probe::stream_schedule(9, {}).empty());
}

TEST(StreamSchedule, UnequalCountsFollowTheDefinition) {
  // Recomputed from the documented definition: blocks over the streams with probes left.
  std::vector<std::uint32_t> counts = {1, 3, 2};
  auto got = tandem::probe::stream_schedule(7, counts);
  std::vector<std::uint16_t> expect;
  std::vector<std::uint32_t> left = counts;
  std::uint64_t st = 7;
  while (expect.size() < 6) {
    std::vector<std::uint16_t> p;
    for (std::uint16_t s = 0; s < 3; ++s)
      if (left[s] > 0) p.push_back(s);
    for (std::size_t i = p.size() - 1; i > 0; --i) std::swap(p[i], p[tandem::probe::splitmix64_next(st) % (i + 1)]);
    for (auto s : p) {
      expect.push_back(s);
      --left[s];
    }
  }
  EXPECT_EQ(got, expect);
  std::map<std::uint16_t, int> n;
  for (auto s : got) ++n[s];
  EXPECT_EQ(n[0], 1);
  EXPECT_EQ(n[1], 3);
  EXPECT_EQ(n[2], 2);
}
