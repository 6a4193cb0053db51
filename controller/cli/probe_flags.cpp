#include "controller/cli/probe_flags.hpp"

#include <netdb.h>
#include <sys/socket.h>

#include <cctype>
#include <memory>

namespace tandem::cli {

void add_probe_flags(CLI::App* sub, ProbeFlags& f, bool with_port, ProbeScope scope) {
  // An option in the group "" is parsed but not listed by --help.
  const std::string ping_only = scope == ProbeScope::ping ? "Options" : "";
  const std::string not_bisect = scope == ProbeScope::bisect ? "" : "Options";
  if (with_port) sub->add_option("-p,--port", f.port, "Destination port (default 80 for TCP, 33434 for UDP)");
  auto* tcp = sub->add_flag("--tcp", f.tcp, "TCP SYN probes (default)");
  auto* udp = sub->add_flag("--udp", f.udp, "UDP probes")->group(not_bisect);
  auto* icmp = sub->add_flag("--icmp", f.icmp, scope == ProbeScope::ping ? "ICMP echo probes (or --icmp-type)" : "ICMP echo probes")->group(not_bisect);
  tcp->excludes(udp)->excludes(icmp);
  udp->excludes(icmp);
  auto* flag_v6 = sub->add_flag("-6", f.want_v6, "Use IPv6");
  auto* flag_v4 = sub->add_flag("-4", f.want_v4, "Use IPv4 (default for host names)");
  flag_v6->excludes(flag_v4);
  auto* rate = sub->add_option("--rate", f.rate, "Probes per second (exact pacing, up to 100k+)")->check(CLI::PositiveNumber);
  auto* interval = sub->add_option("-i,--interval", f.interval, "Seconds between probes")->check(CLI::PositiveNumber);
  rate->excludes(interval);
  sub->add_option("--sport", f.sport, "Source port: random (a different one per probe), N (pinned), or A-B")
      ->capture_default_str();
  sub->add_option("--tcp-options", f.tcp_options, "TCP options in order, e.g. mss=1460,sack,ts,nop,ws=7; none; linux")
      ->capture_default_str();
  auto* tos = sub->add_option("--tos", f.tos, "IP TOS / traffic class byte (0-255, decimal or 0x..)");
  auto* dscp = sub->add_option("--dscp", f.dscp, "DSCP value (0-63) or name (ef, af41, cs1, ...)");
  tos->excludes(dscp);
  sub->add_option("--ttl", f.ttl, "IP TTL / hop limit (default 64)")->check(CLI::Range(1, 255));
  sub->add_flag("--df", f.df, "Set IPv4 don't-fragment");
  sub->add_option("--window", f.window, "TCP window (default 64240)")->check(CLI::Range(0, 65535));
  sub->add_option("--flags", f.flags, "TCP flags: S (SYN, default), A (ACK), F (FIN), none (NULL), FPU (Xmas); letters FSRPAUEC")
      ->group(ping_only);
  sub->add_option("--icmp-type", f.icmp_type, "ICMP type for --icmp (default echo request)")
      ->check(CLI::Range(0, 255))
      ->group(ping_only);
  sub->add_option("--icmp-code", f.icmp_code, "ICMP code for --icmp")->check(CLI::Range(0, 255))->group(ping_only);
  sub->add_option("--data-len", f.data_len, "Payload bytes (UDP/ICMP carry at least a 12-byte probe tag)")
      ->check(CLI::Range(0, 1400))
      ->group(ping_only);
}

Result<packet::IpAddr> resolve_target(const std::string& text, bool want_v6, bool want_v4) {
  std::string host = text;
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (auto lit = packet::IpAddr::parse(host)) {
    if (want_v6 && lit->is_v4()) return make_error(Errc::usage, "target", "-6 given but " + text + " is an IPv4 address");
    if (want_v4 && !lit->is_v4()) return make_error(Errc::usage, "target", "-4 given but " + text + " is an IPv6 address");
    return *lit;
  }
  addrinfo hints{};
  hints.ai_family = want_v6 ? AF_INET6 : AF_INET;
  hints.ai_socktype = SOCK_RAW;
  addrinfo* res = nullptr;
  int rc = getaddrinfo(host.c_str(), nullptr, &hints, &res);
  if (rc != 0 || res == nullptr) {
    return make_error(Errc::usage, "target", "cannot resolve '" + text + "': " + gai_strerror(rc));
  }
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> guard(res, freeaddrinfo);
  if (res->ai_family == AF_INET) {
    const auto* sin = reinterpret_cast<const sockaddr_in*>(res->ai_addr);  // NOLINT: sockaddr API
    return packet::IpAddr::v4_bytes(reinterpret_cast<const std::uint8_t*>(&sin->sin_addr));  // NOLINT
  }
  const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(res->ai_addr);  // NOLINT: sockaddr API
  return packet::IpAddr::v6_bytes(sin6->sin6_addr.s6_addr);
}

Result<std::pair<std::string, std::uint16_t>> split_host_port(const std::string& text) {
  auto bad = [&] {
    return make_error(Errc::usage, "target", "'" + text + "' is not HOST:PORT (IPv6: [ADDR]:PORT)");
  };
  std::string host, port;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') return bad();
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string::npos || text.find(':') != colon) return bad();
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  if (host.empty() || port.empty() || port.size() > 5) return bad();
  unsigned long value = 0;
  for (char c : port) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return bad();
    value = value * 10 + static_cast<unsigned long>(c - '0');
  }
  if (value == 0 || value > 65535) return make_error(Errc::usage, "target", "port " + port + " is out of range 1-65535");
  return std::pair{host, static_cast<std::uint16_t>(value)};
}

Result<std::uint8_t> parse_tcp_flags(const std::string& text) {
  static constexpr std::string_view kLetters = "FSRPAUEC";
  if (text == "none" || text == "null" || text == "NULL") return std::uint8_t{0};  // nmap's NULL probe
  std::uint8_t flags = 0;
  for (char c : text) {
    auto pos = kLetters.find(static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
    if (pos == std::string_view::npos) {
      return make_error(Errc::usage, "probe", "--flags: unknown TCP flag '" + std::string(1, c) + "' (letters FSRPAUEC)");
    }
    flags = static_cast<std::uint8_t>(flags | (1u << pos));
  }
  if (text.empty()) return make_error(Errc::usage, "probe", "--flags needs at least one letter of FSRPAUEC");
  return flags;
}

Result<probe::ProbeSpec> probe_spec_from(const ProbeFlags& a, packet::IpVersion version) {
  auto l4 = a.udp ? probe::ProbeSpec::L4::udp : a.icmp ? probe::ProbeSpec::L4::icmp : probe::ProbeSpec::L4::tcp;
  probe::ProbeSpec s = probe::default_spec(l4, version);
  if (a.port) s.dport = *a.port;
  if (a.icmp_type) s.icmp_type = static_cast<std::uint8_t>(*a.icmp_type);
  if (a.icmp_code) s.icmp_code = static_cast<std::uint8_t>(*a.icmp_code);
  auto opts = probe::parse_tcp_options(a.tcp_options.empty() ? "none" : a.tcp_options);
  if (!opts) return opts.error();
  if (l4 != probe::ProbeSpec::L4::tcp && !opts->empty()) {
    return make_error(Errc::usage, "probe", "--tcp-options applies to TCP probes only");
  }
  s.tcp_options = std::move(opts).value();
  auto sport = probe::parse_sport(a.sport);
  if (!sport) return sport.error();
  s.sport = *sport;
  if (a.tos) {
    auto tos = probe::parse_tos(*a.tos);
    if (!tos) return tos.error();
    s.tos = *tos;
  }
  if (a.dscp) {
    auto dscp = probe::parse_dscp(*a.dscp);
    if (!dscp) return dscp.error();
    s.tos = static_cast<std::uint8_t>(*dscp << 2);
  }
  if (a.ttl) s.ttl = static_cast<std::uint8_t>(*a.ttl);
  s.df = a.df;
  if (a.window) s.window = static_cast<std::uint16_t>(*a.window);
  if (a.flags) {
    auto f = parse_tcp_flags(*a.flags);
    if (!f) return f.error();
    s.tcp_flags = *f;
  }
  s.payload_len = a.data_len;
  return s;
}

}  // namespace tandem::cli
