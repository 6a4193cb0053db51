// Internal to common/probe: the module factories and helpers shared by the module files.
#pragma once

#include <memory>
#include <string>

#include "common/packet/build.hpp"
#include "common/probe/probe_module.hpp"

namespace tandem::probe {

Result<std::unique_ptr<ProbeModule>> make_tcp_syn(const ProbeSpec&, const ProbeEndpoints&, RunKey, std::uint32_t);
Result<std::unique_ptr<ProbeModule>> make_udp(const ProbeSpec&, const ProbeEndpoints&, RunKey, std::uint32_t);
Result<std::unique_ptr<ProbeModule>> make_icmp_echo(const ProbeSpec&, const ProbeEndpoints&, RunKey, std::uint32_t);

// The IP layer every module uses: TOS, TTL, DF from the spec.
packet::IpSpec ip_spec_for(const ProbeSpec& spec, const ProbeEndpoints& ends);

// "(<proto> and host DST and port P) or (<icmp> and dst host SRC)": the probes and direct replies,
// plus ICMP errors (from any router) addressed to us.
std::string host_pair_filter(const std::string& l4, const ProbeEndpoints& ends, std::uint16_t port);

}  // namespace tandem::probe
