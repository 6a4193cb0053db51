// IpAddr: an IPv4 or IPv6 address held as bytes in network order. The one address type used across
// packet, probe, netio, pcapio and the controller.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tandem::packet {

enum class IpVersion : std::uint8_t { v4 = 4, v6 = 6 };

struct IpAddr {
  IpVersion version = IpVersion::v4;
  std::array<std::uint8_t, 16> bytes{};  // v4 uses bytes[0..3]; the rest stay zero

  static IpAddr v4(std::uint32_t host_order);
  static IpAddr v4_bytes(const std::uint8_t* four);
  static IpAddr v6_bytes(const std::uint8_t* sixteen);
  // Parses dotted-quad or RFC 4291 text (no zone ids, no brackets). nullopt on anything else.
  static std::optional<IpAddr> parse(std::string_view text);

  bool is_v4() const { return version == IpVersion::v4; }
  std::size_t size() const { return is_v4() ? 4 : 16; }
  std::uint32_t v4_host_order() const;  // precondition: is_v4()
  std::string to_string() const;        // canonical text (inet_ntop)

  friend bool operator==(const IpAddr& a, const IpAddr& b) {
    return a.version == b.version && a.bytes == b.bytes;
  }
  friend bool operator!=(const IpAddr& a, const IpAddr& b) { return !(a == b); }
  friend bool operator<(const IpAddr& a, const IpAddr& b) {
    return a.version != b.version ? a.version < b.version : a.bytes < b.bytes;
  }
};

}  // namespace tandem::packet
