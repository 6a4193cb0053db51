// Which address `tandem ping` sends from (DESIGN.md §3, `-S|--source ADDR`, `-e|--interface IF`).
//
// The rules, in order:
//   - --source ADDR: ADDR must be an address of this host (any interface: a service address on lo
//     or a dummy is a real use) and of the target's IP version; otherwise a usage error naming it.
//   - --interface IF without --source: the kernel's source for the target as a socket bound to IF
//     sees it, if that address is on IF; otherwise IF's own first address of the target's version
//     (link-local only for a link-local target), so that the probes leaving IF carry IF's address.
//     IF with no such address: an environment error naming IF.
//   - neither: the kernel's source for the target (netio::source_address_for).
// An interface that does not exist is an environment error naming it (Errc::environment, exit 2:
// "missing interface" in common/base/result.hpp), checked before anything else.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/base/result.hpp"
#include "common/netio/route.hpp"
#include "common/packet/addr.hpp"

namespace tandem::ping {

// An IP literal, IPv6 optionally in brackets ("[fd77:1::3]"); nullopt for anything else.
std::optional<packet::IpAddr> parse_address(const std::string& text);

// "" and "any" mean no interface: send where the routes say, capture on every interface.
bool interface_given(const std::string& iface);

// What the host says, gathered by select_source(); unit tests make their own.
struct HostFacts {
  std::vector<netio::InterfaceAddress> addresses;  // netio::interface_addresses()
  Result<packet::IpAddr> route_source;             // netio::source_address_for(target, IF or "")
};

// Pure: applies the rules above to the facts. `source` is the --source text (brackets allowed
// around IPv6), nullopt when not given; the interface is assumed to exist.
Result<packet::IpAddr> choose_source(const packet::IpAddr& target, const std::optional<std::string>& source,
                                     const std::string& iface, const HostFacts& facts);

// Checks the interface exists, gathers the facts for this namespace and chooses.
Result<packet::IpAddr> select_source(const packet::IpAddr& target, const std::optional<std::string>& source,
                                     const std::string& iface);

}  // namespace tandem::ping
