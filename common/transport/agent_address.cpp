#include "common/transport/agent_address.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>

#include "common/transport/curve.hpp"

namespace tandem::transport {
namespace {

constexpr std::string_view kScheme = "tcp://";
constexpr std::string_view kForm = "expected tcp://HOST:PORT#AGENT_PUBLIC_KEY (key: 40 Z85 characters)";

Error bad(std::string_view text, const std::string& why) {
  return make_error(Errc::usage, "agent-address", "'" + std::string(text) + "': " + why + "; " + std::string(kForm));
}

bool host_char_ok(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
         c == '_';
}

// "tcp://HOST:PORT" -> host, port.
Result<AgentAddress> parse_endpoint(std::string_view full, std::string_view ep) {
  if (ep.substr(0, kScheme.size()) != kScheme) return bad(full, "must start with tcp://");
  std::string_view rest = ep.substr(kScheme.size());
  std::string_view host, port_text;
  if (!rest.empty() && rest.front() == '[') {
    auto close = rest.find(']');
    if (close == std::string_view::npos || close + 1 >= rest.size() || rest[close + 1] != ':')
      return bad(full, "IPv6 address must be written [ADDR]:PORT");
    host = rest.substr(1, close - 1);
    port_text = rest.substr(close + 2);
    if (host.empty() || !std::all_of(host.begin(), host.end(), [](char c) {
          return std::isxdigit(static_cast<unsigned char>(c)) || c == ':' || c == '.';
        }))
      return bad(full, "not an IPv6 address inside [ ]");
  } else {
    auto colon = rest.rfind(':');
    if (colon == std::string_view::npos) return bad(full, "missing :PORT");
    host = rest.substr(0, colon);
    port_text = rest.substr(colon + 1);
    if (host.empty() || host == "*" || !std::all_of(host.begin(), host.end(), host_char_ok))
      return bad(full, "bad host name or IPv4 address");
  }
  unsigned port = 0;
  auto [p, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || p != port_text.data() + port_text.size() || port == 0 || port > 65535)
    return bad(full, "port must be 1..65535");
  AgentAddress a;
  a.endpoint = std::string(ep);
  a.host = std::string(host);
  a.port = static_cast<std::uint16_t>(port);
  return a;
}

}  // namespace

Result<AgentAddress> parse_agent_address(std::string_view text) {
  auto hash = text.find('#');
  if (hash == std::string_view::npos) return bad(text, "missing #KEY");
  auto addr = parse_endpoint(text, text.substr(0, hash));
  if (!addr) return addr;
  std::string_view key = text.substr(hash + 1);
  if (!is_z85_key(key)) return bad(text, "the part after '#' is not a 40-character Z85 key");
  addr->server_key = std::string(key);
  return addr;
}

Result<AgentAddress> parse_agent_address(std::string_view text, const std::string& key_file) {
  auto key = load_public_key_file(key_file);
  if (!key) return key.error();
  if (text.find('#') != std::string_view::npos) {
    auto addr = parse_agent_address(text);
    if (!addr) return addr;
    if (addr->server_key != *key)
      return make_error(Errc::usage, "agent-address",
                        "'" + std::string(text) + "': its key differs from the key in " + key_file);
    return addr;
  }
  auto addr = parse_endpoint(text, text);
  if (!addr) return addr;
  addr->server_key = std::move(*key);
  return addr;
}

}  // namespace tandem::transport
