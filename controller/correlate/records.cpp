#include "controller/correlate/records.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <span>
#include <system_error>
#include <thread>

#include "common/packet/build.hpp"
#include "common/packet/bytes.hpp"
#include "common/packet/decode.hpp"
#include "common/packet/tcp_option.hpp"
#include "common/probe/identity.hpp"

namespace tandem::correlate::detail {
namespace {

using packet::Decoded;

// Folds a byte string (TCP options) into a fingerprint 8 bytes per multiply, with its length (so
// that zero padding of the tail is unambiguous). Fingerprints are only compared for equality (the
// diff fast path, duplicate sightings); a byte-wise FNV-1a here was the decoder's largest cost.
std::uint32_t fold_bytes(std::uint32_t h, std::span<const std::uint8_t> bytes) {
  std::uint64_t x = (std::uint64_t{h} << 32) ^ bytes.size();
  auto mix = [&x](std::uint64_t w) {
    x = (x ^ w) * 0x9e3779b97f4a7c15ull;
    x ^= x >> 32;
  };
  const std::uint8_t* p = bytes.data();
  std::size_t n = bytes.size();
  for (; n >= 8; p += 8, n -= 8) {
    std::uint64_t w;
    std::memcpy(&w, p, 8);
    mix(w);
  }
  if (n > 0) {
    // The tail's bytes in little-endian order, without the library call a variable-length memcpy
    // compiles to (fingerprints are compared only within one process, so byte order is moot).
    std::uint64_t w = 0;
    for (std::size_t i = 0; i < n; ++i) w |= std::uint64_t{p[i]} << (8 * i);
    mix(w);
  }
  x ^= x >> 29;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 32;
  return static_cast<std::uint32_t>(x);
}
std::uint32_t fnv1a_byte(std::uint32_t h, std::uint32_t v) { return (h ^ (v & 0xffu)) * 16777619u; }

std::optional<std::uint32_t> tag_index(std::span<const std::uint8_t> payload,
                                       const std::optional<std::uint32_t>& key) {
  if (payload.size() < probe::kPayloadTagSize || std::memcmp(payload.data(), "TNDM", 4) != 0) {
    return std::nullopt;
  }
  if (key) return probe::RunKey{*key}.index_from_payload(payload);
  return std::uint32_t{payload[8]} << 24 | std::uint32_t{payload[9]} << 16 |
         std::uint32_t{payload[10]} << 8 | std::uint32_t{payload[11]};
}

bool is_echo_request(bool v6, std::uint8_t type) { return v6 ? type == 128 : type == 8; }
bool is_echo_reply(bool v6, std::uint8_t type) { return v6 ? type == 129 : type == 0; }

std::uint32_t ip_ident(const packet::IpView& ip) { return ip.is_v4() ? ip.ip_id : ip.flow_label; }

void fill_rec(const Decoded& d, const std::optional<std::uint32_t>& key, AddrTable& addrs, Rec& r) {
  r = Rec{};
  if (d.l3 != packet::L3::ip) return;
  r.src = addrs.intern(d.ip.src);
  r.dst = addrs.intern(d.ip.dst);
  r.ttl = d.ip.ttl;
  r.ipid = ip_ident(d.ip);
  if (d.link.outgoing()) r.bits |= kOutgoing;
  std::uint32_t fp = 2166136261u;
  fp = fnv1a_byte(fp, d.ip.tos);
  fp = fnv1a_byte(fp, d.ip.df ? 1 : 0);
  switch (d.l4) {
    case packet::L4::tcp: {
      const auto& t = d.tcp;
      r.sport = t.sport;
      r.dport = t.dport;
      r.primary = t.seq;
      r.ack = t.ack;
      r.flags = t.flags;
      r.bits |= kHasPrimary;
      bool syn = t.flags & packet::kTcpSyn, ackf = t.flags & packet::kTcpAck, rst = t.flags & packet::kTcpRst;
      r.role = (syn && !ackf && !rst) ? kRoleSyn : (ackf || rst) ? kRoleTcpReply : kRoleNone;
      fp = fnv1a_byte(fp, t.window >> 8);
      fp = fnv1a_byte(fp, t.window);
      fp = fold_bytes(fp, t.options);
      packet::for_each_tcp_option(t.options, [&](const packet::TcpOptionView& o) {
        if (o.kind == packet::kTcpOptTimestamp && o.data.size() == 8) {
          r.tsval = std::uint32_t{o.data[0]} << 24 | std::uint32_t{o.data[1]} << 16 |
                    std::uint32_t{o.data[2]} << 8 | o.data[3];
          r.bits |= kHasTs;
        }
      });
      break;
    }
    case packet::L4::udp: {
      r.sport = d.udp.sport;
      r.dport = d.udp.dport;
      r.role = kRoleDatagram;
      if (auto i = tag_index(d.udp.payload, key)) {
        r.primary = *i;
        r.bits |= kHasPrimary | kHasTag;
      }
      break;
    }
    case packet::L4::icmp: {
      const auto& ic = d.icmp;
      r.flags = ic.type;
      r.code = ic.code;
      if (!ic.is_error) {
        bool req = is_echo_request(ic.v6, ic.type), rep = is_echo_reply(ic.v6, ic.type);
        if (!req && !rep) break;
        r.role = req ? kRoleEchoReq : kRoleEchoReply;
        r.sport = ic.id();
        r.dport = ic.seq();
        if (auto i = tag_index(ic.body, key)) {
          r.primary = *i;
          r.bits |= kHasPrimary | kHasTag;
        } else {
          r.primary = ic.rest;
          r.bits |= kHasPrimary;
        }
        break;
      }
      if (!ic.has_quoted) break;
      const auto& q = ic.quoted;
      r.role = kRoleIcmpError;
      r.ipid = ip_ident(q.ip);
      if (q.ip.protocol == packet::kProtoTcp && q.has_ports) {
        r.bits |= kQuotedTcp;
        r.sport = q.sport;
        r.dport = q.dport;
        if (q.has_tcp_seq) {
          r.primary = q.tcp_seq;
          r.bits |= kHasPrimary;
        }
      } else if (q.ip.protocol == packet::kProtoUdp && q.has_ports) {
        r.bits |= kQuotedUdp;
        r.sport = q.sport;
        r.dport = q.dport;
        auto body = q.ip.payload.size() > 8 ? q.ip.payload.subspan(8) : std::span<const std::uint8_t>{};
        if (auto i = tag_index(body, key)) {
          r.primary = *i;
          r.bits |= kHasPrimary | kHasTag;
        }
      } else if (q.has_icmp && is_echo_request(!q.ip.is_v4(), q.icmp_type)) {
        r.bits |= kQuotedIcmp;
        r.sport = q.icmp_id;
        r.dport = q.icmp_seq;
        auto body = q.ip.payload.size() > 8 ? q.ip.payload.subspan(8) : std::span<const std::uint8_t>{};
        if (auto i = tag_index(body, key)) {
          r.primary = *i;
          r.bits |= kHasPrimary | kHasTag;
        } else {
          r.primary = std::uint32_t{q.icmp_id} << 16 | q.icmp_seq;
          r.bits |= kHasPrimary;
        }
      }
      break;
    }
    default: break;
  }
  r.fp = fp;
}

// The link layer as the fast path takes it: where the IP header starts, which version the link
// layer announced (0: the version nibble decides) and whether SLL/SLL2 says this host sent it.
// False for what only the full decoder handles (or reports as an anomaly).
struct FastLink {
  std::size_t off = 0;
  unsigned version = 0;
  bool outgoing = false;
};

bool version_of_ethertype(std::uint16_t et, unsigned& version) {
  if (et == 0x0800) version = 4;
  else if (et == 0x86dd) version = 6;
  else return false;
  return true;
}

bool fast_link(std::uint32_t linktype, std::span<const std::uint8_t> b, FastLink& l) {
  using packet::load_be16;
  switch (linktype) {
    case packet::kDltEn10mb: {
      if (b.size() < 14) return false;
      std::size_t off = 12;
      std::uint16_t et = load_be16(b.data() + off);
      // The same two-tag limit as packet::decode().
      for (int tags = 0; tags < 2 && (et == 0x8100 || et == 0x88a8 || et == 0x9100); ++tags) {
        if (b.size() < off + 6) return false;
        off += 4;
        et = load_be16(b.data() + off);
      }
      l.off = off + 2;
      return version_of_ethertype(et, l.version);
    }
    case packet::kDltLinuxSll:
      if (b.size() < 16) return false;
      l.off = 16;
      l.outgoing = b[1] == packet::kSllOutgoing;  // sll_pkttype, a big-endian u16
      return version_of_ethertype(load_be16(b.data() + 14), l.version);
    case packet::kDltLinuxSll2:
      if (b.size() < 20) return false;
      l.off = 20;
      l.outgoing = b[10] == packet::kSllOutgoing;
      return version_of_ethertype(load_be16(b.data()), l.version);
    case packet::kDltRaw:
    case packet::kLinktypeRaw: l.version = 0; return true;
    case packet::kDltIpv4: l.version = 4; return true;
    case packet::kDltIpv6: l.version = 6; return true;
    default: return false;
  }
}

IpAddr addr_v6(const std::uint8_t* p) {
  IpAddr a;
  a.version = packet::IpVersion::v6;
  std::memcpy(a.bytes.data(), p, 16);
  return a;
}

}  // namespace

bool fill_rec_fast(std::uint32_t linktype, std::span<const std::uint8_t> frame, AddrTable& addrs, Rec& r) {
  using packet::load_be16;
  using packet::load_be32;
  FastLink link;
  if (!fast_link(linktype, frame, link)) return false;
  const std::uint8_t* ip = frame.data() + link.off;
  const std::size_t n = frame.size() - link.off;
  if (n == 0) return false;
  const unsigned version = ip[0] >> 4;
  if (link.version != 0 && version != link.version) return false;
  // Every check below declines what the full decoder would flag or treat differently: a header
  // or stated length past the captured bytes (an anomaly, or a snaplen cut), a later fragment,
  // IPv6 extension headers, a bad data offset or option list, an L4 other than TCP.
  const std::uint8_t* seg = nullptr;
  std::size_t seg_len = 0;
  std::uint8_t tos = 0, ttl = 0;
  bool df = false;
  std::uint32_t ident = 0;
  if (version == 4) {
    if (n < 20) return false;
    const std::size_t ihl = (ip[0] & 0x0fu) * 4u;
    const std::size_t total = load_be16(ip + 2);
    const std::uint16_t frag = load_be16(ip + 6);
    if (ihl < 20 || ihl > n || total < ihl || total > n || (frag & 0x1fff) != 0 || ip[9] != packet::kProtoTcp) {
      return false;
    }
    tos = ip[1];
    ident = load_be16(ip + 4);
    df = (frag & 0x4000) != 0;
    ttl = ip[8];
    seg = ip + ihl;
    seg_len = total - ihl;  // bytes past the total length are Ethernet padding
  } else if (version == 6) {
    if (n < 40 || ip[6] != packet::kProtoTcp) return false;
    const std::size_t total = 40u + load_be16(ip + 4);
    if (total > n) return false;
    const std::uint32_t w0 = load_be32(ip);
    tos = static_cast<std::uint8_t>(w0 >> 20);
    ident = w0 & 0xfffffu;
    ttl = ip[7];
    seg = ip + 40;
    seg_len = total - 40;
  } else {
    return false;
  }
  if (seg_len < 20) return false;
  const std::size_t hlen = std::size_t{seg[12]} >> 4 << 2;
  if (hlen < 20 || hlen > seg_len) return false;
  // The option walk of packet::TcpOptionReader: EOL ends it, the last well-formed timestamp wins.
  const std::uint8_t* opt = seg + 20;
  const std::size_t opt_len = hlen - 20;
  bool has_ts = false;
  std::uint32_t tsval = 0;
  for (std::size_t pos = 0; pos < opt_len;) {
    const std::uint8_t kind = opt[pos];
    if (kind == packet::kTcpOptEol) break;
    if (kind == packet::kTcpOptNop) {
      ++pos;
      continue;
    }
    if (opt_len - pos < 2) return false;
    const std::uint8_t len = opt[pos + 1];
    if (len < 2 || len > opt_len - pos) return false;
    if (kind == packet::kTcpOptTimestamp && len == 10) {
      tsval = load_be32(opt + pos + 2);
      has_ts = true;
    }
    pos += len;
  }

  // Accepted: from here on the result is fill_rec()'s, in the same order (source interned first).
  r = Rec{};
  if (version == 4) {
    r.src = addrs.intern_v4(ip + 12);
    r.dst = addrs.intern_v4(ip + 16);
  } else {
    r.src = addrs.intern(addr_v6(ip + 8));
    r.dst = addrs.intern(addr_v6(ip + 24));
  }
  r.ttl = ttl;
  r.ipid = ident;
  if (link.outgoing) r.bits |= kOutgoing;
  r.sport = load_be16(seg);
  r.dport = load_be16(seg + 2);
  r.primary = load_be32(seg + 4);
  r.ack = load_be32(seg + 8);
  const std::uint8_t flags = seg[13];
  r.flags = flags;
  r.bits |= kHasPrimary;
  const bool syn = flags & packet::kTcpSyn, ackf = flags & packet::kTcpAck, rst = flags & packet::kTcpRst;
  r.role = (syn && !ackf && !rst) ? kRoleSyn : (ackf || rst) ? kRoleTcpReply : kRoleNone;
  if (has_ts) {
    r.tsval = tsval;
    r.bits |= kHasTs;
  }
  std::uint32_t fp = 2166136261u;
  fp = fnv1a_byte(fp, tos);
  fp = fnv1a_byte(fp, df ? 1 : 0);
  fp = fnv1a_byte(fp, seg[14]);  // window, high byte first
  fp = fnv1a_byte(fp, seg[15]);
  fp = fold_bytes(fp, std::span<const std::uint8_t>(opt, opt_len));
  r.fp = fp;
  return true;
}

void fill_rec_full(std::uint32_t linktype, std::span<const std::uint8_t> frame, std::size_t wire_len,
                   const std::optional<std::uint32_t>& key, AddrTable& addrs, packet::Decoded& scratch, Rec& r) {
  packet::decode_into(linktype, frame, wire_len, scratch);
  fill_rec(scratch, key, addrs, r);
}

bool linktype_supported(int lt) {
  std::array<std::uint8_t, 1> none{};
  auto d = packet::decode(static_cast<std::uint32_t>(lt), std::span<const std::uint8_t>(none.data(), 0));
  return !d.anomalies.has(packet::Anomaly::link_unsupported);
}

void populate(void* p, std::size_t bytes) {
#ifdef MADV_POPULATE_WRITE
  if (bytes < (std::size_t{1} << 20)) return;
  const auto page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto b = (reinterpret_cast<std::uintptr_t>(p) + page - 1) & ~(page - 1);
  const auto e = (reinterpret_cast<std::uintptr_t>(p) + bytes) & ~(page - 1);
  if (e > b) ::madvise(reinterpret_cast<void*>(b), e - b, MADV_POPULATE_WRITE);
#else
  (void)p;
  (void)bytes;
#endif
}

void decode_side(Side& s, const std::optional<std::uint32_t>& key) {
  const auto& buf = s.cap->packets;
  // The two sides are decoded on two threads: everything this loop writes per packet is local
  // (the records, the counters, the address table's copy), so that neither thread writes a cache
  // line the other's Side shares. Filled by push_back: resize() would write every record twice.
  std::vector<Rec> recs;
  recs.reserve(buf.size());
  populate(recs.data(), recs.capacity() * sizeof(Rec));
  AddrTable addrs = std::move(s.addrs);
  std::array<std::uint64_t, 8> role_n{}, role_out{};
  std::uint64_t bare_rsts = 0;
  Decoded d;
  auto lt = static_cast<std::uint32_t>(s.cap->linktype);
  Nanos first = buf.empty() ? 0 : buf.index().front().ts_ns, last = first;
  for (std::size_t i = 0; i < buf.size(); ++i) {
    auto p = buf[i];
    Rec r;
    if (!fill_rec_fast(lt, p.data, addrs, r)) fill_rec_full(lt, p.data, p.origlen, key, addrs, d, r);
    recs.push_back(r);
    first = std::min(first, p.ts_ns);
    last = std::max(last, p.ts_ns);
    ++role_n[r.role & 7u];
    role_out[r.role & 7u] += (r.bits & kOutgoing) != 0;
    bare_rsts += r.role == kRoleTcpReply && (r.flags & (packet::kTcpRst | packet::kTcpAck | packet::kTcpSyn)) == packet::kTcpRst;
  }
  s.recs = std::move(recs);
  s.addrs = std::move(addrs);
  s.role_n = role_n;
  s.role_out = role_out;
  s.bare_rsts = bare_rsts;
  s.first_ts = first;
  s.last_ts = last;
  const auto& st = s.cap->stats;
  if (st.available) s.drops = st.dropped + st.if_dropped;
  mark_duplicates(s);
}

namespace {
bool same_rec(const Rec& a, const Rec& b) {
  return a.primary == b.primary && a.ack == b.ack && a.ipid == b.ipid && a.tsval == b.tsval && a.fp == b.fp &&
         a.sport == b.sport && a.dport == b.dport && a.src == b.src && a.dst == b.dst && a.role == b.role &&
         a.flags == b.flags && a.code == b.code && a.ttl == b.ttl && (a.bits & ~kOutgoing) == (b.bits & ~kOutgoing);
}
}  // namespace

void mark_duplicates(Side& s) {
  // Only a capture on several interfaces at once (tcpdump -i any: Linux cooked SLL/SLL2) sees one
  // packet twice. On one interface two identical packets are two packets: a server's SYN-ACK timer
  // and its answer to a retransmitted SYN can leave byte-identical microseconds apart.
  const int lt = s.cap->linktype;
  if (!pcapio::is_linux_cooked(lt)) return;
  // SLL2 names the interface (bytes 4-7): copies of one packet come from different interfaces.
  auto ifindex = [&](std::uint32_t i) -> std::uint32_t {
    if (lt != pcapio::linktype::kLinuxSll2) return 0;
    auto d = s.cap->packets[i].data;
    return d.size() >= 8 ? std::uint32_t{d[4]} << 24 | std::uint32_t{d[5]} << 16 | std::uint32_t{d[6]} << 8 | d[7] : 0;
  };
  // The last kRing kept records: copies made by one capture on several interfaces are adjacent or
  // nearly so, and a longer look-back would cost every packet more than it finds.
  constexpr std::size_t kRing = 8;
  std::array<std::uint32_t, kRing> ring{};
  std::size_t n = 0;
  const auto& idx = s.cap->packets.index();
  for (std::uint32_t i = 0; i < s.recs.size(); ++i) {
    Rec& r = s.recs[i];
    if (r.role != kRoleNone) {
      const Nanos t = idx[i].ts_ns;
      for (std::size_t k = 0; k < std::min(n, kRing); ++k) {
        const std::uint32_t j = ring[(n - 1 - k) % kRing];
        const Nanos dt = t - idx[j].ts_ns;
        if (dt < 0 || dt > kDuplicateWindowNs) continue;
        if (!same_rec(r, s.recs[j])) continue;
        if (lt == pcapio::linktype::kLinuxSll2 && ifindex(i) == ifindex(j)) continue;
        if (s.dup_of.empty()) s.dup_of.assign(s.recs.size(), 0xffffffffu);
        s.dup_of[i] = j;
        --s.role_n[r.role & 7u];
        s.role_out[r.role & 7u] -= (r.bits & kOutgoing) != 0;
        ++s.role_n[kRoleNone];
        s.role_out[kRoleNone] += (r.bits & kOutgoing) != 0;
        r.role = kRoleNone;
        r.bits |= kDuplicate;
        ++s.duplicates;
        break;
      }
    }
    if (!(r.bits & kDuplicate)) ring[n++ % kRing] = i;
  }
}

void decode_sides(Side& client, Side& server, const std::optional<std::uint32_t>& key) {
  const bool c = client.cap->present, s = server.cap->present;
  if (c && s && !client.cap->packets.empty() && !server.cap->packets.empty()) {
    std::thread t;
    try {
      t = std::thread([&] { decode_side(server, key); });
    } catch (const std::system_error&) {
      // No thread to be had (resource limits): the same work, one side after the other.
    }
    decode_side(client, key);
    if (t.joinable()) t.join();
    else decode_side(server, key);
    return;
  }
  if (c) decode_side(client, key);
  if (s) decode_side(server, key);
}

}  // namespace tandem::correlate::detail
