// icmp-echo: an ICMP/ICMPv6 echo request (or another type given with --icmp-type). Identity: the
// echo identifier (low 16 bits of the run key) and the payload tag; the echo sequence number (low
// 16 bits of the index) when an ICMP error quotes only the first 8 bytes.
#include "common/packet/build.hpp"
#include "common/probe/modules.hpp"
#include "common/probe/probe_module.hpp"

namespace tandem::probe {
namespace {

class IcmpEchoModule final : public ProbeModule {
 public:
  IcmpEchoModule(const ProbeSpec& spec, ProbeEndpoints ends, RunKey key, std::uint32_t count)
      : spec_(spec), ends_(ends), key_(key), count_(count), ip_(ip_spec_for(spec, ends)) {}

  std::string_view name() const override { return "icmp-echo"; }

  void build(std::uint32_t index, std::vector<std::uint8_t>& out) override {
    std::vector<std::uint8_t> payload = tagged_payload(key_, index, spec_.payload_len);
    packet::IpSpec ip = identified_ip(ip_, key_, index);
    std::uint32_t rest = std::uint32_t{key_.icmp_ident()} << 16 | (index & 0xffffu);
    auto built = packet::build_icmp(ip, type(), spec_.icmp_code, rest, payload);
    out = built ? std::move(built).value() : std::vector<std::uint8_t>{};
  }

  std::uint16_t sport(std::uint32_t) const override { return 0; }

  std::optional<Observation> recognise(const packet::Decoded& d) const override {
    if (d.l3 != packet::L3::ip || d.l4 != packet::L4::icmp) return std::nullopt;
    const auto& ic = d.icmp;
    if (!ic.is_error) {
      bool request = ic.type == type();
      bool reply = ic.type == (ends_.dst.is_v4() ? 0 : 129) && type() == (ends_.dst.is_v4() ? 8 : 128);
      if (ic.id() != key_.icmp_ident()) return std::nullopt;
      if (request && d.ip.src == ends_.src && d.ip.dst == ends_.dst) {
        auto index = index_of(ic.body, ic.seq());
        if (!index) return std::nullopt;
        return Observation{Observation::What::own_probe, *index, ReplyKind::none, 0, 0, d.ip.src};
      }
      if (reply && d.ip.src == ends_.dst && d.ip.dst == ends_.src) {
        auto index = index_of(ic.body, ic.seq());
        if (!index) return std::nullopt;
        return Observation{Observation::What::reply, *index, ReplyKind::echo_reply, ic.type, ic.code, d.ip.src};
      }
      return std::nullopt;
    }
    if (!ic.has_quoted || d.ip.dst != ends_.src) return std::nullopt;
    const auto& q = ic.quoted;
    if (!q.has_icmp || q.ip.src != ends_.src || q.ip.dst != ends_.dst) return std::nullopt;
    if (q.icmp_type != type() || q.icmp_id != key_.icmp_ident()) return std::nullopt;
    auto body = q.ip.payload.size() > 8 ? q.ip.payload.subspan(8) : std::span<const std::uint8_t>{};
    auto index = index_of(body, q.icmp_seq);
    if (!index) return std::nullopt;
    return Observation{Observation::What::icmp_error, *index, ReplyKind::icmp_error, ic.type, ic.code, d.ip.src};
  }

  std::string bpf_filter() const override {
    const char* icmp = ends_.dst.is_v4() ? "icmp" : "icmp6";
    return std::string(icmp) + " and (host " + ends_.dst.to_string() + " or dst host " + ends_.src.to_string() + ")";
  }

 private:
  std::uint8_t type() const { return spec_.icmp_type; }
  bool valid(std::uint32_t index) const { return count_ == 0 || index < count_; }
  // The payload tag names the probe exactly; without it (a quote cut at 8 bytes) the echo sequence
  // gives the low 16 bits, which is exact for runs of up to 65536 probes.
  std::optional<std::uint32_t> index_of(std::span<const std::uint8_t> body, std::uint16_t seq) const {
    if (auto i = key_.index_from_payload(body)) return valid(*i) ? i : std::nullopt;
    if (count_ != 0 && count_ <= 65536 && seq < count_) return std::uint32_t{seq};
    return std::nullopt;
  }

  ProbeSpec spec_;
  ProbeEndpoints ends_;
  RunKey key_;
  std::uint32_t count_;
  packet::IpSpec ip_;
};

}  // namespace

Result<std::unique_ptr<ProbeModule>> make_icmp_echo(const ProbeSpec& spec, const ProbeEndpoints& ends,
                                                    RunKey key, std::uint32_t count) {
  auto probe = packet::build_icmp(ip_spec_for(spec, ends), spec.icmp_type, spec.icmp_code, 0);
  if (!probe) return probe.error();
  return std::unique_ptr<ProbeModule>(std::make_unique<IcmpEchoModule>(spec, ends, key, count));
}

}  // namespace tandem::probe
