#include "common/transport/agent_address.hpp"

#include <algorithm>
#include <cctype>
#include <array>
#include <charconv>

#include <zmq.h>

#include "common/transport/curve.hpp"

namespace tandem::transport {
namespace {

constexpr std::string_view kScheme = "tcp://";
constexpr std::string_view kForm =
    "expected tcp://HOST:PORT/KEY (43 base64url characters, as tandem-agent --print-address prints it) or "
    "tcp://HOST:PORT#KEY (40 Z85 characters)";
constexpr std::string_view kBase64Url = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
constexpr std::size_t kKeyBytes = 32;
constexpr std::size_t kBase64UrlKeyLen = 43;  // ceil(32 * 8 / 6), no padding

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

std::string z85_key_to_base64url(std::string_view z85) {
  if (!is_z85_key(z85)) return "";
  std::array<char, kZ85KeyLen + 1> text{};
  std::copy(z85.begin(), z85.end(), text.begin());
  std::array<std::uint8_t, kKeyBytes> bin{};
  if (zmq_z85_decode(bin.data(), text.data()) == nullptr) return "";
  std::string out;
  std::uint32_t acc = 0;
  int bits = 0;
  for (std::uint8_t b : bin) {
    acc = (acc << 8) | b;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out += kBase64Url[(acc >> bits) & 63u];
    }
  }
  if (bits > 0) out += kBase64Url[(acc << (6 - bits)) & 63u];
  return out;
}

std::string base64url_key_to_z85(std::string_view b64) {
  if (b64.size() != kBase64UrlKeyLen) return "";
  std::array<std::uint8_t, kKeyBytes> bin{};
  std::size_t n = 0;
  std::uint32_t acc = 0;
  int bits = 0;
  for (char c : b64) {
    auto v = kBase64Url.find(c);
    if (v == std::string_view::npos) return "";
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      if (n == bin.size()) return "";
      bin[n++] = static_cast<std::uint8_t>((acc >> bits) & 0xffu);
    }
  }
  // 43 characters carry 258 bits: the last 2 must be zero, or two texts would name one key.
  if (n != bin.size() || (acc & ((1u << bits) - 1u)) != 0) return "";
  std::array<char, kZ85KeyLen + 1> z85{};
  if (zmq_z85_encode(z85.data(), bin.data(), bin.size()) == nullptr) return "";
  return std::string(z85.data());
}

std::string AgentAddress::to_url() const { return endpoint + "/" + z85_key_to_base64url(server_key); }

Result<AgentAddress> parse_agent_address(std::string_view text) {
  auto hash = text.find('#');
  // The quote-free form: the key after the first '/' past "tcp://".
  auto slash = text.size() > kScheme.size() ? text.find('/', kScheme.size()) : std::string_view::npos;
  if (hash == std::string_view::npos && slash != std::string_view::npos) {
    auto addr = parse_endpoint(text, text.substr(0, slash));
    if (!addr) return addr;
    std::string z85 = base64url_key_to_z85(text.substr(slash + 1));
    if (z85.empty()) return bad(text, "the part after '/' is not a 43-character base64url key");
    addr->server_key = std::move(z85);
    return addr;
  }
  if (hash == std::string_view::npos) return bad(text, "missing /KEY");
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
  auto slash = text.size() > kScheme.size() ? text.find('/', kScheme.size()) : std::string_view::npos;
  if (text.find('#') != std::string_view::npos || slash != std::string_view::npos) {
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
