#include "common/packet/decode.hpp"

#include "common/packet/build.hpp"
#include "common/packet/bytes.hpp"
#include "common/packet/tcp_option.hpp"

namespace tandem::packet {
namespace {

constexpr std::array<std::string_view, kAnomalyCount> kAnomalyNames = {
    "link_truncated",
    "link_unsupported",
    "ip_truncated",
    "ip_bad_version",
    "ip_header_length_bad",
    "ip_total_length_short",
    "ip_total_length_long",
    "ip_ext_header_truncated",
    "ip_ext_header_limit",
    "tcp_truncated",
    "tcp_data_offset_bad",
    "tcp_data_offset_long",
    "tcp_option_length_bad",
    "udp_truncated",
    "udp_length_bad",
    "udp_length_long",
    "udp_length_mismatch",
    "icmp_truncated",
    "quoted_truncated",
    "quoted_bad_version",
    "quoted_header_length_bad",
    "quoted_total_length_short",
};
static_assert(kAnomalyCount <= 64, "AnomalySet is a 64-bit mask");

// Bounded so that a crafted chain of empty extension headers cannot make decoding slow.
constexpr int kMaxExtHeaders = 8;

constexpr std::uint16_t kEtherIpv4 = 0x0800;
constexpr std::uint16_t kEtherIpv6 = 0x86dd;
constexpr std::uint16_t kEtherVlan = 0x8100;
constexpr std::uint16_t kEtherQinq = 0x88a8;
constexpr std::uint16_t kEtherQinqOld = 0x9100;

enum class IpStatus {
  ok,
  short_header,    // fewer bytes than the fixed header (or none at all)
  bad_version,     // wrong version nibble
  ihl_small,       // IHL < 5
  ihl_past_end,    // IHL runs past the bytes (fixed fields are valid)
  total_short,     // total length < header length (fixed fields are valid)
  ext_truncated,   // v6 extension header runs past the payload (fixed fields are valid)
  ext_limit,       // too many v6 extension headers (fixed fields are valid)
};

bool fixed_fields_valid(IpStatus s) {
  return s != IpStatus::short_header && s != IpStatus::bad_version && s != IpStatus::ihl_small;
}

struct IpParse {
  IpStatus status = IpStatus::ok;
  bool length_long = false;  // the stated length runs past the bytes we have
};

// Parses an IP header at the start of `b`. expected_version 0 accepts 4 or 6.
IpParse parse_ip(std::span<const std::uint8_t> b, unsigned expected_version, IpView& ip) {
  IpParse r;
  if (b.empty()) {
    r.status = IpStatus::short_header;
    return r;
  }
  const unsigned version = b[0] >> 4;
  if ((version != 4 && version != 6) || (expected_version != 0 && version != expected_version)) {
    r.status = IpStatus::bad_version;
    return r;
  }
  if (version == 4) {
    if (b.size() < 20) {
      r.status = IpStatus::short_header;
      return r;
    }
    const std::uint8_t* p = b.data();
    ip.version = IpVersion::v4;
    const unsigned ihl = (p[0] & 0x0fu) * 4u;
    ip.tos = p[1];
    ip.total_length = load_be16(p + 2);
    ip.ip_id = load_be16(p + 4);
    const std::uint16_t frag = load_be16(p + 6);
    ip.df = (frag & 0x4000) != 0;
    ip.more_fragments = (frag & 0x2000) != 0;
    ip.frag_offset = frag & 0x1fff;
    ip.ttl = p[8];
    ip.protocol = p[9];
    ip.checksum = load_be16(p + 10);
    ip.src = IpAddr::v4_bytes(p + 12);
    ip.dst = IpAddr::v4_bytes(p + 16);
    ip.flow_label = 0;
    ip.header_length = static_cast<std::uint16_t>(ihl);
    if (ihl < 20) {
      r.status = IpStatus::ihl_small;
      return r;
    }
    if (ihl > b.size()) {
      ip.header = b;
      r.status = IpStatus::ihl_past_end;
      r.length_long = true;
      return r;
    }
    ip.header = b.first(ihl);
    if (ip.total_length < ihl) {
      r.status = IpStatus::total_short;
      return r;
    }
    // Ethernet pads short frames: trailing bytes beyond the total length are not payload.
    std::size_t end = ip.total_length;
    if (end > b.size()) {
      r.length_long = true;
      end = b.size();
    }
    ip.payload = b.subspan(ihl, end - ihl);
    return r;
  }

  if (b.size() < 40) {
    r.status = IpStatus::short_header;
    return r;
  }
  const std::uint8_t* p = b.data();
  ip.version = IpVersion::v6;
  const std::uint32_t w0 = load_be32(p);
  ip.tos = static_cast<std::uint8_t>(w0 >> 20);
  ip.flow_label = w0 & 0xfffffu;
  const std::uint16_t plen = load_be16(p + 4);
  ip.total_length = 40u + plen;
  std::uint8_t nh = p[6];
  ip.ttl = p[7];
  ip.src = IpAddr::v6_bytes(p + 8);
  ip.dst = IpAddr::v6_bytes(p + 24);
  ip.ip_id = 0;
  ip.df = false;
  ip.checksum = 0;
  ip.more_fragments = false;
  ip.frag_offset = 0;
  std::size_t end = ip.total_length;
  if (end > b.size()) {
    r.length_long = true;
    end = b.size();
  }
  std::size_t off = 40;
  for (int i = 0;; ++i) {
    const bool is_ext = nh == 0 || nh == 43 || nh == 60 || nh == 44 || nh == 51;
    if (!is_ext) break;
    if (i == kMaxExtHeaders) {
      r.status = IpStatus::ext_limit;
      break;
    }
    if (end - off < 8) {  // every extension header is at least 8 bytes
      r.status = IpStatus::ext_truncated;
      break;
    }
    const std::uint8_t* e = p + off;
    std::size_t len = 0;
    if (nh == 44) {
      len = 8;
      const std::uint16_t fo = load_be16(e + 2);
      ip.frag_offset = static_cast<std::uint16_t>(fo >> 3);
      ip.more_fragments = (fo & 1u) != 0;
      ip.ip_id = static_cast<std::uint16_t>(load_be32(e + 4));
    } else if (nh == 51) {
      len = (std::size_t{e[1]} + 2) * 4;  // AH counts 4-byte units (RFC 4302)
    } else {
      len = (std::size_t{e[1]} + 1) * 8;
    }
    if (len > end - off) {
      r.status = IpStatus::ext_truncated;
      break;
    }
    nh = e[0];
    off += len;
  }
  ip.protocol = nh;
  ip.header_length = static_cast<std::uint16_t>(off);
  ip.header = b.first(off);
  if (r.status == IpStatus::ok) ip.payload = b.subspan(off, end - off);
  return r;
}

bool is_icmp_error(bool v6, std::uint8_t type) {
  if (v6) return type >= 1 && type <= 4;
  return type == 3 || type == 4 || type == 5 || type == 11 || type == 12;
}

void decode_quoted(IcmpView& icmp, unsigned outer_version, bool cut, AnomalySet& an) {
  QuotedView& q = icmp.quoted;
  q = QuotedView{};
  const IpParse r = parse_ip(icmp.body, outer_version, q.ip);
  auto truncated = [&] {
    q.truncated = true;
    if (!cut) an.add(Anomaly::quoted_truncated);
  };
  switch (r.status) {
    case IpStatus::ok: break;
    case IpStatus::short_header:
    case IpStatus::ihl_past_end:
    case IpStatus::ext_truncated: truncated(); break;
    case IpStatus::bad_version: an.add(Anomaly::quoted_bad_version); break;
    case IpStatus::ihl_small: an.add(Anomaly::quoted_header_length_bad); break;
    case IpStatus::total_short: an.add(Anomaly::quoted_total_length_short); break;
    case IpStatus::ext_limit: an.add(Anomaly::ip_ext_header_limit); break;
  }
  icmp.has_quoted = fixed_fields_valid(r.status);
  if (r.status != IpStatus::ok || q.ip.is_later_fragment()) return;
  // The quoted length is what the original packet had; the quote is usually shorter. Only a quote
  // that stops before the first 8 L4 bytes is truncated.
  const auto l4 = q.ip.payload;
  const std::uint8_t* p = l4.data();
  const std::size_t n = l4.size();
  const std::uint8_t proto = q.ip.protocol;
  const bool is_icmp = proto == (q.ip.is_v4() ? kProtoIcmp : kProtoIcmpv6);
  if (proto == kProtoTcp || proto == kProtoUdp) {
    if (n >= 4) {
      q.has_ports = true;
      q.sport = load_be16(p);
      q.dport = load_be16(p + 2);
    }
    if (proto == kProtoTcp && n >= 8) {
      q.has_tcp_seq = true;
      q.tcp_seq = load_be32(p + 4);
    }
    if (proto == kProtoUdp && n >= 6) {
      q.has_udp_length = true;
      q.udp_length = load_be16(p + 4);
    }
    if (n < 8) truncated();
  } else if (is_icmp) {
    if (n >= 8) {
      q.has_icmp = true;
      q.icmp_type = p[0];
      q.icmp_code = p[1];
      q.icmp_id = load_be16(p + 4);
      q.icmp_seq = load_be16(p + 6);
    } else {
      truncated();
    }
  } else if (n < 8) {
    truncated();
  }
}

// Decodes L4 from d.ip.payload. cut: the payload was shortened by the capture's snaplen, so
// lengths running past it are not anomalies.
void decode_l4(Decoded& d, bool cut) {
  const auto seg = d.ip.payload;
  const std::uint8_t* p = seg.data();
  const std::size_t n = seg.size();
  auto& an = d.anomalies;
  const bool v6 = !d.ip.is_v4();
  switch (d.ip.protocol) {
    case kProtoTcp: {
      if (n < 20) {
        if (!cut) an.add(Anomaly::tcp_truncated);
        return;
      }
      TcpView& t = d.tcp;
      t.sport = load_be16(p);
      t.dport = load_be16(p + 2);
      t.seq = load_be32(p + 4);
      t.ack = load_be32(p + 8);
      t.data_offset = p[12] >> 4;
      t.reserved = p[12] & 0x0f;
      t.flags = p[13];
      t.window = load_be16(p + 14);
      t.checksum = load_be16(p + 16);
      t.urgent = load_be16(p + 18);
      t.options = {};
      t.payload = {};
      d.l4 = L4::tcp;
      const std::size_t hlen = std::size_t{t.data_offset} * 4;
      if (hlen < 20) {
        an.add(Anomaly::tcp_data_offset_bad);
        return;
      }
      if (hlen > n) {
        t.options = seg.subspan(20);
        if (!cut) an.add(Anomaly::tcp_data_offset_long);
        return;
      }
      t.options = seg.subspan(20, hlen - 20);
      t.payload = seg.subspan(hlen);
      TcpOptionReader r(t.options);
      TcpOptionView v;
      while (r.next(v)) {
      }
      if (r.malformed()) an.add(Anomaly::tcp_option_length_bad);
      return;
    }
    case kProtoUdp: {
      if (n < 8) {
        if (!cut) an.add(Anomaly::udp_truncated);
        return;
      }
      UdpView& u = d.udp;
      u.sport = load_be16(p);
      u.dport = load_be16(p + 2);
      u.length = load_be16(p + 4);
      u.checksum = load_be16(p + 6);
      u.payload = seg.subspan(8);
      d.l4 = L4::udp;
      if (u.length < 8) {
        an.add(Anomaly::udp_length_bad);
      } else if (u.length > n) {
        if (!cut) an.add(Anomaly::udp_length_long);
      } else if (u.length < n) {
        an.add(Anomaly::udp_length_mismatch);
        u.payload = seg.subspan(8, u.length - 8u);
      }
      return;
    }
    case kProtoIcmp:
    case kProtoIcmpv6: {
      // ICMPv4 inside IPv6 (or ICMPv6 inside IPv4) is not ICMP to anyone: leave it as "other".
      if ((d.ip.protocol == kProtoIcmpv6) != v6) {
        d.l4 = L4::other;
        return;
      }
      if (n < 8) {
        if (!cut) an.add(Anomaly::icmp_truncated);
        return;
      }
      IcmpView& c = d.icmp;
      c.v6 = v6;
      c.type = p[0];
      c.code = p[1];
      c.checksum = load_be16(p + 2);
      c.rest = load_be32(p + 4);
      c.body = seg.subspan(8);
      c.is_error = is_icmp_error(v6, c.type);
      c.has_quoted = false;
      d.l4 = L4::icmp;
      if (c.is_error) decode_quoted(c, v6 ? 6 : 4, cut, an);
      return;
    }
    default: d.l4 = L4::other; return;
  }
}

// Strips the link layer. Returns false when there is no IP packet to decode; sets
// expected_version to 4/6 when the link layer names the protocol, 0 when the nibble decides.
bool strip_link(std::uint32_t linktype, std::span<const std::uint8_t>& b, Decoded& d,
                unsigned& expected_version) {
  auto& link = d.link;
  auto by_ethertype = [&](std::uint16_t et) {
    link.ethertype = et;
    if (et == kEtherIpv4) {
      expected_version = 4;
      return true;
    }
    if (et == kEtherIpv6) {
      expected_version = 6;
      return true;
    }
    d.l3 = L3::non_ip;
    return false;
  };
  auto link_truncated = [&] {
    d.anomalies.add(Anomaly::link_truncated);
    return false;
  };
  switch (linktype) {
    case kDltEn10mb: {
      if (b.size() < 14) return link_truncated();
      std::size_t off = 12;
      std::uint16_t et = load_be16(b.data() + off);
      // At most two tags (802.1ad outer + 802.1Q inner); deeper stacks are not IP to us.
      for (int tags = 0; tags < 2 && (et == kEtherVlan || et == kEtherQinq || et == kEtherQinqOld);
           ++tags) {
        if (b.size() < off + 6) return link_truncated();
        if (!link.vlan) link.vlan = load_be16(b.data() + off + 2) & 0x0fff;
        off += 4;
        et = load_be16(b.data() + off);
      }
      b = b.subspan(off + 2);
      return by_ethertype(et);
    }
    case kDltLinuxSll: {
      if (b.size() < 16) return link_truncated();
      link.sll_pkttype = static_cast<std::uint8_t>(load_be16(b.data()));
      const std::uint16_t et = load_be16(b.data() + 14);
      b = b.subspan(16);
      return by_ethertype(et);
    }
    case kDltLinuxSll2: {
      if (b.size() < 20) return link_truncated();
      const std::uint16_t et = load_be16(b.data());
      link.ifindex = load_be32(b.data() + 4);
      link.sll_pkttype = b[10];
      b = b.subspan(20);
      return by_ethertype(et);
    }
    case kDltRaw:
    case kLinktypeRaw: expected_version = 0; return true;
    case kDltIpv4: expected_version = 4; return true;
    case kDltIpv6: expected_version = 6; return true;
    case kDltNull:
    case kDltLoop: {
      if (b.size() < 4) return link_truncated();
      // The address family is in the capturing host's byte order (DLT_NULL) or network order
      // (DLT_LOOP); AF_INET6 differs between BSDs and Linux. Accept any of them in either order.
      const std::uint32_t be = load_be32(b.data());
      const std::uint32_t le = (be >> 24) | ((be >> 8) & 0xff00u) | ((be << 8) & 0xff0000u) |
                               (be << 24);
      b = b.subspan(4);
      auto is = [&](std::uint32_t v) { return be == v || le == v; };
      if (is(2)) {
        expected_version = 4;
        return true;
      }
      if (is(10) || is(24) || is(28) || is(30)) {
        expected_version = 6;
        return true;
      }
      d.l3 = L3::non_ip;
      return false;
    }
    default: d.anomalies.add(Anomaly::link_unsupported); return false;
  }
}

}  // namespace

std::string_view anomaly_name(Anomaly a) {
  const auto i = static_cast<std::size_t>(a);
  return i < kAnomalyCount ? kAnomalyNames[i] : std::string_view("unknown");
}

std::optional<Anomaly> anomaly_from_name(std::string_view name) {
  for (std::size_t i = 0; i < kAnomalyCount; ++i)
    if (kAnomalyNames[i] == name) return static_cast<Anomaly>(i);
  return std::nullopt;
}

void AnomalyCounts::add(AnomalySet s) {
  std::uint64_t bits = s.bits;
  while (bits != 0) {
    const int i = __builtin_ctzll(bits);
    ++counts_[static_cast<std::size_t>(i)];
    bits &= bits - 1;
  }
}

std::uint64_t AnomalyCounts::total() const {
  std::uint64_t t = 0;
  for (auto c : counts_) t += c;
  return t;
}

void AnomalyCounts::merge(const AnomalyCounts& other) {
  for (std::size_t i = 0; i < kAnomalyCount; ++i) counts_[i] += other.counts_[i];
}

void decode_into(std::uint32_t linktype, std::span<const std::uint8_t> frame, std::size_t wire_len,
                 Decoded& d) {
  d = Decoded{};
  d.link.linktype = linktype;
  d.snap_truncated = wire_len > frame.size();
  std::span<const std::uint8_t> b = frame;
  unsigned expected = 0;
  if (!strip_link(linktype, b, d, expected)) return;

  const IpParse r = parse_ip(b, expected, d.ip);
  const bool snap = d.snap_truncated;
  auto& an = d.anomalies;
  if (fixed_fields_valid(r.status)) d.l3 = L3::ip;
  switch (r.status) {
    case IpStatus::ok: break;
    case IpStatus::short_header:
      if (!snap) an.add(Anomaly::ip_truncated);
      return;
    case IpStatus::bad_version: an.add(Anomaly::ip_bad_version); return;
    case IpStatus::ihl_small: an.add(Anomaly::ip_header_length_bad); return;
    case IpStatus::ihl_past_end:
      if (!snap) an.add(Anomaly::ip_header_length_bad);
      return;
    case IpStatus::total_short: an.add(Anomaly::ip_total_length_short); return;
    case IpStatus::ext_truncated:
      if (!(snap && r.length_long)) an.add(Anomaly::ip_ext_header_truncated);
      return;
    case IpStatus::ext_limit: an.add(Anomaly::ip_ext_header_limit); return;
  }
  const bool cut = snap && r.length_long;
  if (r.length_long && !snap) an.add(Anomaly::ip_total_length_long);
  if (d.ip.is_later_fragment()) return;
  decode_l4(d, cut);
}

Decoded decode(std::uint32_t linktype, std::span<const std::uint8_t> frame, std::size_t wire_len) {
  Decoded d;
  decode_into(linktype, frame, wire_len, d);
  return d;
}

}  // namespace tandem::packet
