#include "common/packet/checksum.hpp"

#include "common/packet/bytes.hpp"

namespace tandem::packet {

std::uint32_t checksum_add(std::uint32_t sum, std::span<const std::uint8_t> data) {
  // Accumulate 32-bit big-endian words in 64 bits: one's-complement addition is associative, so
  // summing 32-bit words and folding later equals summing 16-bit words, at half the iterations.
  std::uint64_t acc = sum;
  const std::uint8_t* p = data.data();
  std::size_t n = data.size();
  while (n >= 4) {
    acc += load_be32(p);
    p += 4;
    n -= 4;
  }
  if (n >= 2) {
    acc += load_be16(p);
    p += 2;
    n -= 2;
  }
  if (n == 1) acc += std::uint64_t{p[0]} << 8;  // odd tail is padded with a zero byte
  while (acc >> 32) acc = (acc & 0xffffffffu) + (acc >> 32);
  // Keep the result small enough that callers can add more without overflowing 32 bits.
  acc = (acc & 0xffff) + (acc >> 16);
  acc = (acc & 0xffff) + (acc >> 16);
  return static_cast<std::uint32_t>(acc);
}

std::uint16_t checksum_finish(std::uint32_t sum) {
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<std::uint16_t>(~sum);
}

std::uint32_t pseudo_header_sum(const IpAddr& src, const IpAddr& dst, std::uint8_t protocol,
                                std::uint32_t l4_length) {
  std::uint32_t sum = checksum_add(0, std::span(src.bytes.data(), src.size()));
  sum = checksum_add(sum, std::span(dst.bytes.data(), dst.size()));
  sum += protocol;
  sum += l4_length >> 16;
  sum += l4_length & 0xffff;
  return sum;
}

}  // namespace tandem::packet
