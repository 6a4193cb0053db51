// The decode fast path (fill_rec_fast) against the full decoder (fill_rec_full): for every packet
// the fast path accepts, the record and the interned addresses must be exactly what the full
// decoder produces, and it must decline every packet the full decoder finds anything wrong with.
// Golden shapes first, then deterministic random mutations of them.
#include "controller/correlate/records.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <tuple>
#include <vector>

#include "common/packet/build.hpp"
#include "common/packet/bytes.hpp"
#include "common/packet/decode.hpp"
#include "common/packet/tcp_option.hpp"
#include "controller/correlate/index.hpp"
#include "tests/unit/correlate/synth_capture.hpp"

namespace tandem::correlate::detail {
namespace {

using packet::IpAddr;
using packet::TcpOption;
using Bytes = std::vector<std::uint8_t>;

IpAddr addr(const char* s) { return *IpAddr::parse(s); }

auto fields(const Rec& r) {
  return std::make_tuple(r.primary, r.ack, r.ipid, r.tsval, r.fp, r.sport, r.dport, r.src, r.dst, r.role,
                         r.flags, r.code, r.ttl, r.bits);
}

// One decoding stream: records are compared packet by packet, and the address tables (whose ids
// depend on the order addresses were first seen) must stay identical too.
struct Stream {
  AddrTable addrs;
  packet::Decoded scratch;
};

struct Pair {
  Stream fast, full;
  std::size_t accepted = 0, declined = 0;

  // Decodes `frame` both ways; returns whether the fast path took it.
  bool check(std::uint32_t lt, const Bytes& bytes, std::size_t wire_len = 0,
             std::optional<std::uint32_t> key = std::nullopt) {
    // An exact-size heap copy, so that AddressSanitizer sees any read past the captured bytes.
    std::unique_ptr<std::uint8_t[]> copy(new std::uint8_t[bytes.size() + (bytes.empty() ? 1 : 0)]);
    if (!bytes.empty()) std::memcpy(copy.get(), bytes.data(), bytes.size());
    std::span<const std::uint8_t> frame(copy.get(), bytes.size());

    Rec a;
    a.primary = 0xdeadbeef;
    a.role = 0x5a;
    const Rec before = a;
    const auto n_before = fast.addrs.size();
    const bool took = fill_rec_fast(lt, frame, fast.addrs, a);
    if (!took) {
      EXPECT_EQ(fields(a), fields(before)) << "a declined packet must leave the record alone";
      EXPECT_EQ(fast.addrs.size(), n_before) << "a declined packet must intern nothing";
      fill_rec_full(lt, frame, wire_len, key, fast.addrs, fast.scratch, a);
      ++declined;
    } else {
      ++accepted;
      // Accepted means plain: the full decoder finds nothing wrong with it, and it is TCP.
      auto d = packet::decode(lt, frame, wire_len);
      EXPECT_TRUE(d.anomalies.empty()) << "anomalies " << d.anomalies.bits;
      EXPECT_EQ(d.l4, packet::L4::tcp);
    }
    Rec b;
    fill_rec_full(lt, frame, wire_len, key, full.addrs, full.scratch, b);
    EXPECT_EQ(fields(a), fields(b)) << "link type " << lt << ", " << bytes.size() << " bytes, fast " << took;
    EXPECT_EQ(fast.addrs.size(), full.addrs.size());
    for (std::uint16_t i = 0; i < fast.addrs.size() && i < full.addrs.size(); ++i) {
      EXPECT_EQ(*fast.addrs.get(i), *full.addrs.get(i));
    }
    return took;
  }
};

// --- packets ---------------------------------------------------------------------------------------

std::vector<TcpOption> linux_options(std::uint32_t tsval = 0x01020304) {
  return {TcpOption::mss(1460), TcpOption::sack_perm(), TcpOption::timestamp(tsval, 0), TcpOption::nop(),
          TcpOption::wscale(7)};
}

Bytes tcp(const char* src, const char* dst, std::uint8_t flags, std::vector<TcpOption> options,
          Bytes payload = {}, std::uint8_t tos = 0, bool df = true) {
  packet::IpSpec ip;
  ip.src = addr(src);
  ip.dst = addr(dst);
  ip.tos = tos;
  ip.ttl = 61;
  ip.ip_id = 0x4321;
  ip.df = df;
  ip.flow_label = 0xabcde;
  packet::TcpSpec t;
  t.sport = 40001;
  t.dport = 443;
  t.seq = 0x11223344;
  t.ack = (flags & packet::kTcpAck) ? 0x55667788u : 0u;
  t.flags = flags;
  t.window = 0x1234;
  t.options = std::move(options);
  return *packet::build_tcp(ip, t, payload);
}

Bytes v4_syn() { return tcp("10.77.1.2", "10.77.2.2", packet::kTcpSyn, linux_options()); }
Bytes v6_syn() { return tcp("fd77:1::2", "fd77:2::2", packet::kTcpSyn, linux_options()); }

// TCP header bytes start here (IPv4 without options / IPv6 without extension headers).
std::size_t l4_off(const Bytes& ip) { return (ip[0] >> 4) == 4 ? (ip[0] & 0x0fu) * 4u : 40u; }

// Replaces the TCP option bytes (a multiple of 4 long) and fixes the data offset and IP length.
Bytes with_raw_options(Bytes ip, const Bytes& opts) {
  const auto off = l4_off(ip);
  const std::size_t old_hlen = std::size_t{ip[off + 12]} >> 4 << 2;
  Bytes out(ip.begin(), ip.begin() + static_cast<std::ptrdiff_t>(off + 20));
  out.insert(out.end(), opts.begin(), opts.end());
  out.insert(out.end(), ip.begin() + static_cast<std::ptrdiff_t>(off + old_hlen), ip.end());
  out[off + 12] = static_cast<std::uint8_t>(((20 + opts.size()) / 4) << 4 | (out[off + 12] & 0x0f));
  if ((out[0] >> 4) == 4)
    packet::store_be16(out.data() + 2, static_cast<std::uint16_t>(out.size()));
  else
    packet::store_be16(out.data() + 4, static_cast<std::uint16_t>(out.size() - 40));
  return out;
}

// IPv4 with `n` words of IP options (NOPs, then EOL) inserted after the fixed header.
Bytes with_ip_options(Bytes ip, std::size_t words) {
  Bytes opts(words * 4, 1);
  opts.back() = 0;
  ip.insert(ip.begin() + 20, opts.begin(), opts.end());
  ip[0] = static_cast<std::uint8_t>(0x40 | (5 + words));
  packet::store_be16(ip.data() + 2, static_cast<std::uint16_t>(ip.size()));
  return ip;
}

// IPv6 with one extension header of next-header `nh` (8 bytes) in front of the TCP header.
Bytes with_v6_ext(Bytes ip, std::uint8_t nh) {
  Bytes ext{packet::kProtoTcp, 0, 0, 0, 0, 0, 0, 0};
  if (nh == 44) ext = {packet::kProtoTcp, 0, 0, 1, 0, 0, 0x12, 0x34};  // fragment, offset 0, M=1
  ip.insert(ip.begin() + 40, ext.begin(), ext.end());
  ip[6] = nh;
  packet::store_be16(ip.data() + 4, static_cast<std::uint16_t>(ip.size() - 40));
  return ip;
}

Bytes ether(const Bytes& ip, std::uint16_t ethertype, std::vector<std::uint16_t> tags = {}) {
  Bytes f{0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2};
  for (auto tpid : tags) {
    f.push_back(static_cast<std::uint8_t>(tpid >> 8));
    f.push_back(static_cast<std::uint8_t>(tpid));
    f.push_back(0x00);
    f.push_back(0x2a);  // VLAN 42
  }
  f.push_back(static_cast<std::uint8_t>(ethertype >> 8));
  f.push_back(static_cast<std::uint8_t>(ethertype));
  f.insert(f.end(), ip.begin(), ip.end());
  return f;
}
std::uint16_t ethertype_of(const Bytes& ip) { return (ip[0] >> 4) == 6 ? 0x86dd : 0x0800; }
Bytes ether(const Bytes& ip) { return ether(ip, ethertype_of(ip)); }

Bytes sll(const Bytes& ip, std::uint8_t pkttype) {
  Bytes f{0, pkttype, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0};
  f.push_back(static_cast<std::uint8_t>(ethertype_of(ip) >> 8));
  f.push_back(static_cast<std::uint8_t>(ethertype_of(ip)));
  f.insert(f.end(), ip.begin(), ip.end());
  return f;
}

Bytes sll2(const Bytes& ip, std::uint8_t pkttype) {
  Bytes f{static_cast<std::uint8_t>(ethertype_of(ip) >> 8),
          static_cast<std::uint8_t>(ethertype_of(ip)),
          0,
          0,
          0,
          0,
          0,
          3,
          0,
          1,
          pkttype,
          6,
          2,
          0,
          0,
          0,
          0,
          1,
          0,
          0};
  f.insert(f.end(), ip.begin(), ip.end());
  return f;
}

Bytes cut(Bytes b, std::size_t n) {
  b.resize(std::min(n, b.size()));
  return b;
}

// Every IP packet shape the golden tests use, each paired with whether the fast path should take it.
struct Shape {
  const char* name;
  Bytes ip;
  bool fast;
};

std::vector<Shape> shapes() {
  using packet::kTcpAck;
  using packet::kTcpRst;
  using packet::kTcpSyn;
  std::vector<Shape> s;
  s.push_back({"v4 syn", v4_syn(), true});
  s.push_back({"v4 syn no options", tcp("10.77.1.2", "10.77.2.2", kTcpSyn, {}), true});
  s.push_back(
      {"v4 syn dscp, no df", tcp("10.77.1.2", "10.77.2.2", kTcpSyn, linux_options(), {}, 0xb8, false), true});
  s.push_back({"v4 syn-ack", tcp("10.77.2.2", "10.77.1.2", kTcpSyn | kTcpAck, linux_options(7)), true});
  s.push_back({"v4 rst", tcp("10.77.2.2", "10.77.1.2", kTcpRst, {}), true});
  s.push_back({"v4 rst-ack", tcp("10.77.2.2", "10.77.1.2", kTcpRst | kTcpAck, {}), true});
  s.push_back({"v4 fin (no role)", tcp("10.77.1.2", "10.77.2.2", packet::kTcpFin, {}), true});
  s.push_back({"v4 syn+rst (no role)", tcp("10.77.1.2", "10.77.2.2", kTcpSyn | kTcpRst, {}), true});
  s.push_back({"v4 with payload", tcp("10.77.1.2", "10.77.2.2", kTcpAck, {}, Bytes(100, 0x61)), true});
  s.push_back({"v4 other addresses", tcp("192.0.2.9", "10.77.1.2", kTcpRst | kTcpAck, {}), true});
  s.push_back({"v6 syn", v6_syn(), true});
  s.push_back({"v6 syn no options", tcp("fd77:1::2", "fd77:2::2", kTcpSyn, {}), true});
  s.push_back({"v6 syn-ack tclass",
               tcp("fd77:2::2", "fd77:1::2", kTcpSyn | kTcpAck, linux_options(9), {}, 0x2e), true});
  s.push_back({"v4 ip options 1 word", with_ip_options(v4_syn(), 1), true});
  s.push_back({"v4 ip options 10 words", with_ip_options(v4_syn(), 10), true});
  {
    auto b = v4_syn();  // first fragment (MF, offset 0): L4 is there
    b[6] |= 0x20;
    s.push_back({"v4 first fragment", b, true});
  }
  {
    auto b = v4_syn();  // later fragment: no L4 header
    packet::store_be16(b.data() + 6, 0x0003);
    s.push_back({"v4 later fragment", b, false});
  }
  {
    auto b = v4_syn();
    b.insert(b.end(), {0, 0, 0, 0, 0, 0});  // Ethernet padding past the total length
    s.push_back({"v4 padded", b, true});
  }
  s.push_back({"v6 hop-by-hop", with_v6_ext(v6_syn(), 0), false});
  s.push_back({"v6 fragment header", with_v6_ext(v6_syn(), 44), false});
  // TCP options: odd but well-formed lists, then malformed ones.
  auto v4 = v4_syn();
  auto v6 = v6_syn();
  s.push_back({"two timestamps, last wins",
               with_raw_options(v4, {8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 8, 10, 0, 0, 0, 2, 0, 0, 0, 0}), true});
  s.push_back({"short timestamp ignored", with_raw_options(v4, {8, 6, 0, 0, 0, 1, 1, 1}), true});
  s.push_back({"long timestamp ignored", with_raw_options(v4, {8, 12, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0}), true});
  s.push_back({"eol then garbage", with_raw_options(v4, {2, 4, 5, 0xb4, 0, 0xff, 0xff, 0xff}), true});
  s.push_back({"timestamp after eol unseen",
               with_raw_options(v4, {0, 1, 1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 1}), true});
  s.push_back({"all nops", with_raw_options(v6, {1, 1, 1, 1, 1, 1, 1, 1}), true});
  s.push_back({"unknown kind", with_raw_options(v4, {0xfe, 4, 0xab, 0xcd}), true});
  s.push_back({"40 bytes of options",
               with_raw_options(
                   v4, Bytes{2, 4, 5, 0xb4, 8, 10, 1,  2,  3,  4,  0,  0,  0,  0,  30, 26, 1,  2,  3,  4,
                             5, 6, 7, 8,    9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24}),
               true});
  s.push_back({"option length 0", with_raw_options(v4, {2, 0, 5, 0xb4}), false});
  s.push_back({"option length 1", with_raw_options(v4, {1, 1, 2, 1}), false});
  s.push_back({"option past the end", with_raw_options(v4, {1, 1, 2, 8}), false});
  s.push_back({"option without length byte", with_raw_options(v6, {1, 1, 1, 8}), false});
  s.push_back({"timestamp past the end", with_raw_options(v4, {1, 1, 8, 10}), false});
  // Header lengths.
  {
    auto b = v4_syn();
    b[20 + 12] = 0x40;  // data offset 4
    s.push_back({"data offset 4", b, false});
  }
  {
    auto b = v4_syn();
    b[20 + 12] = 0xf0;  // data offset 15 > segment
    s.push_back({"data offset past the segment", b, false});
  }
  {
    auto b = v4_syn();
    b[0] = 0x44;  // IHL 4
    s.push_back({"ihl 4", b, false});
  }
  {
    auto b = v4_syn();
    b[0] = 0x4f;  // IHL 15 > total length
    s.push_back({"ihl past total length", b, false});
  }
  {
    auto b = v4_syn();
    packet::store_be16(b.data() + 2, 19);
    s.push_back({"total length below header", b, false});
  }
  {
    auto b = v4_syn();
    packet::store_be16(b.data() + 2, static_cast<std::uint16_t>(b.size() + 1));
    s.push_back({"total length past the frame", b, false});
  }
  {
    auto b = v6_syn();
    packet::store_be16(b.data() + 4, static_cast<std::uint16_t>(b.size() - 40 + 4));
    s.push_back({"v6 payload length past the frame", b, false});
  }
  {
    auto b = v4_syn();
    packet::store_be16(b.data() + 2, 20 + 19);  // TCP segment of 19 bytes
    s.push_back({"tcp shorter than 20", b, false});
  }
  s.push_back({"v4 cut in tcp header", cut(v4_syn(), 30), false});
  s.push_back({"v4 cut in options", cut(v4_syn(), 50), false});
  s.push_back({"v4 cut in ip header", cut(v4_syn(), 12), false});
  s.push_back({"v6 cut in header", cut(v6_syn(), 39), false});
  s.push_back({"v6 cut in options", cut(v6_syn(), 70), false});
  {
    auto b = v4_syn();
    b[0] = 0x55;  // version 5
    s.push_back({"ip version 5", b, false});
  }
  // Not TCP.
  packet::IpSpec ip4{addr("10.77.1.2"), addr("10.77.2.2")};
  packet::IpSpec ip6{addr("fd77:1::2"), addr("fd77:2::2")};
  s.push_back({"udp", *packet::build_udp(ip4, 1000, 53, Bytes(12, 7)), false});
  s.push_back({"icmp echo", *packet::icmp_echo(ip4, 7, 9), false});
  s.push_back({"icmpv6 echo", *packet::icmp_echo(ip6, 7, 9), false});
  {
    auto quote = cut(v4_syn(), 28);
    s.push_back({"icmp error quoting tcp",
                 *packet::build_icmp(packet::IpSpec{addr("10.77.1.1"), addr("10.77.1.2")}, 3, 13, 0, quote),
                 false});
  }
  {
    auto b = v4_syn();
    b[9] = 47;  // GRE
    s.push_back({"other protocol", b, false});
  }
  return s;
}

// --- golden shapes -----------------------------------------------------------------------------------

TEST(CorrelateRecords, FastPathMatchesFullDecoderOnEveryShapeAndLinkType) {
  const auto all = shapes();
  struct Link {
    std::uint32_t lt;
    std::function<Bytes(const Bytes&)> wrap;
  };
  const std::vector<Link> links = {
      {packet::kLinktypeRaw, [](const Bytes& b) { return b; }},
      {packet::kDltRaw, [](const Bytes& b) { return b; }},
      {packet::kDltEn10mb, [](const Bytes& b) { return ether(b); }},
      {packet::kDltEn10mb, [](const Bytes& b) { return ether(b, ethertype_of(b), {0x8100}); }},
      {packet::kDltEn10mb,
       [](const Bytes& b) {
         return ether(b, ethertype_of(b), {0x88a8, 0x8100});
       }},
      {packet::kDltLinuxSll, [](const Bytes& b) { return sll(b, packet::kSllOutgoing); }},
      {packet::kDltLinuxSll, [](const Bytes& b) { return sll(b, packet::kSllHost); }},
      {packet::kDltLinuxSll2, [](const Bytes& b) { return sll2(b, packet::kSllOutgoing); }},
      {packet::kDltLinuxSll2, [](const Bytes& b) { return sll2(b, packet::kSllOtherHost); }},
  };
  for (const auto& link : links) {
    Pair p;
    for (const auto& shape : all) {
      SCOPED_TRACE(std::string(shape.name) + ", link type " + std::to_string(link.lt));
      EXPECT_EQ(p.check(link.lt, link.wrap(shape.ip)), shape.fast);
    }
  }
  // The link types that name the IP version: the fast path takes the matching one only.
  for (std::uint32_t lt : {packet::kDltIpv4, packet::kDltIpv6}) {
    Pair p;
    for (const auto& shape : all) {
      SCOPED_TRACE(std::string(shape.name) + ", link type " + std::to_string(lt));
      const bool v6 = (shape.ip[0] >> 4) == 6;
      const bool right_version = (lt == packet::kDltIpv6) == v6;
      EXPECT_EQ(p.check(lt, shape.ip), shape.fast && right_version && (shape.ip[0] >> 4) != 5);
    }
  }
}

TEST(CorrelateRecords, OutgoingBitComesFromTheCookedHeader) {
  Pair p;
  Rec r;
  EXPECT_TRUE(fill_rec_fast(packet::kDltLinuxSll2, sll2(v4_syn(), packet::kSllOutgoing), p.fast.addrs, r));
  EXPECT_TRUE(r.bits & kOutgoing);
  EXPECT_TRUE(fill_rec_fast(packet::kDltLinuxSll, sll(v4_syn(), packet::kSllOutgoing), p.fast.addrs, r));
  EXPECT_TRUE(r.bits & kOutgoing);
  EXPECT_TRUE(fill_rec_fast(packet::kDltLinuxSll, sll(v4_syn(), packet::kSllHost), p.fast.addrs, r));
  EXPECT_FALSE(r.bits & kOutgoing);
  EXPECT_EQ(r.role, kRoleSyn);
  EXPECT_EQ(r.tsval, 0x01020304u);
  EXPECT_TRUE(r.bits & kHasTs);
  EXPECT_EQ(r.ipid, 0x4321u);
  EXPECT_EQ(r.ttl, 61);
}

TEST(CorrelateRecords, DeclinedLinkLayers) {
  const auto ip = v4_syn();
  Pair p;
  EXPECT_FALSE(p.check(packet::kDltEn10mb, ether(ip, 0x0806)));        // ARP
  EXPECT_FALSE(p.check(packet::kDltEn10mb, ether(ip, 0x86dd)));        // v4 inside a v6 ethertype
  EXPECT_FALSE(p.check(packet::kDltEn10mb, ether(v6_syn(), 0x0800)));  // and the reverse
  EXPECT_FALSE(p.check(packet::kDltEn10mb, ether(ip, 0x0800, {0x8100, 0x8100, 0x8100})));  // 3 tags
  EXPECT_FALSE(p.check(packet::kDltEn10mb, cut(ether(ip), 13)));                           // link truncated
  EXPECT_FALSE(p.check(packet::kDltEn10mb, cut(ether(ip, 0x0800, {0x8100}), 17)));
  EXPECT_FALSE(p.check(packet::kDltEn10mb, cut(ether(ip), 14)));  // no IP byte at all
  EXPECT_FALSE(p.check(packet::kDltLinuxSll, cut(sll(ip, 0), 15)));
  EXPECT_FALSE(p.check(packet::kDltLinuxSll2, cut(sll2(ip, 0), 19)));
  EXPECT_FALSE(p.check(packet::kLinktypeRaw, {}));
  Bytes null_frame{2, 0, 0, 0};
  null_frame.insert(null_frame.end(), ip.begin(), ip.end());
  EXPECT_FALSE(p.check(packet::kDltNull, null_frame));  // left to the full decoder
  EXPECT_FALSE(p.check(147, ip));                       // unknown link type
}

TEST(CorrelateRecords, SnaplenCutIsLeftToTheFullDecoder) {
  Pair p;
  const auto f = ether(v4_syn());
  // Cut by the snaplen (wire length says so): no anomaly, but partial L4 — the full decoder's call.
  EXPECT_FALSE(p.check(packet::kDltEn10mb, cut(f, 14 + 30), f.size()));
  EXPECT_FALSE(p.check(packet::kDltEn10mb, cut(f, 14 + 50), f.size()));
  // Whole packet captured but the wire length is larger (a trailer cut off): the record is the same.
  EXPECT_TRUE(p.check(packet::kDltEn10mb, f, f.size() + 4));
}

TEST(CorrelateRecords, AddressIdsFollowFirstSightingAcrossBothPaths) {
  // Fast and slow packets interleaved: ids must be handed out in the same order either way.
  Pair p;
  packet::IpSpec udp_ip{addr("10.9.9.9"), addr("10.77.2.2")};
  const std::vector<Bytes> frames = {
      *packet::build_udp(udp_ip, 1, 2, {}),                // slow: interns 10.9.9.9 first
      v4_syn(),                                            // fast
      tcp("10.77.2.2", "192.0.2.1", packet::kTcpRst, {}),  // fast, new dst
      *packet::icmp_echo(packet::IpSpec{addr("198.51.100.7"), addr("10.77.1.2")}, 1, 1),  // slow
      v6_syn(),
      tcp("10.77.1.2", "198.51.100.7", packet::kTcpSyn, {}),
  };
  for (const auto& f : frames) p.check(packet::kLinktypeRaw, f);
  EXPECT_EQ(p.fast.addrs.size(), 7u);  // 10.9.9.9, 10.77.2.2, 10.77.1.2, 192.0.2.1, 198.51.100.7, 2 x v6
  EXPECT_EQ(p.accepted, 4u);
  EXPECT_EQ(p.declined, 2u);
}

// --- random mutations --------------------------------------------------------------------------------

// Deterministic: a fixed seed, so a failure names the iteration that reproduces it.
TEST(CorrelateRecords, FuzzMutatedPacketsDecodeAlikeBothWays) {
  std::mt19937 rng(20261123);
  auto below = [&](std::size_t n) { return n == 0 ? std::size_t{0} : std::size_t{rng()} % n; };
  std::vector<Bytes> seeds;
  for (const auto& s : shapes()) seeds.push_back(s.ip);
  struct Link {
    std::uint32_t lt;
    Bytes (*wrap)(const Bytes&);
  };
  const Link links[] = {
      {packet::kLinktypeRaw, [](const Bytes& b) { return b; }},
      {packet::kDltEn10mb, [](const Bytes& b) { return ether(b); }},
      {packet::kDltEn10mb, [](const Bytes& b) { return ether(b, ethertype_of(b), {0x8100}); }},
      {packet::kDltLinuxSll, [](const Bytes& b) { return sll(b, packet::kSllOutgoing); }},
      {packet::kDltLinuxSll2, [](const Bytes& b) { return sll2(b, packet::kSllHost); }},
      {packet::kDltIpv4, [](const Bytes& b) { return b; }},
      {packet::kDltIpv6, [](const Bytes& b) { return b; }},
  };
  constexpr int kIterations = 60000;
  std::size_t accepted = 0, declined = 0;
  for (const auto& link : links) {
    Pair p;
    for (int it = 0; it < kIterations / static_cast<int>(std::size(links)); ++it) {
      Bytes f = link.wrap(seeds[below(seeds.size())]);
      switch (below(6)) {
        case 0: {  // a few random bytes anywhere, mostly in the headers
          const std::size_t n = 1 + below(4);
          for (std::size_t k = 0; k < n && !f.empty(); ++k) {
            f[below(std::min<std::size_t>(f.size(), 100))] = static_cast<std::uint8_t>(rng());
          }
          break;
        }
        case 1:  // single bit flips
          for (std::size_t k = 0, n = 1 + below(3); k < n && !f.empty(); ++k) {
            f[below(f.size())] ^= static_cast<std::uint8_t>(1u << below(8));
          }
          break;
        case 2:  // truncation
          f.resize(below(f.size() + 1));
          break;
        case 3: {  // a header byte set to an edge value (lengths, offsets, version/IHL, option kinds)
          static constexpr std::uint8_t kEdges[] = {0,    1,    2,    4,    5,    6,    8,   10,
                                                    0x40, 0x45, 0x4f, 0x50, 0x60, 0xf0, 0xff};
          if (!f.empty()) f[below(std::min<std::size_t>(f.size(), 80))] = kEdges[below(std::size(kEdges))];
          break;
        }
        case 4:  // extra bytes at the end
          f.insert(f.end(), below(9), static_cast<std::uint8_t>(rng()));
          break;
        default:
          break;  // unmutated
      }
      // Sometimes claim the capture was cut by the snaplen.
      const std::size_t wire = below(4) == 0 ? f.size() + below(64) : 0;
      SCOPED_TRACE("iteration " + std::to_string(it) + ", link type " + std::to_string(link.lt));
      p.check(link.lt, f, wire, std::optional<std::uint32_t>(0x1234abcd));
      if (::testing::Test::HasFailure()) return;
    }
    accepted += p.accepted;
    declined += p.declined;
  }
  // Both paths were exercised substantially.
  EXPECT_GT(accepted, 10000u);
  EXPECT_GT(declined, 10000u);
}

// Random bytes, not derived from any packet.
TEST(CorrelateRecords, FuzzRandomBytesDecodeAlikeBothWays) {
  std::mt19937 rng(7);
  for (std::uint32_t lt : {packet::kLinktypeRaw, packet::kDltEn10mb, packet::kDltLinuxSll2}) {
    Pair p;
    for (int it = 0; it < 5000; ++it) {
      Bytes f(std::size_t{rng()} % 120);
      for (auto& b : f) b = static_cast<std::uint8_t>(rng());
      // Give most of them a plausible start so that some get past the IP version check.
      if (lt == packet::kLinktypeRaw && f.size() > 9 && it % 2 == 0) {
        f[0] = 0x45;
        f[9] = packet::kProtoTcp;
      }
      p.check(lt, f);
      if (::testing::Test::HasFailure()) return;
    }
  }
}

// The two-thread decode of both sides is the one-thread decode, record for record.
TEST(CorrelateRecords, DecodeSidesMatchesOneSideAtATime) {
  synth::Path path;
  path.client_linktype = 1;
  path.server_linktype = 276;
  std::vector<synth::Outcome> outcomes(200, synth::Outcome::answered);
  for (std::size_t i = 0; i < outcomes.size(); i += 7) outcomes[i] = synth::Outcome::icmp_error;
  for (std::size_t i = 3; i < outcomes.size(); i += 11) outcomes[i] = synth::Outcome::answered_rst;
  synth::Plan plan;
  auto pair = synth::synthesize(path, plan, outcomes);
  Side c1, s1, c2, s2;
  c1.cap = c2.cap = &pair.client;
  s1.cap = s2.cap = &pair.server;
  std::optional<std::uint32_t> key = plan.key.key;
  decode_sides(c1, s1, key);
  decode_side(c2, key);
  decode_side(s2, key);
  ASSERT_EQ(c1.recs.size(), c2.recs.size());
  ASSERT_EQ(s1.recs.size(), s2.recs.size());
  ASSERT_GT(c1.recs.size(), 0u);
  for (std::size_t i = 0; i < c1.recs.size(); ++i) EXPECT_EQ(fields(c1.recs[i]), fields(c2.recs[i]));
  for (std::size_t i = 0; i < s1.recs.size(); ++i) EXPECT_EQ(fields(s1.recs[i]), fields(s2.recs[i]));
  EXPECT_EQ(c1.addrs.size(), c2.addrs.size());
  EXPECT_EQ(s1.addrs.size(), s2.addrs.size());
}

// SortedMultimap::find (fence, then one stride) against a plain scan, on sizes around the stride
// and runs of equal keys crossing stride boundaries.
TEST(CorrelateIndex, FindAgreesWithAScan) {
  std::mt19937 rng(99);
  for (std::size_t n : {0u, 1u, 2u, 63u, 64u, 65u, 128u, 129u, 1000u, 5000u}) {
    for (std::uint32_t range : {3u, 50u, 100000u}) {
      SortedMultimap m;
      std::vector<std::pair<std::uint32_t, std::uint32_t>> kv;
      for (std::uint32_t i = 0; i < n; ++i) {
        const std::uint32_t key = static_cast<std::uint32_t>(rng() % range) * 2;  // odd keys are absent
        m.add(key, i);
        kv.emplace_back(key, i);
      }
      m.seal();
      std::stable_sort(kv.begin(), kv.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
      for (std::uint32_t key = 0; key <= 2 * range + 1 && key < 400; ++key) {
        const auto r = m.find(key);
        const auto lo = std::lower_bound(kv.begin(), kv.end(), key,
                                         [](const auto& e, std::uint32_t k) { return e.first < k; });
        std::uint32_t count = 0;
        for (auto it = lo; it != kv.end() && it->first == key; ++it) ++count;
        ASSERT_EQ(r.n, count) << "n " << n << " key " << key;
        if (count) {
          EXPECT_EQ(r.pos, static_cast<std::uint32_t>(lo - kv.begin()));
          for (std::uint32_t t = 0; t < count; ++t) EXPECT_EQ(m.value(r.pos + t), (lo + t)->second);
        }
      }
      // Keys far above and below everything present.
      EXPECT_EQ(m.find(0xffffffffu).n, 0u);
    }
  }
}

}  // namespace
}  // namespace tandem::correlate::detail
