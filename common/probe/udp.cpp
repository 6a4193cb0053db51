// udp: a UDP datagram whose payload starts with the run's 12-byte tag (TNDM + key + index).
// Identity: the payload tag when a reply echoes it or an ICMP error quotes enough of it; otherwise
// the source port, resolved to the latest probe sent from that port and cross-checked with the
// quoted IPv4 ID / IPv6 flow label when an ICMP error carries them.
#include <array>
#include <atomic>
#include <cstring>

#include "common/packet/build.hpp"
#include "common/probe/modules.hpp"
#include "common/probe/probe_module.hpp"

namespace tandem::probe {
namespace {

constexpr std::uint32_t kNoProbe = 0xffffffffu;

// A payload carrying some run's tag. When it is not ours, it belongs to a concurrent run whose
// source port collided with ours: the port must not then attribute it to one of our probes.
bool has_tag(std::span<const std::uint8_t> payload) {
  return payload.size() >= kPayloadTagSize && std::memcmp(payload.data(), "TNDM", 4) == 0;
}

class UdpModule final : public ProbeModule {
 public:
  UdpModule(const ProbeSpec& spec, ProbeEndpoints ends, RunKey key, std::uint32_t count)
      : spec_(spec), ends_(ends), key_(key), count_(count), ip_(ip_spec_for(spec, ends)) {
    for (auto& slot : latest_by_sport_) slot.store(kNoProbe, std::memory_order_relaxed);
  }

  std::string_view name() const override { return "udp"; }

  void build(std::uint32_t index, std::vector<std::uint8_t>& out) override {
    std::vector<std::uint8_t> payload = tagged_payload(key_, index, spec_.payload_len);
    packet::IpSpec ip = identified_ip(ip_, key_, index);
    std::uint16_t sp = sport(index);
    latest_by_sport_[sp].store(index, std::memory_order_release);
    // The spec was validated by make_udp(), so building cannot fail here.
    auto built = packet::build_udp(ip, sp, spec_.dport, payload);
    out = built ? std::move(built).value() : std::vector<std::uint8_t>{};
  }

  std::uint16_t sport(std::uint32_t index) const override { return policy_sport(spec_.sport, key_, index); }

  std::optional<Observation> recognise(const packet::Decoded& d) const override {
    if (d.l3 != packet::L3::ip) return std::nullopt;
    if (d.l4 == packet::L4::udp) {
      const auto& u = d.udp;
      if (d.ip.src == ends_.src && d.ip.dst == ends_.dst && u.dport == spec_.dport) {
        auto index = key_.index_from_payload(u.payload);
        if (!index || !valid(*index) || u.sport != sport(*index)) return std::nullopt;
        return Observation{Observation::What::own_probe, *index, ReplyKind::none, 0, 0, d.ip.src};
      }
      if (d.ip.src == ends_.dst && d.ip.dst == ends_.src && u.sport == spec_.dport) {
        auto index = key_.index_from_payload(u.payload);
        if (!index && has_tag(u.payload)) return std::nullopt;
        if (!index) index = by_sport(u.dport);
        if (!index || !valid(*index) || u.dport != sport(*index)) return std::nullopt;
        return Observation{Observation::What::reply, *index, ReplyKind::udp, 0, 0, d.ip.src};
      }
      return std::nullopt;
    }
    if (d.l4 == packet::L4::icmp && d.icmp.is_error && d.icmp.has_quoted && d.ip.dst == ends_.src) {
      const auto& q = d.icmp.quoted;
      if (q.ip.protocol != packet::kProtoUdp || q.ip.src != ends_.src || q.ip.dst != ends_.dst) return std::nullopt;
      if (!q.has_ports || q.dport != spec_.dport) return std::nullopt;
      std::optional<std::uint32_t> index;
      if (q.ip.payload.size() > 8) {
        auto quoted = q.ip.payload.subspan(8);
        index = key_.index_from_payload(quoted);
        if (!index && has_tag(quoted)) return std::nullopt;
      }
      if (!index) {
        index = by_sport(q.sport);
        // A quoted IP ID / flow label that disagrees means the port was reused by a later probe.
        if (index && q.ip.is_v4() && q.ip.ip_id != key_.ip_id(*index)) return std::nullopt;
        if (index && !q.ip.is_v4() && q.ip.flow_label != key_.flow_label(*index)) return std::nullopt;
      }
      if (!index || !valid(*index) || q.sport != sport(*index)) return std::nullopt;
      return Observation{Observation::What::icmp_error, *index, ReplyKind::icmp_error, d.icmp.type, d.icmp.code,
                         d.ip.src};
    }
    return std::nullopt;
  }

  std::string bpf_filter() const override { return host_pair_filter("udp", ends_, spec_.dport); }

 private:
  bool valid(std::uint32_t index) const { return count_ == 0 || index < count_; }
  std::optional<std::uint32_t> by_sport(std::uint16_t port) const {
    std::uint32_t i = latest_by_sport_[port].load(std::memory_order_acquire);
    if (i == kNoProbe) return std::nullopt;
    return i;
  }

  ProbeSpec spec_;
  ProbeEndpoints ends_;
  RunKey key_;
  std::uint32_t count_;
  packet::IpSpec ip_;
  // Written by build() on the sending thread, read by recognise() on the capture thread.
  std::array<std::atomic<std::uint32_t>, 65536> latest_by_sport_;
};

}  // namespace

Result<std::unique_ptr<ProbeModule>> make_udp(const ProbeSpec& spec, const ProbeEndpoints& ends, RunKey key,
                                              std::uint32_t count) {
  std::vector<std::uint8_t> payload(std::max<std::size_t>(spec.payload_len, kPayloadTagSize), 0);
  auto probe = packet::build_udp(ip_spec_for(spec, ends), 1, spec.dport, payload);
  if (!probe) return probe.error();
  return std::unique_ptr<ProbeModule>(std::make_unique<UdpModule>(spec, ends, key, count));
}

}  // namespace tandem::probe
