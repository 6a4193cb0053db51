#include <gtest/gtest.h>

#include "common/packet/build.hpp"
#include "common/packet/bytes.hpp"
#include "common/packet/checksum.hpp"
#include "common/packet/decode.hpp"
#include "common/packet/tcp_option.hpp"
#include "tests/unit/packet/hex.hpp"

namespace tandem::packet {
namespace {

using test::from_hex;

IpAddr addr(const char* s) { return *IpAddr::parse(s); }

std::vector<std::uint8_t> concat(std::vector<std::uint8_t> a, const std::vector<std::uint8_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// scapy-made: 10.77.1.2:40000 -> 10.77.2.2:21 SYN, tos 0xb8, id 0x1234, DF, Linux options.
const auto kV4Syn = from_hex(
    "45b8003c12344000400610330a4d01020a4d0202"
    "9c4000151122334400000000a002faf050b00000"
    "020405b40402080a010203040000000001030307");
const auto kV6Syn = from_hex(
    "6b81234500280640fd770001000000000000000000000002fd770002000000000000000000000002"
    "9c4000151122334400000000a002faf06d570000"
    "020405b40402080a010203040000000001030307");

void expect_v4_syn(const Decoded& d) {
  ASSERT_EQ(d.l3, L3::ip);
  EXPECT_TRUE(d.anomalies.empty()) << d.anomalies.bits;
  EXPECT_EQ(d.ip.version, IpVersion::v4);
  EXPECT_EQ(d.ip.src, addr("10.77.1.2"));
  EXPECT_EQ(d.ip.dst, addr("10.77.2.2"));
  EXPECT_EQ(d.ip.tos, 0xb8);
  EXPECT_EQ(d.ip.dscp(), 46);
  EXPECT_EQ(d.ip.ttl, 64);
  EXPECT_EQ(d.ip.ip_id, 0x1234);
  EXPECT_TRUE(d.ip.df);
  EXPECT_EQ(d.ip.protocol, kProtoTcp);
  EXPECT_EQ(d.ip.total_length, 60u);
  EXPECT_EQ(d.ip.header_length, 20);
  ASSERT_EQ(d.l4, L4::tcp);
  EXPECT_EQ(d.tcp.sport, 40000);
  EXPECT_EQ(d.tcp.dport, 21);
  EXPECT_EQ(d.tcp.seq, 0x11223344u);
  EXPECT_EQ(d.tcp.ack, 0u);
  EXPECT_EQ(d.tcp.flags, kTcpSyn);
  EXPECT_EQ(d.tcp.window, 64240);
  EXPECT_EQ(d.tcp.checksum, 0x50b0);
  EXPECT_EQ(d.tcp.options.size(), 20u);
  EXPECT_TRUE(d.tcp.payload.empty());
}

TEST(Decode, RawIpv4Syn) {
  expect_v4_syn(decode(kLinktypeRaw, kV4Syn));
  expect_v4_syn(decode(kDltRaw, kV4Syn));
  expect_v4_syn(decode(kDltIpv4, kV4Syn));
}

TEST(Decode, RawIpv6Syn) {
  for (auto lt : {kLinktypeRaw, kDltRaw, kDltIpv6}) {
    const Decoded d = decode(lt, kV6Syn);
    ASSERT_EQ(d.l3, L3::ip);
    EXPECT_TRUE(d.anomalies.empty());
    EXPECT_EQ(d.ip.version, IpVersion::v6);
    EXPECT_EQ(d.ip.src, addr("fd77:1::2"));
    EXPECT_EQ(d.ip.tos, 0xb8);
    EXPECT_EQ(d.ip.flow_label, 0x12345u);
    EXPECT_EQ(d.ip.ttl, 64);
    EXPECT_EQ(d.ip.total_length, 80u);
    ASSERT_EQ(d.l4, L4::tcp);
    EXPECT_EQ(d.tcp.seq, 0x11223344u);
    bool malformed = true;
    auto opts = parse_tcp_option_bytes(d.tcp.options, &malformed);
    EXPECT_FALSE(malformed);
    ASSERT_EQ(opts.size(), 5u);
    EXPECT_EQ(opts[4], TcpOption::wscale(7));
  }
}

TEST(Decode, LinkTypeMismatchIsBadVersion) {
  EXPECT_TRUE(decode(kDltIpv6, kV4Syn).anomalies.has(Anomaly::ip_bad_version));
  EXPECT_TRUE(decode(kDltIpv4, kV6Syn).anomalies.has(Anomaly::ip_bad_version));
}

TEST(Decode, Ethernet) {
  const auto eth = from_hex("020000000002 020000000001 0800");
  expect_v4_syn(decode(kDltEn10mb, concat(eth, kV4Syn)));
  // 802.1Q tag, VLAN 77.
  const auto vlan = from_hex("020000000002 020000000001 8100 004d 86dd");
  const Decoded d6 = decode(kDltEn10mb, concat(vlan, kV6Syn));
  EXPECT_EQ(d6.l4, L4::tcp);
  EXPECT_EQ(d6.link.vlan, 77);
  EXPECT_EQ(d6.link.ethertype, 0x86dd);
  // QinQ: 802.1ad outer + 802.1Q inner.
  const auto qinq = from_hex("020000000002 020000000001 88a8 0064 8100 004d 0800");
  const Decoded dq = decode(kDltEn10mb, concat(qinq, kV4Syn));
  EXPECT_EQ(dq.l4, L4::tcp);
  EXPECT_EQ(dq.link.vlan, 100);
  // Ethernet padding after a short IP packet is not payload.
  auto padded = concat(eth, *build_udp({addr("1.1.1.1"), addr("2.2.2.2")}, 1, 2));
  padded.resize(60);
  const Decoded dp = decode(kDltEn10mb, padded);
  EXPECT_TRUE(dp.anomalies.empty());
  EXPECT_EQ(dp.ip.payload.size(), 8u);
  EXPECT_TRUE(dp.udp.payload.empty());
}

TEST(Decode, EthernetNonIpAndTruncation) {
  const Decoded arp = decode(kDltEn10mb, from_hex("ffffffffffff 020000000001 0806 00010800"));
  EXPECT_EQ(arp.l3, L3::non_ip);
  EXPECT_TRUE(arp.anomalies.empty());
  EXPECT_TRUE(decode(kDltEn10mb, from_hex("ffffffffffff0200")).anomalies.has(
      Anomaly::link_truncated));
  EXPECT_TRUE(decode(kDltEn10mb, from_hex("ffffffffffff 020000000001 8100 00")).anomalies.has(
      Anomaly::link_truncated));
}

TEST(Decode, LinuxSllExposesDirection) {
  // Outgoing (4), ARPHRD_ETHER, 6-byte address, IPv4.
  const auto sll = from_hex("0004 0001 0006 020000000001 0000 0800");
  const Decoded d = decode(kDltLinuxSll, concat(sll, kV4Syn));
  expect_v4_syn(d);
  EXPECT_TRUE(d.link.outgoing());
  EXPECT_EQ(d.link.sll_pkttype, kSllOutgoing);
  const auto in = from_hex("0000 0001 0006 020000000001 0000 86dd");
  const Decoded d6 = decode(kDltLinuxSll, concat(in, kV6Syn));
  EXPECT_EQ(d6.l4, L4::tcp);
  EXPECT_FALSE(d6.link.outgoing());
  EXPECT_EQ(d6.link.sll_pkttype, kSllHost);
  EXPECT_TRUE(decode(kDltLinuxSll, from_hex("0004000100")).anomalies.has(Anomaly::link_truncated));
}

TEST(Decode, LinuxSll2) {
  // protocol, reserved, ifindex 3, ARPHRD_ETHER, pkttype outgoing, addr len 6, address.
  const auto sll2 = from_hex("0800 0000 00000003 0001 04 06 0200000000010000");
  const Decoded d = decode(kDltLinuxSll2, concat(sll2, kV4Syn));
  expect_v4_syn(d);
  EXPECT_TRUE(d.link.outgoing());
  EXPECT_EQ(d.link.ifindex, 3u);
  EXPECT_TRUE(decode(kDltLinuxSll2, from_hex("0800 0000 00000003 0001 04 06 02"))
                  .anomalies.has(Anomaly::link_truncated));
}

TEST(Decode, NullAndLoop) {
  expect_v4_syn(decode(kDltNull, concat(from_hex("02000000"), kV4Syn)));  // little-endian AF_INET
  expect_v4_syn(decode(kDltNull, concat(from_hex("00000002"), kV4Syn)));  // big-endian AF_INET
  for (const char* fam : {"1e000000", "18000000", "1c000000", "0a000000"})
    EXPECT_EQ(decode(kDltNull, concat(from_hex(fam), kV6Syn)).l4, L4::tcp) << fam;
  expect_v4_syn(decode(kDltLoop, concat(from_hex("00000002"), kV4Syn)));
  EXPECT_EQ(decode(kDltNull, concat(from_hex("07000000"), kV4Syn)).l3, L3::non_ip);
  EXPECT_TRUE(decode(kDltNull, from_hex("0200")).anomalies.has(Anomaly::link_truncated));
}

TEST(Decode, UnknownLinkType) {
  EXPECT_TRUE(decode(147, kV4Syn).anomalies.has(Anomaly::link_unsupported));
}

TEST(Decode, UdpAndIcmpEcho) {
  const IpSpec ip4{addr("10.0.0.1"), addr("10.0.0.2")};
  const IpSpec ip6{addr("fd00::1"), addr("fd00::2")};
  const std::vector<std::uint8_t> pl = {1, 2, 3};
  for (const IpSpec& ip : {ip4, ip6}) {
    const auto u = *build_udp(ip, 1234, 53, pl);
    const Decoded du = decode_ip(u);
    ASSERT_EQ(du.l4, L4::udp);
    EXPECT_TRUE(du.anomalies.empty());
    EXPECT_EQ(du.udp.sport, 1234);
    EXPECT_EQ(du.udp.dport, 53);
    EXPECT_EQ(du.udp.length, 11);
    EXPECT_EQ(du.udp.payload.size(), 3u);

    const auto e = *icmp_echo(ip, 0xabcd, 42, pl);
    const Decoded de = decode_ip(e);
    ASSERT_EQ(de.l4, L4::icmp);
    EXPECT_TRUE(de.anomalies.empty());
    EXPECT_EQ(de.icmp.v6, !ip.src.is_v4());
    EXPECT_EQ(de.icmp.type, ip.src.is_v4() ? 8 : 128);
    EXPECT_EQ(de.icmp.id(), 0xabcd);
    EXPECT_EQ(de.icmp.seq(), 42);
    EXPECT_FALSE(de.icmp.is_error);
    EXPECT_EQ(de.icmp.body.size(), 3u);
  }
}

TEST(Decode, Icmpv4TimeExceededQuotesTcp) {
  // scapy: router 10.77.1.1 reports TTL expiry of the SYN, quoting IP header + 8 bytes.
  const auto p = from_hex(
      "4500003800090000400164200a4d01010a4d01020b00144400000000"
      "450000281234400001064fff0a4d01020a4d02029c40001511223344");
  const Decoded d = decode_ip(p);
  ASSERT_EQ(d.l4, L4::icmp);
  EXPECT_TRUE(d.anomalies.empty());
  EXPECT_TRUE(d.icmp.is_error);
  ASSERT_TRUE(d.icmp.has_quoted);
  const QuotedView& q = d.icmp.quoted;
  EXPECT_FALSE(q.truncated);
  EXPECT_EQ(q.ip.src, addr("10.77.1.2"));
  EXPECT_EQ(q.ip.dst, addr("10.77.2.2"));
  EXPECT_EQ(q.ip.ttl, 1);
  EXPECT_EQ(q.ip.ip_id, 0x1234);
  EXPECT_EQ(q.ip.total_length, 40u);  // the original length, not the quote's
  EXPECT_TRUE(q.has_ports);
  EXPECT_EQ(q.sport, 40000);
  EXPECT_EQ(q.dport, 21);
  EXPECT_TRUE(q.has_tcp_seq);
  EXPECT_EQ(q.tcp_seq, 0x11223344u);
}

TEST(Decode, Icmpv6UnreachQuotesUdp) {
  const auto p = from_hex(
      "60000000003b3a40fd770001000000000000000000000001fd770001000000000000000000000002"
      "010492a100000000"
      "60000000000b1101fd770001000000000000000000000002fd770002000000000000000000000002"
      "829a829b000b0d3278797a");
  const Decoded d = decode_ip(p);
  ASSERT_EQ(d.l4, L4::icmp);
  EXPECT_TRUE(d.anomalies.empty());
  EXPECT_TRUE(d.icmp.v6);
  EXPECT_EQ(d.icmp.type, 1);
  EXPECT_EQ(d.icmp.code, 4);
  ASSERT_TRUE(d.icmp.has_quoted);
  const QuotedView& q = d.icmp.quoted;
  EXPECT_FALSE(q.truncated);
  EXPECT_EQ(q.ip.dst, addr("fd77:2::2"));
  EXPECT_EQ(q.sport, 33434);
  EXPECT_EQ(q.dport, 33435);
  EXPECT_TRUE(q.has_udp_length);
  EXPECT_EQ(q.udp_length, 11);
}

TEST(Decode, IcmpErrorQuotingEcho) {
  const IpSpec ip{addr("10.0.0.1"), addr("10.0.0.2")};
  const auto echo = *icmp_echo(ip, 0x1111, 0x2222);
  const auto err = *build_icmp({addr("10.0.0.9"), addr("10.0.0.1")}, 3, 13, 0, echo);
  const Decoded d = decode_ip(err);
  ASSERT_TRUE(d.icmp.has_quoted);
  EXPECT_TRUE(d.icmp.quoted.has_icmp);
  EXPECT_EQ(d.icmp.quoted.icmp_type, 8);
  EXPECT_EQ(d.icmp.quoted.icmp_id, 0x1111);
  EXPECT_EQ(d.icmp.quoted.icmp_seq, 0x2222);
}

// --- malformed lengths: each too short and too long ---

std::vector<std::uint8_t> v4_syn() { return kV4Syn; }

void fix_ipv4_checksum(std::vector<std::uint8_t>& p) {
  store_be16(p.data() + 10, 0);
  store_be16(p.data() + 10, internet_checksum(std::span(p).first(20)));
}

TEST(DecodeMalformed, Ipv4Truncated) {
  for (std::size_t n : {0, 1, 19}) {
    auto p = v4_syn();
    p.resize(n);
    const Decoded d = decode_ip(p);
    EXPECT_TRUE(d.anomalies.has(Anomaly::ip_truncated)) << n;
    EXPECT_EQ(d.l4, L4::none);
  }
}

TEST(DecodeMalformed, BadVersion) {
  auto p = v4_syn();
  p[0] = 0x55;
  EXPECT_TRUE(decode_ip(p).anomalies.has(Anomaly::ip_bad_version));
  EXPECT_EQ(decode_ip(p).l3, L3::none);
}

TEST(DecodeMalformed, IhlTooShortAndTooLong) {
  auto p = v4_syn();
  p[0] = 0x44;  // 16 bytes
  EXPECT_TRUE(decode_ip(p).anomalies.has(Anomaly::ip_header_length_bad));
  p[0] = 0x40;
  EXPECT_TRUE(decode_ip(p).anomalies.has(Anomaly::ip_header_length_bad));
  auto q = v4_syn();
  q.resize(28);
  q[0] = 0x4f;  // 60 bytes of header, 28 present
  const Decoded d = decode_ip(q);
  EXPECT_TRUE(d.anomalies.has(Anomaly::ip_header_length_bad));
  EXPECT_EQ(d.l3, L3::ip);  // the fixed fields are still usable
  EXPECT_EQ(d.l4, L4::none);
  // IHL 6 with 4 option bytes: the TCP header moves by 4.
  auto r = v4_syn();
  r.insert(r.begin() + 20, {1, 1, 1, 0});
  r[0] = 0x46;
  store_be16(r.data() + 2, static_cast<std::uint16_t>(r.size()));
  const Decoded dr = decode_ip(r);
  EXPECT_TRUE(dr.anomalies.empty());
  EXPECT_EQ(dr.tcp.sport, 40000);
}

TEST(DecodeMalformed, TotalLengthTooShortAndTooLong) {
  auto p = v4_syn();
  store_be16(p.data() + 2, 19);
  EXPECT_TRUE(decode_ip(p).anomalies.has(Anomaly::ip_total_length_short));
  EXPECT_EQ(decode_ip(p).l4, L4::none);
  store_be16(p.data() + 2, 61);
  const Decoded d = decode_ip(p);
  EXPECT_TRUE(d.anomalies.has(Anomaly::ip_total_length_long));
  EXPECT_EQ(d.l4, L4::tcp);  // still decoded from what is there
  // Total length cutting into the TCP header.
  store_be16(p.data() + 2, 30);
  EXPECT_TRUE(decode_ip(p).anomalies.has(Anomaly::tcp_truncated));
  // Cut by the snaplen (wire_len larger): no anomaly, flagged snap_truncated.
  auto s = v4_syn();
  s.resize(34);
  const Decoded ds = decode(kLinktypeRaw, s, 60);
  EXPECT_TRUE(ds.snap_truncated);
  EXPECT_TRUE(ds.anomalies.empty());
  EXPECT_EQ(ds.l3, L3::ip);
}

TEST(DecodeMalformed, Ipv6PayloadLengthShortAndLong) {
  auto p = kV6Syn;
  store_be16(p.data() + 4, 10);  // shorter than the TCP header
  EXPECT_TRUE(decode_ip(p).anomalies.has(Anomaly::tcp_truncated));
  store_be16(p.data() + 4, 41);
  const Decoded d = decode_ip(p);
  EXPECT_TRUE(d.anomalies.has(Anomaly::ip_total_length_long));
  EXPECT_EQ(d.l4, L4::tcp);
  auto t = kV6Syn;
  t.resize(39);
  EXPECT_TRUE(decode_ip(t).anomalies.has(Anomaly::ip_truncated));
}

// Inserts an IPv6 extension header of type `nh` before the TCP header.
std::vector<std::uint8_t> with_ext(std::uint8_t nh, std::vector<std::uint8_t> ext) {
  auto p = kV6Syn;
  ext[0] = p[6];
  p[6] = nh;
  p.insert(p.begin() + 40, ext.begin(), ext.end());
  store_be16(p.data() + 4, static_cast<std::uint16_t>(p.size() - 40));
  return p;
}

TEST(DecodeIpv6Ext, SkipsHopByHopRoutingDestFragment) {
  const Decoded hbh = decode_ip(with_ext(0, from_hex("00 00 010400000000")));
  EXPECT_TRUE(hbh.anomalies.empty());
  EXPECT_EQ(hbh.ip.protocol, kProtoTcp);
  EXPECT_EQ(hbh.ip.header_length, 48);
  EXPECT_EQ(hbh.tcp.sport, 40000);
  const Decoded dst = decode_ip(with_ext(60, from_hex("00 01 0000000000000000 0000000000000000")));
  EXPECT_EQ(dst.ip.header_length, 56);
  EXPECT_EQ(dst.l4, L4::tcp);
  const Decoded rt = decode_ip(with_ext(43, from_hex("00 00 0000000000000000")));
  EXPECT_EQ(rt.l4, L4::tcp);
  // First fragment (offset 0, M=1): L4 still decoded.
  const Decoded f0 = decode_ip(with_ext(44, from_hex("00 00 0001 deadbeef")));
  EXPECT_EQ(f0.l4, L4::tcp);
  EXPECT_TRUE(f0.ip.more_fragments);
  // Later fragment: no L4 header here, and that is not an anomaly.
  const Decoded f1 = decode_ip(with_ext(44, from_hex("00 00 0010 deadbeef")));
  EXPECT_EQ(f1.l4, L4::none);
  EXPECT_EQ(f1.ip.frag_offset, 2);
  EXPECT_TRUE(f1.anomalies.empty());
}

TEST(DecodeIpv6Ext, ExtensionLengthPastEndAndChainLimit) {
  auto p = with_ext(0, from_hex("00 05 010400000000"));  // claims 48 bytes, 8 + TCP present
  p.resize(40 + 8 + 20);
  store_be16(p.data() + 4, 28);
  EXPECT_TRUE(decode_ip(p).anomalies.has(Anomaly::ip_ext_header_truncated));
  auto q = kV6Syn;
  q[6] = 60;
  q.resize(44);  // dest-opts header cut to 4 bytes
  store_be16(q.data() + 4, 4);
  EXPECT_TRUE(decode_ip(q).anomalies.has(Anomaly::ip_ext_header_truncated));
  // Nine empty dest-opts headers chained: bounded walk.
  auto r = kV6Syn;
  r.resize(40);
  r[6] = 60;
  for (int i = 0; i < 9; ++i) {
    const auto e = from_hex("3c00000000000000");
    r.insert(r.end(), e.begin(), e.end());
  }
  store_be16(r.data() + 4, 72);
  EXPECT_TRUE(decode_ip(r).anomalies.has(Anomaly::ip_ext_header_limit));
}

TEST(DecodeMalformed, TcpDataOffset) {
  auto p = v4_syn();
  p[32] = 0x40;  // 16 bytes
  Decoded d = decode_ip(p);
  EXPECT_TRUE(d.anomalies.has(Anomaly::tcp_data_offset_bad));
  EXPECT_EQ(d.tcp.sport, 40000);  // the fixed fields were there
  EXPECT_TRUE(d.tcp.options.empty());
  p[32] = 0xb0;  // 44 bytes, 40 present
  d = decode_ip(p);
  EXPECT_TRUE(d.anomalies.has(Anomaly::tcp_data_offset_long));
  auto t = v4_syn();
  t.resize(39);
  store_be16(t.data() + 2, 39);
  EXPECT_TRUE(decode_ip(t).anomalies.has(Anomaly::tcp_truncated));
}

TEST(DecodeMalformed, TcpEachOptionLength) {
  // Offsets of the length bytes of mss, sack_perm, timestamp, wscale in kV4Syn.
  for (std::size_t at : {41u, 45u, 47u, 58u}) {
    for (int bad : {0, 1, 30}) {
      auto p = v4_syn();
      p[at] = static_cast<std::uint8_t>(bad);
      const Decoded d = decode_ip(p);
      EXPECT_TRUE(d.anomalies.has(Anomaly::tcp_option_length_bad))
          << "offset " << at << " len " << bad;
      EXPECT_EQ(d.l4, L4::tcp);
    }
  }
}

TEST(DecodeMalformed, UdpLength) {
  const IpSpec ip{addr("10.0.0.1"), addr("10.0.0.2")};
  auto u = *build_udp(ip, 1, 2, std::vector<std::uint8_t>(4, 0));
  auto p = u;
  store_be16(p.data() + 24, 7);
  EXPECT_TRUE(decode_ip(p).anomalies.has(Anomaly::udp_length_bad));
  store_be16(p.data() + 24, 13);
  EXPECT_TRUE(decode_ip(p).anomalies.has(Anomaly::udp_length_long));
  store_be16(p.data() + 24, 10);
  const Decoded d = decode_ip(p);
  EXPECT_TRUE(d.anomalies.has(Anomaly::udp_length_mismatch));
  EXPECT_EQ(d.udp.payload.size(), 2u);
  auto t = u;
  t.resize(27);
  store_be16(t.data() + 2, 27);
  fix_ipv4_checksum(t);
  EXPECT_TRUE(decode_ip(t).anomalies.has(Anomaly::udp_truncated));
}

TEST(DecodeMalformed, IcmpTruncated) {
  const IpSpec ip{addr("10.0.0.1"), addr("10.0.0.2")};
  auto e = *icmp_echo(ip, 1, 2);
  e.resize(27);
  store_be16(e.data() + 2, 27);
  EXPECT_TRUE(decode_ip(e).anomalies.has(Anomaly::icmp_truncated));
}

std::vector<std::uint8_t> time_exceeded(const std::vector<std::uint8_t>& quote) {
  const IpSpec r{addr("10.77.1.1"), addr("10.77.1.2")};
  return *build_icmp(r, 11, 0, 0, quote);
}

TEST(DecodeQuoted, InnerLengths) {
  // Quote cut inside the inner IP header.
  auto q = v4_syn();
  q.resize(12);
  Decoded d = decode_ip(time_exceeded(q));
  EXPECT_TRUE(d.anomalies.has(Anomaly::quoted_truncated));
  EXPECT_FALSE(d.icmp.has_quoted);
  // IP header + 4 bytes: ports but no sequence number.
  q = v4_syn();
  q.resize(24);
  d = decode_ip(time_exceeded(q));
  EXPECT_TRUE(d.anomalies.has(Anomaly::quoted_truncated));
  EXPECT_TRUE(d.icmp.quoted.truncated);
  EXPECT_TRUE(d.icmp.quoted.has_ports);
  EXPECT_FALSE(d.icmp.quoted.has_tcp_seq);
  // Inner IHL too short and too long.
  q = v4_syn();
  q.resize(28);
  q[0] = 0x43;
  EXPECT_TRUE(decode_ip(time_exceeded(q)).anomalies.has(Anomaly::quoted_header_length_bad));
  q[0] = 0x4f;
  d = decode_ip(time_exceeded(q));
  EXPECT_TRUE(d.anomalies.has(Anomaly::quoted_truncated));
  EXPECT_TRUE(d.icmp.has_quoted);  // addresses are still there
  // Inner total length shorter than its header; longer is normal (the quote is partial).
  q = v4_syn();
  q.resize(28);
  store_be16(q.data() + 2, 12);
  EXPECT_TRUE(decode_ip(time_exceeded(q)).anomalies.has(Anomaly::quoted_total_length_short));
  store_be16(q.data() + 2, 1500);
  d = decode_ip(time_exceeded(q));
  EXPECT_TRUE(d.anomalies.empty());
  EXPECT_EQ(d.icmp.quoted.tcp_seq, 0x11223344u);
  // Inner version other than the outer one.
  EXPECT_TRUE(decode_ip(time_exceeded(kV6Syn)).anomalies.has(Anomaly::quoted_bad_version));
  // Inner v6 payload length shorter than the quoted TCP bytes: trimmed to the stated length.
  auto q6 = kV6Syn;
  store_be16(q6.data() + 4, 4);
  const auto err6 = *build_icmp({addr("fd77:1::1"), addr("fd77:1::2")}, 3, 0, 0, q6);
  d = decode_ip(err6);
  EXPECT_TRUE(d.anomalies.has(Anomaly::quoted_truncated));
  EXPECT_TRUE(d.icmp.quoted.has_ports);
}

TEST(Anomaly, NamesAreStableAndUnique) {
  EXPECT_EQ(anomaly_name(Anomaly::ip_truncated), "ip_truncated");
  EXPECT_EQ(anomaly_name(Anomaly::quoted_total_length_short), "quoted_total_length_short");
  for (std::size_t i = 0; i < kAnomalyCount; ++i) {
    const auto a = static_cast<Anomaly>(i);
    EXPECT_EQ(anomaly_from_name(anomaly_name(a)), a);
  }
  EXPECT_FALSE(anomaly_from_name("nope").has_value());
}

TEST(AnomalyCounts, CountsSets) {
  AnomalyCounts c;
  AnomalySet s;
  s.add(Anomaly::tcp_truncated);
  s.add(Anomaly::ip_total_length_long);
  c.add(s);
  c.add(s);
  c.add(Anomaly::udp_length_bad, 5);
  EXPECT_EQ(c[Anomaly::tcp_truncated], 2u);
  EXPECT_EQ(c[Anomaly::ip_total_length_long], 2u);
  EXPECT_EQ(c.total(), 9u);
  AnomalyCounts c2;
  c2.merge(c);
  EXPECT_EQ(c2[Anomaly::udp_length_bad], 5u);
}

TEST(Decode, EveryPrefixOfEveryGoldenIsSafe) {
  // Truncating anywhere must never read out of bounds (ASan build) or claim an intact packet.
  for (const auto& full : {kV4Syn, kV6Syn}) {
    for (std::size_t n = 0; n < full.size(); ++n) {
      const std::vector<std::uint8_t> p(full.begin(), full.begin() + static_cast<long>(n));
      const Decoded d = decode_ip(p);
      EXPECT_FALSE(d.anomalies.empty()) << n;
      const Decoded s = decode(kLinktypeRaw, p, full.size());
      EXPECT_TRUE(s.anomalies.empty()) << n;  // a snaplen cut is not an anomaly
    }
  }
}

}  // namespace
}  // namespace tandem::packet
