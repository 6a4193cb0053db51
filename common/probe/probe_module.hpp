// A probe module owns everything about one probe type, as zmap's probe modules do: how to build
// probe i of a run, how to recognise the probe itself, its replies and ICMP errors quoting it in a
// capture, and the BPF filter that captures exactly those packets. One file per type:
// tcp_syn.cpp, udp.cpp, icmp_echo.cpp. Modules are listed in make_probe_module().
//
// Threading: build() is called from the sending thread, recognise() from the capture thread,
// concurrently; implementations keep any state they share between the two lock-free.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/result.hpp"
#include "common/packet/addr.hpp"
#include "common/packet/decode.hpp"
#include "common/probe/identity.hpp"
#include "common/probe/spec.hpp"

namespace tandem::probe {

// What came back for a probe (DESIGN.md §5 reply kinds, plus "echo_reply" for ICMP echo probes).
enum class ReplyKind : std::uint8_t { none, syn_ack, rst, tcp_other, udp, echo_reply, icmp_error };
std::string_view reply_kind_name(ReplyKind k);

struct Observation {
  enum class What : std::uint8_t {
    own_probe,   // the probe itself, leaving this host (or seen at the far end)
    reply,       // a direct answer from the target (SYN-ACK, RST, UDP, echo reply)
    icmp_error,  // an ICMP error quoting the probe, from the target or a router on the path
  };
  What what = What::own_probe;
  std::uint32_t index = 0;
  ReplyKind reply = ReplyKind::none;
  std::uint8_t icmp_type = 0, icmp_code = 0;
  packet::IpAddr from;  // the packet's source address
};

struct ProbeEndpoints {
  packet::IpAddr src;  // our address (the kernel's choice for dst, see netio::source_address_for)
  packet::IpAddr dst;  // the target
};

class ProbeModule {
 public:
  virtual ~ProbeModule() = default;

  virtual std::string_view name() const = 0;  // "tcp-syn", "udp", "icmp-echo"
  // Writes probe `index` (a complete IP packet) into `out`, replacing its contents.
  virtual void build(std::uint32_t index, std::vector<std::uint8_t>& out) = 0;
  // The source port probe `index` carries (0 for ICMP).
  virtual std::uint16_t sport(std::uint32_t index) const = 0;
  // Classifies a decoded packet; nullopt when it is not about one of this run's probes.
  virtual std::optional<Observation> recognise(const packet::Decoded& pkt) const = 0;
  // Captures the probes, their replies and ICMP errors addressed to us, nothing else if possible.
  virtual std::string bpf_filter() const = 0;
};

// Validates the spec against the endpoints (same IP version, options fit) and builds the module.
// `count` bounds valid indices; 0 means unbounded (indices up to 2^32-1).
Result<std::unique_ptr<ProbeModule>> make_probe_module(const ProbeSpec& spec, const ProbeEndpoints& ends,
                                                       RunKey key, std::uint32_t count);

// Shared by the modules: the source port of probe `index` under a policy.
std::uint16_t policy_sport(const SportPolicy& policy, const RunKey& key, std::uint32_t index);

}  // namespace tandem::probe
