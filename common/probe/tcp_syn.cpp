// tcp-syn: a TCP segment (SYN by default) carrying the spec's options. Identity: the sequence
// number (a SYN-ACK or RST acknowledges seq + the segment's length, SYN and FIN counting one; an
// ICMP error quotes seq), checked against the source port; IP ID / flow label ride along for the
// far-end correlation. A probe with ACK set carries the identity in its acknowledgment number too:
// the RST that answers it takes its sequence number from there and acknowledges nothing (RFC 9293
// §3.10.7.1), which is how nmap's ACK scan is answered.
#include <cstring>

#include "common/packet/build.hpp"
#include "common/probe/probe_module.hpp"
#include "common/probe/modules.hpp"

namespace tandem::probe {
namespace {

class TcpSynModule final : public ProbeModule {
 public:
  TcpSynModule(const ProbeSpec& spec, ProbeEndpoints ends, RunKey key, std::uint32_t count,
               std::vector<std::uint8_t> tmpl)
      : spec_(spec), ends_(ends), key_(key), count_(count), template_(std::move(tmpl)),
        name_(tcp_module_name(spec.tcp_flags)), has_ack_(spec.tcp_flags & packet::kTcpAck),
        advance_(static_cast<std::uint32_t>(spec.payload_len) + ((spec.tcp_flags & packet::kTcpSyn) ? 1u : 0u) +
                 ((spec.tcp_flags & packet::kTcpFin) ? 1u : 0u)) {}

  std::string_view name() const override { return name_; }

  void build(std::uint32_t index, std::vector<std::uint8_t>& out) override {
    out.assign(template_.begin(), template_.end());
    const std::uint32_t seq = key_.tcp_seq(index);
    packet::patch_tcp_probe(out, sport(index), seq, key_.ip_id(index), key_.flow_label(index),
                            has_ack_ ? std::optional<std::uint32_t>(seq) : std::nullopt);
  }

  std::uint16_t sport(std::uint32_t index) const override { return policy_sport(spec_.sport, key_, index); }

  std::optional<Observation> recognise(const packet::Decoded& d) const override {
    if (d.l3 != packet::L3::ip) return std::nullopt;
    if (d.l4 == packet::L4::tcp) {
      const auto& t = d.tcp;
      if (d.ip.src == ends_.src && d.ip.dst == ends_.dst && t.dport == spec_.dport) {
        // Our own probe on its way out.
        std::uint32_t index = key_.index_from_seq(t.seq);
        if (!valid(index) || t.sport != sport(index)) return std::nullopt;
        return Observation{Observation::What::own_probe, index, ReplyKind::none, 0, 0, d.ip.src};
      }
      if (d.ip.src == ends_.dst && d.ip.dst == ends_.src && t.sport == spec_.dport) {
        // A RST without ACK answers a segment that carried ACK: its seq is that segment's ack.
        const bool rst_to_ack = has_ack_ && (t.flags & packet::kTcpRst) && !(t.flags & packet::kTcpAck);
        std::uint32_t index = rst_to_ack ? key_.index_from_seq(t.seq) : key_.index_from_seq(t.ack - advance_);
        if (!valid(index) || t.dport != sport(index)) return std::nullopt;
        ReplyKind kind = (t.flags & packet::kTcpRst)                                 ? ReplyKind::rst
                         : (t.flags & (packet::kTcpSyn | packet::kTcpAck)) ==
                                   (packet::kTcpSyn | packet::kTcpAck)               ? ReplyKind::syn_ack
                                                                                     : ReplyKind::tcp_other;
        return Observation{Observation::What::reply, index, kind, 0, 0, d.ip.src};
      }
      return std::nullopt;
    }
    if (d.l4 == packet::L4::icmp && d.icmp.is_error && d.icmp.has_quoted && d.ip.dst == ends_.src) {
      const auto& q = d.icmp.quoted;
      if (q.ip.protocol != packet::kProtoTcp || q.ip.src != ends_.src || q.ip.dst != ends_.dst) return std::nullopt;
      if (!q.has_ports || !q.has_tcp_seq || q.dport != spec_.dport) return std::nullopt;
      std::uint32_t index = key_.index_from_seq(q.tcp_seq);
      if (!valid(index) || q.sport != sport(index)) return std::nullopt;
      return Observation{Observation::What::icmp_error, index, ReplyKind::icmp_error, d.icmp.type, d.icmp.code,
                         d.ip.src};
    }
    return std::nullopt;
  }

  std::string bpf_filter() const override {
    return host_pair_filter("tcp", ends_, spec_.dport);
  }

 private:
  bool valid(std::uint32_t index) const { return count_ == 0 || index < count_; }

  ProbeSpec spec_;
  ProbeEndpoints ends_;
  RunKey key_;
  std::uint32_t count_;
  std::vector<std::uint8_t> template_;
  std::string name_;
  bool has_ack_;
  std::uint32_t advance_;  // how far a reply's ack is past the probe's seq
};

}  // namespace

std::string tcp_module_name(std::uint8_t flags) {
  switch (flags) {
    case packet::kTcpSyn: return "tcp-syn";
    case packet::kTcpAck: return "tcp-ack";
    case packet::kTcpFin: return "tcp-fin";
    case 0: return "tcp-null";
    case packet::kTcpFin | packet::kTcpPsh | packet::kTcpUrg: return "tcp-xmas";
    default: return "tcp-" + format_tcp_flags(flags);
  }
}

Result<std::unique_ptr<ProbeModule>> make_tcp_syn(const ProbeSpec& spec, const ProbeEndpoints& ends, RunKey key,
                                                  std::uint32_t count) {
  packet::IpSpec ip = ip_spec_for(spec, ends);
  packet::TcpSpec tcp;
  tcp.sport = policy_sport(spec.sport, key, 0);
  tcp.dport = spec.dport;
  tcp.seq = key.tcp_seq(0);
  tcp.flags = spec.tcp_flags;
  tcp.window = spec.window;
  tcp.options = spec.tcp_options;
  std::vector<std::uint8_t> payload(spec.payload_len, 0);
  auto built = packet::build_tcp(ip, tcp, payload);
  if (!built) return built.error();
  return std::unique_ptr<ProbeModule>(
      std::make_unique<TcpSynModule>(spec, ends, key, count, std::move(built).value()));
}

}  // namespace tandem::probe
