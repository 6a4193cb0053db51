// Allocation-free decoding of captured frames into views over the caller's buffer. Decoding never
// throws and never reads out of bounds; what is wrong with a packet is reported as named anomalies
// (Zeek's "weird") in Decoded::anomalies and tallied by AnomalyCounts.
//
// Ownership: every span in Decoded points into the frame passed to decode(); the caller keeps that
// buffer alive and unchanged while using the result.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "common/packet/addr.hpp"

namespace tandem::packet {

// Link types (pcap LINKTYPE_/DLT_ values) decode() understands.
inline constexpr std::uint32_t kDltNull = 0;
inline constexpr std::uint32_t kDltEn10mb = 1;
inline constexpr std::uint32_t kDltRaw = 12;          // DLT_RAW as libpcap on Linux reports it
inline constexpr std::uint32_t kLinktypeRaw = 101;    // LINKTYPE_RAW as pcap files store it
inline constexpr std::uint32_t kDltLoop = 108;          // OpenBSD loopback: DLT_NULL in network order
inline constexpr std::uint32_t kDltLinuxSll = 113;
inline constexpr std::uint32_t kDltIpv4 = 228;
inline constexpr std::uint32_t kDltIpv6 = 229;
inline constexpr std::uint32_t kDltLinuxSll2 = 276;

// Stable identifiers: names are written to reports; append new values at the end only.
enum class Anomaly : std::uint8_t {
  link_truncated,            // frame shorter than its link-layer header
  link_unsupported,          // link type decode() does not know
  ip_truncated,              // fewer bytes than the fixed IP header
  ip_bad_version,            // version nibble not 4/6, or not what the link layer announced
  ip_header_length_bad,      // IPv4 IHL below 5 or past the captured bytes
  ip_total_length_short,     // IPv4 total length below the header length
  ip_total_length_long,      // IP total/payload length beyond the frame (not a snaplen cut)
  ip_ext_header_truncated,   // IPv6 extension header past the payload
  ip_ext_header_limit,       // more IPv6 extension headers than decode() follows
  tcp_truncated,             // fewer than 20 TCP bytes
  tcp_data_offset_bad,       // data offset below 5
  tcp_data_offset_long,      // data offset past the segment
  tcp_option_length_bad,     // an option length below 2 or past the option space
  udp_truncated,             // fewer than 8 UDP bytes
  udp_length_bad,            // UDP length below 8
  udp_length_long,           // UDP length beyond the IP payload
  udp_length_mismatch,       // UDP length shorter than the IP payload (payload trimmed)
  icmp_truncated,            // fewer than 8 ICMP bytes
  quoted_truncated,          // ICMP error quotes less than inner IP header + 8 L4 bytes
  quoted_bad_version,        // quoted IP version not 4/6 or not the outer version
  quoted_header_length_bad,  // quoted IPv4 IHL below 5
  quoted_total_length_short, // quoted total length below its header length
  count_                     // not an anomaly: the number of values
};
inline constexpr std::size_t kAnomalyCount = static_cast<std::size_t>(Anomaly::count_);

std::string_view anomaly_name(Anomaly a);
std::optional<Anomaly> anomaly_from_name(std::string_view name);

// A set of anomalies as a bit mask (kAnomalyCount <= 64).
struct AnomalySet {
  std::uint64_t bits = 0;
  void add(Anomaly a) { bits |= std::uint64_t{1} << static_cast<unsigned>(a); }
  bool has(Anomaly a) const { return (bits >> static_cast<unsigned>(a)) & 1u; }
  bool empty() const { return bits == 0; }
};

// Per-anomaly counters (one table per capture / per decoding thread; not synchronized).
class AnomalyCounts {
 public:
  void add(AnomalySet s);
  void add(Anomaly a, std::uint64_t n = 1) { counts_[static_cast<std::size_t>(a)] += n; }
  std::uint64_t operator[](Anomaly a) const { return counts_[static_cast<std::size_t>(a)]; }
  std::uint64_t total() const;
  void merge(const AnomalyCounts& other);

 private:
  std::array<std::uint64_t, kAnomalyCount> counts_{};
};

// Linux cooked capture packet types (SLL / SLL2 sll_pkttype).
inline constexpr std::uint8_t kSllHost = 0;
inline constexpr std::uint8_t kSllBroadcast = 1;
inline constexpr std::uint8_t kSllMulticast = 2;
inline constexpr std::uint8_t kSllOtherHost = 3;
inline constexpr std::uint8_t kSllOutgoing = 4;

struct LinkView {
  std::uint32_t linktype = 0;
  std::uint16_t ethertype = 0;               // Ethernet / SLL protocol field (0 for raw IP)
  std::optional<std::uint16_t> vlan;         // outermost 802.1Q VLAN id, if tagged
  std::optional<std::uint8_t> sll_pkttype;   // SLL/SLL2 only: kSllOutgoing = sent by this host
  std::optional<std::uint32_t> ifindex;      // SLL2 only
  bool outgoing() const { return sll_pkttype && *sll_pkttype == kSllOutgoing; }
};

struct IpView {
  IpVersion version = IpVersion::v4;
  IpAddr src, dst;
  std::uint8_t tos = 0;          // v4 TOS / v6 traffic class: DSCP << 2 | ECN
  std::uint8_t ttl = 0;          // TTL / hop limit
  std::uint16_t ip_id = 0;       // v4 only (v6: the fragment header's id low bits are not used)
  bool df = false;               // v4 only
  bool more_fragments = false;
  std::uint16_t frag_offset = 0; // in 8-byte units; non-zero means no L4 header here
  std::uint32_t flow_label = 0;  // v6 only
  std::uint8_t protocol = 0;     // v4 protocol / v6 final next header after extension headers
  std::uint32_t total_length = 0;   // as stated: v4 total length, v6 40 + payload length
  std::uint16_t header_length = 0;  // v4 IHL*4, v6 40 + extension headers
  std::uint16_t checksum = 0;       // v4 header checksum as received
  std::span<const std::uint8_t> header;   // fixed header + options / extension headers
  std::span<const std::uint8_t> payload;  // L4 bytes, bounded by the stated length and the frame

  bool is_v4() const { return version == IpVersion::v4; }
  bool is_later_fragment() const { return frag_offset != 0; }
  std::uint8_t dscp() const { return static_cast<std::uint8_t>(tos >> 2); }
  std::uint8_t ecn() const { return static_cast<std::uint8_t>(tos & 3); }
};

struct TcpView {
  std::uint16_t sport = 0, dport = 0;
  std::uint32_t seq = 0, ack = 0;
  std::uint8_t data_offset = 0;   // in 32-bit words
  std::uint8_t flags = 0;         // CWR..FIN (the NS/AE bit is in reserved)
  std::uint8_t reserved = 0;      // the 4 bits between data offset and flags
  std::uint16_t window = 0;
  std::uint16_t checksum = 0;
  std::uint16_t urgent = 0;
  std::span<const std::uint8_t> options;  // raw option bytes; walk with TcpOptionReader
  std::span<const std::uint8_t> payload;
};

struct UdpView {
  std::uint16_t sport = 0, dport = 0;
  std::uint16_t length = 0;  // as stated
  std::uint16_t checksum = 0;
  std::span<const std::uint8_t> payload;
};

// The packet an ICMP error quotes: the inner IP header and as much L4 as present. RFC 792 promises
// the IP header + 8 bytes, enough for ports and the TCP sequence number, the UDP ports and length,
// or the ICMP echo id and sequence.
struct QuotedView {
  IpView ip;  // payload = the quoted L4 bytes (often shorter than ip.total_length says)
  bool truncated = false;  // inner IP header or the first 8 L4 bytes are incomplete
  bool has_ports = false;  // TCP/UDP with at least 4 L4 bytes
  std::uint16_t sport = 0, dport = 0;
  bool has_tcp_seq = false;
  std::uint32_t tcp_seq = 0;
  bool has_udp_length = false;
  std::uint16_t udp_length = 0;
  bool has_icmp = false;  // ICMP/ICMPv6 with at least 8 bytes
  std::uint8_t icmp_type = 0, icmp_code = 0;
  std::uint16_t icmp_id = 0, icmp_seq = 0;
};

struct IcmpView {
  bool v6 = false;
  std::uint8_t type = 0, code = 0;
  std::uint16_t checksum = 0;
  std::uint32_t rest = 0;  // second 32-bit word
  std::uint16_t id() const { return static_cast<std::uint16_t>(rest >> 16); }   // echo only
  std::uint16_t seq() const { return static_cast<std::uint16_t>(rest); }        // echo only
  std::span<const std::uint8_t> body;  // after the 8-byte header
  bool is_error = false;  // v4 types 3,4,5,11,12; v6 types 1,2,3,4
  bool has_quoted = false;  // is_error and at least the quoted IP version could be read
  QuotedView quoted;
};

enum class L3 : std::uint8_t { none, non_ip, ip };
enum class L4 : std::uint8_t { none, tcp, udp, icmp, other };

struct Decoded {
  LinkView link;
  L3 l3 = L3::none;  // non_ip: a well-formed frame carrying something else (ARP, LLDP, ...)
  IpView ip;
  L4 l4 = L4::none;  // none when the IP layer is broken, a later fragment, or L4 is truncated
  TcpView tcp;
  UdpView udp;
  IcmpView icmp;  // ICMPv4 and ICMPv6
  // The frame is shorter than what the headers announce and wire_len says it was cut by the
  // capture's snaplen: lengths past the frame are not anomalies then.
  bool snap_truncated = false;
  AnomalySet anomalies;
};

// Decodes one captured frame of the given link type. wire_len is the frame's length on the wire
// (pcap's len); 0 means "not cut" (wire_len = frame.size()).
Decoded decode(std::uint32_t linktype, std::span<const std::uint8_t> frame,
               std::size_t wire_len = 0);

// Same, into a caller-provided object (reused across packets in hot loops).
void decode_into(std::uint32_t linktype, std::span<const std::uint8_t> frame, std::size_t wire_len,
                 Decoded& out);

// Decodes a bare IP packet (as built by build_tcp() and friends).
inline Decoded decode_ip(std::span<const std::uint8_t> packet) {
  return decode(kLinktypeRaw, packet);
}

}  // namespace tandem::packet
