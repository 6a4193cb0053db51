// Probe builders: complete IP packets (IPv4 or IPv6 header included), exactly what an IPPROTO_RAW
// socket or a pcap writer takes. Checksums are filled in. Builders allocate; the hot send loop
// builds one template per probe variant and rewrites it with patch_tcp_probe().
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "common/base/result.hpp"
#include "common/packet/addr.hpp"
#include "common/packet/tcp_option.hpp"

namespace tandem::packet {

inline constexpr std::uint8_t kProtoIcmp = 1;
inline constexpr std::uint8_t kProtoTcp = 6;
inline constexpr std::uint8_t kProtoUdp = 17;
inline constexpr std::uint8_t kProtoIcmpv6 = 58;

inline constexpr std::uint8_t kTcpFin = 0x01;
inline constexpr std::uint8_t kTcpSyn = 0x02;
inline constexpr std::uint8_t kTcpRst = 0x04;
inline constexpr std::uint8_t kTcpPsh = 0x08;
inline constexpr std::uint8_t kTcpAck = 0x10;
inline constexpr std::uint8_t kTcpUrg = 0x20;
inline constexpr std::uint8_t kTcpEce = 0x40;
inline constexpr std::uint8_t kTcpCwr = 0x80;

// The IP layer of a probe. src and dst must have the same version; it selects IPv4 or IPv6.
struct IpSpec {
  IpAddr src, dst;
  std::uint8_t tos = 0;        // DSCP << 2 | ECN; the traffic class for IPv6
  std::uint8_t ttl = 64;       // hop limit for IPv6
  std::uint16_t ip_id = 0;     // IPv4 only
  bool df = false;             // IPv4 only (IPv6 routers never fragment)
  std::uint32_t flow_label = 0;  // IPv6 only, 20 bits
};

struct TcpSpec {
  std::uint16_t sport = 0, dport = 0;
  std::uint32_t seq = 0, ack = 0;
  std::uint8_t flags = kTcpSyn;
  std::uint16_t window = 64240;
  std::uint16_t urgent = 0;
  std::vector<TcpOption> options;
};

// Errors (Errc::usage, subsystem "packet"): address versions differ, flow label above 20 bits,
// options invalid (see serialize_tcp_options), packet larger than 65535 bytes (v4) or payload
// larger than 65535 bytes (v6).
Result<std::vector<std::uint8_t>> build_tcp(const IpSpec& ip, const TcpSpec& tcp,
                                            std::span<const std::uint8_t> payload = {});
Result<std::vector<std::uint8_t>> build_udp(const IpSpec& ip, std::uint16_t sport,
                                            std::uint16_t dport,
                                            std::span<const std::uint8_t> payload = {});
// ICMPv4 for v4 addresses, ICMPv6 (checksum over the pseudo-header) for v6. rest_of_header is the
// second 32-bit word (id << 16 | seq for echo, the MTU for "packet too big", ...).
Result<std::vector<std::uint8_t>> build_icmp(const IpSpec& ip, std::uint8_t type, std::uint8_t code,
                                             std::uint32_t rest_of_header,
                                             std::span<const std::uint8_t> payload = {});
// Echo request: type 8 (v4) or 128 (v6), code 0.
Result<std::vector<std::uint8_t>> icmp_echo(const IpSpec& ip, std::uint16_t id, std::uint16_t seq,
                                            std::span<const std::uint8_t> payload = {});

// Rewrites the per-probe identity of a packet made by build_tcp() (no IPv6 extension headers) and
// fixes the checksums incrementally (RFC 1624): TCP source port and sequence number, IPv4 ID (and
// header checksum), IPv6 flow label (ignored for IPv4; ip_id ignored for IPv6). No allocation.
// Returns false, leaving pkt untouched, if pkt is not such a packet (too short, not TCP).
// `ack`, when given, rewrites the acknowledgment number too (ACK probes carry their identity there,
// because a RST answering an ACK takes its sequence number from it, RFC 9293 §3.10.7.1).
bool patch_tcp_probe(std::span<std::uint8_t> pkt, std::uint16_t sport, std::uint32_t seq,
                     std::uint16_t ip_id, std::uint32_t flow_label,
                     std::optional<std::uint32_t> ack = std::nullopt);

}  // namespace tandem::packet
