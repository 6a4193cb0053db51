#include "controller/correlate/records.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <span>

#include "common/packet/decode.hpp"
#include "common/packet/build.hpp"
#include "common/packet/tcp_option.hpp"
#include "common/probe/identity.hpp"

namespace tandem::correlate::detail {
namespace {

using packet::Decoded;

std::uint32_t fnv1a(std::uint32_t h, std::span<const std::uint8_t> bytes) {
  for (auto b : bytes) h = (h ^ b) * 16777619u;
  return h;
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
      fp = fnv1a(fp, t.options);
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

}  // namespace

bool linktype_supported(int lt) {
  std::array<std::uint8_t, 1> none{};
  auto d = packet::decode(static_cast<std::uint32_t>(lt), std::span<const std::uint8_t>(none.data(), 0));
  return !d.anomalies.has(packet::Anomaly::link_unsupported);
}

void decode_side(Side& s, const std::optional<std::uint32_t>& key) {
  const auto& buf = s.cap->packets;
  s.recs.resize(buf.size());
  Decoded d;
  auto lt = static_cast<std::uint32_t>(s.cap->linktype);
  for (std::size_t i = 0; i < buf.size(); ++i) {
    auto p = buf[i];
    packet::decode_into(lt, p.data, p.origlen, d);
    fill_rec(d, key, s.addrs, s.recs[i]);
  }
  const auto& st = s.cap->stats;
  if (st.available) s.drops = st.dropped + st.if_dropped;
}

}  // namespace tandem::correlate::detail
