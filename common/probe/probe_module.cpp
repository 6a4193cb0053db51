#include "common/probe/probe_module.hpp"

#include "common/probe/modules.hpp"

#include <algorithm>

namespace tandem::probe {

std::string_view reply_kind_name(ReplyKind k) {
  switch (k) {
    case ReplyKind::none: return "none";
    case ReplyKind::syn_ack: return "syn_ack";
    case ReplyKind::rst: return "rst";
    case ReplyKind::tcp_other: return "tcp";
    case ReplyKind::udp: return "udp";
    case ReplyKind::echo_reply: return "echo_reply";
    case ReplyKind::icmp_error: return "icmp_error";
  }
  return "none";
}

std::uint16_t policy_sport(const SportPolicy& policy, const RunKey& key, std::uint32_t index) {
  switch (policy.kind) {
    case SportPolicy::Kind::fixed: return policy.lo;
    case SportPolicy::Kind::range: {
      std::uint32_t span = std::uint32_t{policy.hi} - policy.lo + 1;
      return static_cast<std::uint16_t>(policy.lo + key.sport_slot(index, span));
    }
    case SportPolicy::Kind::random:
    default:
      // Above the privileged ports; a shuffle, not independent draws, so that no two probes of a
      // run share a port (and a 4-tuple) until 64512 probes have been sent.
      return static_cast<std::uint16_t>(1024 + key.sport_slot(index, 65536 - 1024));
  }
}

packet::IpSpec ip_spec_for(const ProbeSpec& spec, const ProbeEndpoints& ends) {
  packet::IpSpec ip;
  ip.src = ends.src;
  ip.dst = ends.dst;
  ip.tos = spec.tos;
  ip.ttl = spec.ttl.value_or(64);
  ip.df = spec.df;
  return ip;
}

std::vector<std::uint8_t> tagged_payload(const RunKey& key, std::uint32_t index, std::size_t payload_len) {
  std::vector<std::uint8_t> payload(std::max(payload_len, kPayloadTagSize), 0);
  auto tag = key.payload_tag(index);
  std::copy(tag.begin(), tag.end(), payload.begin());
  return payload;
}

packet::IpSpec identified_ip(const packet::IpSpec& base, const RunKey& key, std::uint32_t index) {
  packet::IpSpec ip = base;
  ip.ip_id = key.ip_id(index);
  ip.flow_label = key.flow_label(index);
  return ip;
}

std::string host_pair_filter(const std::string& l4, const ProbeEndpoints& ends, std::uint16_t port) {
  const char* icmp = ends.dst.is_v4() ? "icmp" : "icmp6";
  std::string dst = ends.dst.to_string();
  std::string src = ends.src.to_string();
  return "(" + l4 + " and host " + dst + " and port " + std::to_string(port) + ") or (" + icmp +
         " and dst host " + src + ")";
}

Result<std::unique_ptr<ProbeModule>> make_probe_module(const ProbeSpec& spec, const ProbeEndpoints& ends,
                                                       RunKey key, std::uint32_t count) {
  if (ends.src.version != ends.dst.version) {
    return make_error(Errc::usage, "probe", "source " + ends.src.to_string() + " and target " +
                                                ends.dst.to_string() + " are of different IP versions");
  }
  switch (spec.l4) {
    case ProbeSpec::L4::tcp: return make_tcp_syn(spec, ends, key, count);
    case ProbeSpec::L4::udp: return make_udp(spec, ends, key, count);
    case ProbeSpec::L4::icmp: return make_icmp_echo(spec, ends, key, count);
  }
  return make_error(Errc::internal, "probe", "unknown probe type");
}

}  // namespace tandem::probe
