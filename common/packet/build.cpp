#include "common/packet/build.hpp"

#include <string>

#include "common/packet/bytes.hpp"
#include "common/packet/checksum.hpp"

namespace tandem::packet {
namespace {

constexpr std::size_t kIpv4HeaderLen = 20;
constexpr std::size_t kIpv6HeaderLen = 40;
constexpr std::size_t kTcpHeaderLen = 20;
constexpr std::size_t kUdpHeaderLen = 8;
constexpr std::size_t kIcmpHeaderLen = 8;

Error usage(std::string msg) { return make_error(Errc::usage, "packet", std::move(msg)); }

// Validates the IP spec for an L4 segment of l4_len bytes; returns the IP header length.
Result<std::size_t> check_ip(const IpSpec& ip, std::size_t l4_len) {
  if (ip.src.version != ip.dst.version)
    return usage("source " + ip.src.to_string() + " and destination " + ip.dst.to_string() +
                 " are of different IP versions");
  if (ip.src.is_v4()) {
    if (kIpv4HeaderLen + l4_len > 0xffff)
      return usage("IPv4 packet of " + std::to_string(kIpv4HeaderLen + l4_len) +
                   " bytes exceeds 65535");
    return kIpv4HeaderLen;
  }
  if (ip.flow_label > 0xfffff)
    return usage("flow label " + std::to_string(ip.flow_label) + " exceeds 20 bits");
  if (l4_len > 0xffff)
    return usage("IPv6 payload of " + std::to_string(l4_len) + " bytes exceeds 65535");
  return kIpv6HeaderLen;
}

// Writes the IP header (checksum included for v4). Precondition: check_ip() succeeded.
void put_ip_header(ByteWriter& w, const IpSpec& ip, std::uint8_t proto, std::size_t l4_len) {
  if (ip.src.is_v4()) {
    w.put_u8(0x45);
    w.put_u8(ip.tos);
    w.put_u16(static_cast<std::uint16_t>(kIpv4HeaderLen + l4_len));
    w.put_u16(ip.ip_id);
    w.put_u16(ip.df ? 0x4000 : 0);
    w.put_u8(ip.ttl);
    w.put_u8(proto);
    w.put_u16(0);
    w.put_bytes(std::span(ip.src.bytes.data(), 4));
    w.put_bytes(std::span(ip.dst.bytes.data(), 4));
    return;
  }
  w.put_u32((6u << 28) | (std::uint32_t{ip.tos} << 20) | ip.flow_label);
  w.put_u16(static_cast<std::uint16_t>(l4_len));
  w.put_u8(proto);
  w.put_u8(ip.ttl);
  w.put_bytes(std::span(ip.src.bytes.data(), 16));
  w.put_bytes(std::span(ip.dst.bytes.data(), 16));
}

void finish_ipv4_checksum(std::vector<std::uint8_t>& pkt) {
  const std::uint16_t c = internet_checksum(std::span(pkt.data(), kIpv4HeaderLen));
  store_be16(pkt.data() + 10, c);
}

// Fills the L4 checksum at l4_off + cksum_off over the pseudo-header (if any) and the segment.
void finish_l4_checksum(std::vector<std::uint8_t>& pkt, const IpSpec& ip, std::size_t l4_off,
                        std::size_t cksum_off, std::uint8_t proto, bool pseudo) {
  const auto seg = std::span<const std::uint8_t>(pkt).subspan(l4_off);
  std::uint32_t sum =
      pseudo ? pseudo_header_sum(ip.src, ip.dst, proto, static_cast<std::uint32_t>(seg.size())) : 0;
  std::uint16_t c = checksum_finish(checksum_add(sum, seg));
  // For UDP a computed 0 is sent as 0xffff: 0 means "no checksum" (RFC 768), forbidden in v6.
  if (proto == kProtoUdp && c == 0) c = 0xffff;
  store_be16(pkt.data() + l4_off + cksum_off, c);
}

}  // namespace

Result<std::vector<std::uint8_t>> build_tcp(const IpSpec& ip, const TcpSpec& tcp,
                                            std::span<const std::uint8_t> payload) {
  auto opts = serialize_tcp_options(tcp.options);
  if (!opts) return opts.error();
  const std::size_t tcp_hlen = kTcpHeaderLen + opts->size();
  const std::size_t l4_len = tcp_hlen + payload.size();
  auto hlen = check_ip(ip, l4_len);
  if (!hlen) return hlen.error();

  std::vector<std::uint8_t> pkt;
  pkt.reserve(*hlen + l4_len);
  ByteWriter w(pkt);
  put_ip_header(w, ip, kProtoTcp, l4_len);
  const std::size_t l4_off = w.size();
  w.put_u16(tcp.sport);
  w.put_u16(tcp.dport);
  w.put_u32(tcp.seq);
  w.put_u32(tcp.ack);
  w.put_u8(static_cast<std::uint8_t>((tcp_hlen / 4) << 4));
  w.put_u8(tcp.flags);
  w.put_u16(tcp.window);
  w.put_u16(0);
  w.put_u16(tcp.urgent);
  w.put_bytes(*opts);
  w.put_bytes(payload);
  if (ip.src.is_v4()) finish_ipv4_checksum(pkt);
  finish_l4_checksum(pkt, ip, l4_off, 16, kProtoTcp, true);
  return pkt;
}

Result<std::vector<std::uint8_t>> build_udp(const IpSpec& ip, std::uint16_t sport,
                                            std::uint16_t dport,
                                            std::span<const std::uint8_t> payload) {
  const std::size_t l4_len = kUdpHeaderLen + payload.size();
  auto hlen = check_ip(ip, l4_len);
  if (!hlen) return hlen.error();
  if (l4_len > 0xffff)
    return usage("UDP datagram of " + std::to_string(l4_len) + " bytes exceeds 65535");
  std::vector<std::uint8_t> pkt;
  pkt.reserve(*hlen + l4_len);
  ByteWriter w(pkt);
  put_ip_header(w, ip, kProtoUdp, l4_len);
  const std::size_t l4_off = w.size();
  w.put_u16(sport);
  w.put_u16(dport);
  w.put_u16(static_cast<std::uint16_t>(l4_len));
  w.put_u16(0);
  w.put_bytes(payload);
  if (ip.src.is_v4()) finish_ipv4_checksum(pkt);
  finish_l4_checksum(pkt, ip, l4_off, 6, kProtoUdp, true);
  return pkt;
}

Result<std::vector<std::uint8_t>> build_icmp(const IpSpec& ip, std::uint8_t type, std::uint8_t code,
                                             std::uint32_t rest_of_header,
                                             std::span<const std::uint8_t> payload) {
  const std::size_t l4_len = kIcmpHeaderLen + payload.size();
  auto hlen = check_ip(ip, l4_len);
  if (!hlen) return hlen.error();
  const bool v6 = !ip.src.is_v4();
  const std::uint8_t proto = v6 ? kProtoIcmpv6 : kProtoIcmp;
  std::vector<std::uint8_t> pkt;
  pkt.reserve(*hlen + l4_len);
  ByteWriter w(pkt);
  put_ip_header(w, ip, proto, l4_len);
  const std::size_t l4_off = w.size();
  w.put_u8(type);
  w.put_u8(code);
  w.put_u16(0);
  w.put_u32(rest_of_header);
  w.put_bytes(payload);
  if (!v6) finish_ipv4_checksum(pkt);
  // ICMPv4 covers only the message; ICMPv6 adds the pseudo-header (RFC 4443 §2.3).
  finish_l4_checksum(pkt, ip, l4_off, 2, proto, v6);
  return pkt;
}

Result<std::vector<std::uint8_t>> icmp_echo(const IpSpec& ip, std::uint16_t id, std::uint16_t seq,
                                            std::span<const std::uint8_t> payload) {
  const std::uint8_t type = ip.src.is_v4() ? 8 : 128;
  return build_icmp(ip, type, 0, (std::uint32_t{id} << 16) | seq, payload);
}

bool patch_tcp_probe(std::span<std::uint8_t> pkt, std::uint16_t sport, std::uint32_t seq,
                     std::uint16_t ip_id, std::uint32_t flow_label, std::optional<std::uint32_t> ack) {
  if (pkt.empty()) return false;
  std::uint8_t* p = pkt.data();
  std::size_t l4_off = 0;
  const unsigned version = p[0] >> 4;
  if (version == 4) {
    l4_off = (p[0] & 0x0fu) * 4u;
    if (l4_off < kIpv4HeaderLen || pkt.size() < l4_off + kTcpHeaderLen || p[9] != kProtoTcp)
      return false;
    const std::uint16_t old_id = load_be16(p + 4);
    store_be16(p + 10, checksum_adjust(load_be16(p + 10), old_id, ip_id));
    store_be16(p + 4, ip_id);
  } else if (version == 6) {
    l4_off = kIpv6HeaderLen;
    if (pkt.size() < l4_off + kTcpHeaderLen || p[6] != kProtoTcp) return false;
    // The flow label is in no checksum: the v6 pseudo-header leaves it out.
    const std::uint32_t w0 = load_be32(p);
    store_be32(p, (w0 & 0xfff00000u) | (flow_label & 0xfffffu));
  } else {
    return false;
  }
  std::uint8_t* t = p + l4_off;
  std::uint16_t c = load_be16(t + 16);
  c = checksum_adjust(c, load_be16(t), sport);
  c = checksum_adjust(c, load_be16(t + 4), static_cast<std::uint16_t>(seq >> 16));
  c = checksum_adjust(c, load_be16(t + 6), static_cast<std::uint16_t>(seq));
  if (ack) {
    c = checksum_adjust(c, load_be16(t + 8), static_cast<std::uint16_t>(*ack >> 16));
    c = checksum_adjust(c, load_be16(t + 10), static_cast<std::uint16_t>(*ack));
    store_be32(t + 8, *ack);
  }
  store_be16(t, sport);
  store_be32(t + 4, seq);
  store_be16(t + 16, c);
  return true;
}

}  // namespace tandem::packet
