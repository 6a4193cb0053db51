// Internet checksum (RFC 1071) and the IPv4/IPv6 pseudo-header sums used by TCP, UDP and ICMPv6.
// Convention: a "sum" is an unfolded one's-complement accumulator of big-endian 16-bit words; a
// "checksum" is the folded, complemented 16-bit value, in host order, as store_be16() writes it.
#pragma once

#include <cstdint>
#include <span>

#include "common/packet/addr.hpp"

namespace tandem::packet {

// Adds `data` to `sum`. Only the last chunk of a checksummed region may have odd length (an odd
// chunk in the middle would misalign every later word).
std::uint32_t checksum_add(std::uint32_t sum, std::span<const std::uint8_t> data);

// Folds carries and complements.
std::uint16_t checksum_finish(std::uint32_t sum);

// One-shot checksum of a contiguous region (e.g. the IPv4 header with its checksum field zeroed).
inline std::uint16_t internet_checksum(std::span<const std::uint8_t> data) {
  return checksum_finish(checksum_add(0, data));
}

// Pseudo-header sum for TCP/UDP/ICMPv6: RFC 793 layout for v4 (src, dst, zero, proto, 16-bit
// length), RFC 8200 §8.1 for v6 (src, dst, 32-bit length, zeros, next header).
// Precondition: src and dst have the same version.
std::uint32_t pseudo_header_sum(const IpAddr& src, const IpAddr& dst, std::uint8_t protocol,
                                std::uint32_t l4_length);

// RFC 1624 eqn. 3 incremental update: the checksum after one 16-bit word covered by it changed
// from old_word to new_word.
inline std::uint16_t checksum_adjust(std::uint16_t checksum, std::uint16_t old_word,
                                     std::uint16_t new_word) {
  std::uint32_t sum = static_cast<std::uint16_t>(~checksum);
  sum += static_cast<std::uint16_t>(~old_word);
  sum += new_word;
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<std::uint16_t>(~sum);
}

}  // namespace tandem::packet
