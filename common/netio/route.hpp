// Route queries answered by the kernel without sending anything.
//
// source_address_for: connects a UDP socket to dst (connect() on UDP only runs the route lookup and
// picks a source address; no packet leaves) and reads the address back with getsockname().
// interface_for: matches that source address against getifaddrs(). Limits: the answer is the
// interface that *owns* the source address, which is the egress interface in ordinary setups but
// not always (policy routing, VRFs, an address on lo or a dummy used for another link, the same
// address on two interfaces: the first one listed wins). For the exact egress interface ask
// netlink (RTM_GETROUTE); we do not need it so far. All answer for the calling thread's network
// namespace.
//
// With `device` (SO_BINDTODEVICE on the probing socket) the lookup is the one a socket bound to
// that interface gets, as `ping -I IF` sends: only routes through IF count, and with none the
// kernel treats the destination as on-link there (IPv4) or refuses (IPv6: ENETUNREACH).
#pragma once

#include <string>
#include <vector>

#include "common/base/result.hpp"
#include "common/packet/addr.hpp"

namespace tandem::netio {

// Errors: no route -> Errc::environment, "route: no route to 192.0.2.1: Network is unreachable".
// With a device that does not exist: Errc::environment naming it.
Result<packet::IpAddr> source_address_for(const packet::IpAddr& dst, const std::string& device = {});

// Errors: those of source_address_for, plus Errc::environment when no interface holds the address.
Result<std::string> interface_for(const packet::IpAddr& dst);

// Every address held by an interface of this namespace (getifaddrs), IPv4 and IPv6.
// Errc::environment if getifaddrs fails.
Result<std::vector<packet::IpAddr>> local_addresses();

// One address of one interface, as getifaddrs lists them.
struct InterfaceAddress {
  std::string interface;
  packet::IpAddr addr;
};
// Every (interface, address) pair of this namespace, IPv4 and IPv6, in getifaddrs order.
Result<std::vector<InterfaceAddress>> interface_addresses();

// Whether an interface of this name exists in this namespace (it may hold no address).
bool interface_exists(const std::string& name);

}  // namespace tandem::netio
