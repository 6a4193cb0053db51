// Route queries answered by the kernel without sending anything.
//
// source_address_for: connects a UDP socket to dst (connect() on UDP only runs the route lookup and
// picks a source address; no packet leaves) and reads the address back with getsockname().
// interface_for: matches that source address against getifaddrs(). Limits: the answer is the
// interface that *owns* the source address, which is the egress interface in ordinary setups but
// not always (policy routing, VRFs, an address on lo or a dummy used for another link, the same
// address on two interfaces: the first one listed wins). For the exact egress interface ask
// netlink (RTM_GETROUTE); we do not need it so far. Both answer for the calling thread's network
// namespace.
#pragma once

#include <string>
#include <vector>

#include "common/base/result.hpp"
#include "common/packet/addr.hpp"

namespace tandem::netio {

// Errors: no route -> Errc::environment, "route: no route to 192.0.2.1: Network is unreachable".
Result<packet::IpAddr> source_address_for(const packet::IpAddr& dst);

// Errors: those of source_address_for, plus Errc::environment when no interface holds the address.
Result<std::string> interface_for(const packet::IpAddr& dst);

// Every address held by an interface of this namespace (getifaddrs), IPv4 and IPv6.
// Errc::environment if getifaddrs fails.
Result<std::vector<packet::IpAddr>> local_addresses();

}  // namespace tandem::netio
