#include "common/packet/addr.hpp"

#include <arpa/inet.h>

#include <cstring>

namespace tandem::packet {

IpAddr IpAddr::v4(std::uint32_t host_order) {
  IpAddr a;
  a.version = IpVersion::v4;
  a.bytes[0] = static_cast<std::uint8_t>(host_order >> 24);
  a.bytes[1] = static_cast<std::uint8_t>(host_order >> 16);
  a.bytes[2] = static_cast<std::uint8_t>(host_order >> 8);
  a.bytes[3] = static_cast<std::uint8_t>(host_order);
  return a;
}

IpAddr IpAddr::v4_bytes(const std::uint8_t* four) {
  IpAddr a;
  a.version = IpVersion::v4;
  std::memcpy(a.bytes.data(), four, 4);
  return a;
}

IpAddr IpAddr::v6_bytes(const std::uint8_t* sixteen) {
  IpAddr a;
  a.version = IpVersion::v6;
  std::memcpy(a.bytes.data(), sixteen, 16);
  return a;
}

std::optional<IpAddr> IpAddr::parse(std::string_view text) {
  if (text.empty() || text.size() > INET6_ADDRSTRLEN) return std::nullopt;
  std::string s(text);
  IpAddr a;
  if (inet_pton(AF_INET, s.c_str(), a.bytes.data()) == 1) {
    a.version = IpVersion::v4;
    return a;
  }
  if (inet_pton(AF_INET6, s.c_str(), a.bytes.data()) == 1) {
    a.version = IpVersion::v6;
    return a;
  }
  return std::nullopt;
}

std::uint32_t IpAddr::v4_host_order() const {
  return (std::uint32_t{bytes[0]} << 24) | (std::uint32_t{bytes[1]} << 16) |
         (std::uint32_t{bytes[2]} << 8) | std::uint32_t{bytes[3]};
}

std::string IpAddr::to_string() const {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(is_v4() ? AF_INET : AF_INET6, bytes.data(), buf, sizeof buf);
  return buf;
}

}  // namespace tandem::packet
