// Internal to common/probe: the module factories and helpers shared by the module files.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/packet/build.hpp"
#include "common/probe/probe_module.hpp"

namespace tandem::probe {

Result<std::unique_ptr<ProbeModule>> make_tcp_syn(const ProbeSpec&, const ProbeEndpoints&, RunKey, std::uint32_t);
Result<std::unique_ptr<ProbeModule>> make_udp(const ProbeSpec&, const ProbeEndpoints&, RunKey, std::uint32_t);
Result<std::unique_ptr<ProbeModule>> make_icmp_echo(const ProbeSpec&, const ProbeEndpoints&, RunKey, std::uint32_t);

// The TCP module's name for a flag combination: tcp-syn, tcp-ack, tcp-fin, tcp-null, tcp-xmas, else
// "tcp-" + the flag letters (what ping's banner and report.json call the probe).
std::string tcp_module_name(std::uint8_t flags);

// The IP layer every module uses: TOS, TTL, DF from the spec.
packet::IpSpec ip_spec_for(const ProbeSpec& spec, const ProbeEndpoints& ends);

// Probe `index`'s payload: the run's 12-byte tag, zero-padded to payload_len if that is longer.
std::vector<std::uint8_t> tagged_payload(const RunKey& key, std::uint32_t index, std::size_t payload_len);

// `base` with probe `index`'s IPv4 ID and IPv6 flow label (the identity carriers of the IP layer).
packet::IpSpec identified_ip(const packet::IpSpec& base, const RunKey& key, std::uint32_t index);

// "(<proto> and host DST and port P) or (<icmp> and dst host SRC)": the probes and direct replies,
// plus ICMP errors (from any router) addressed to us.
std::string host_pair_filter(const std::string& l4, const ProbeEndpoints& ends, std::uint16_t port);

}  // namespace tandem::probe
