#include "controller/ping/ping_source.hpp"

#include <algorithm>

namespace tandem::ping {
namespace {

constexpr const char* kSubsystem = "ping";

const char* version_name(const packet::IpAddr& a) { return a.is_v4() ? "IPv4" : "IPv6"; }

// fe80::/10 and 169.254/16: valid on one link only, so a poor source for a routed target.
bool link_local(const packet::IpAddr& a) {
  if (a.is_v4()) return a.bytes[0] == 169 && a.bytes[1] == 254;
  return a.bytes[0] == 0xfe && (a.bytes[1] & 0xc0) == 0x80;
}

}  // namespace

std::optional<packet::IpAddr> parse_address(const std::string& text) {
  if (text.size() > 2 && text.front() == '[' && text.back() == ']')
    return packet::IpAddr::parse(text.substr(1, text.size() - 2));
  return packet::IpAddr::parse(text);
}

bool interface_given(const std::string& iface) { return !iface.empty() && iface != "any"; }

Result<packet::IpAddr> choose_source(const packet::IpAddr& target, const std::optional<std::string>& source,
                                     const std::string& iface, const HostFacts& facts) {
  const auto& local = facts.addresses;
  if (source) {
    auto addr = parse_address(*source);
    if (!addr) return make_error(Errc::usage, kSubsystem, "--source '" + *source + "' is not an IP address");
    if (addr->version != target.version) {
      return make_error(Errc::usage, kSubsystem,
                        "--source " + addr->to_string() + " is " + version_name(*addr) + " but the target " +
                            target.to_string() + " is " + version_name(target));
    }
    const bool ours =
        std::any_of(local.begin(), local.end(), [&](const auto& ia) { return ia.addr == *addr; });
    if (!ours)
      return make_error(Errc::usage, kSubsystem,
                        "--source " + addr->to_string() + " is not an address of this host");
    return *addr;
  }
  if (!interface_given(iface)) return facts.route_source;

  const auto on_iface = [&](const packet::IpAddr& a) {
    return std::any_of(local.begin(), local.end(),
                       [&](const auto& ia) { return ia.interface == iface && ia.addr == a; });
  };
  if (facts.route_source && on_iface(*facts.route_source)) return *facts.route_source;
  // The route's source belongs to another interface (or there is no route through IF): the probes
  // leave IF, so they carry IF's own address, as the replies must come back to IF.
  // A link-local address is taken only for a link-local target: replies to it cannot be routed.
  for (const auto& ia : local) {
    if (ia.interface == iface && ia.addr.version == target.version &&
        link_local(ia.addr) == link_local(target)) {
      return ia.addr;
    }
  }
  return make_error(
      Errc::environment, kSubsystem,
      "--interface " + iface + " has no " + version_name(target) + " address to send from (give --source)");
}

Result<packet::IpAddr> select_source(const packet::IpAddr& target, const std::optional<std::string>& source,
                                     const std::string& iface) {
  const bool bound = interface_given(iface);
  if (bound && !netio::interface_exists(iface)) {
    return make_error(Errc::environment, kSubsystem,
                      "--interface " + iface + ": no such interface on this host");
  }
  auto addresses = netio::interface_addresses();
  if (!addresses) return addresses.error();
  // The route is asked only when it can matter: with --source it would only add a failure mode.
  HostFacts facts{std::move(addresses).value(),
                  source ? Result<packet::IpAddr>(make_error(Errc::internal, kSubsystem, "route not asked"))
                         : netio::source_address_for(target, bound ? iface : std::string())};
  return choose_source(target, source, iface, facts);
}

}  // namespace tandem::ping
