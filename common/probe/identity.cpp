#include "common/probe/identity.hpp"

#include <sys/random.h>

#include <cstring>
#include <ctime>

namespace tandem::probe {
namespace {

constexpr std::array<std::uint32_t, 4> kRoundConstants = {0x9e3779b9, 0x7f4a7c15, 0xf39cc060, 0x5ced1ec5};

std::uint16_t round_fn(std::uint32_t key, int round, std::uint16_t half) {
  std::uint32_t x = (std::uint32_t{half} << 16 | half) ^ key ^ kRoundConstants[static_cast<std::size_t>(round)];
  x ^= x >> 15;
  x *= 0x2c1b3c6du;
  x ^= x >> 12;
  x *= 0x297a2d39u;
  x ^= x >> 15;
  return static_cast<std::uint16_t>(x);
}

}  // namespace

std::uint32_t permute32(std::uint32_t key, std::uint32_t value) {
  auto left = static_cast<std::uint16_t>(value >> 16);
  auto right = static_cast<std::uint16_t>(value);
  for (int r = 0; r < 4; ++r) {
    std::uint16_t next = static_cast<std::uint16_t>(left ^ round_fn(key, r, right));
    left = right;
    right = next;
  }
  return std::uint32_t{left} << 16 | right;
}

std::uint32_t unpermute32(std::uint32_t key, std::uint32_t value) {
  auto left = static_cast<std::uint16_t>(value >> 16);
  auto right = static_cast<std::uint16_t>(value);
  for (int r = 3; r >= 0; --r) {
    std::uint16_t prev = static_cast<std::uint16_t>(right ^ round_fn(key, r, left));
    right = left;
    left = prev;
  }
  return std::uint32_t{left} << 16 | right;
}

std::uint32_t permute_below(std::uint32_t key, std::uint32_t value, std::uint64_t n) {
  if (n <= 1) return 0;
  if (n > 0xffffffffull) return permute32(key, value);
  unsigned bits = 2;
  while ((std::uint64_t{1} << bits) < n) bits += 2;
  unsigned half = bits / 2;
  std::uint32_t mask = (std::uint32_t{1} << half) - 1;
  auto once = [&](std::uint32_t x) {
    std::uint32_t left = x >> half, right = x & mask;
    for (int r = 0; r < 4; ++r) {
      std::uint32_t next = left ^ (round_fn(key, r, static_cast<std::uint16_t>(right)) & mask);
      left = right;
      right = next;
    }
    return left << half | right;
  };
  // Cycle walking: re-apply the permutation of [0, 2^bits) until the value lands below n. Since
  // 2^bits < 4n this takes under four rounds on average, and it is a bijection on [0, n).
  std::uint32_t x = once(value);
  while (x >= n) x = once(x);
  return x;
}

std::array<std::uint8_t, kPayloadTagSize> RunKey::payload_tag(std::uint32_t index) const {
  std::array<std::uint8_t, kPayloadTagSize> tag{'T', 'N', 'D', 'M'};
  for (int i = 0; i < 4; ++i) {
    tag[static_cast<std::size_t>(4 + i)] = static_cast<std::uint8_t>(key >> (24 - 8 * i));
    tag[static_cast<std::size_t>(8 + i)] = static_cast<std::uint8_t>(index >> (24 - 8 * i));
  }
  return tag;
}

std::optional<std::uint32_t> RunKey::index_from_payload(std::span<const std::uint8_t> payload) const {
  if (payload.size() < kPayloadTagSize) return std::nullopt;
  if (std::memcmp(payload.data(), "TNDM", 4) != 0) return std::nullopt;
  auto be32 = [&](std::size_t at) {
    return std::uint32_t{payload[at]} << 24 | std::uint32_t{payload[at + 1]} << 16 |
           std::uint32_t{payload[at + 2]} << 8 | std::uint32_t{payload[at + 3]};
  };
  if (be32(4) != key) return std::nullopt;
  return be32(8);
}

RunKey random_run_key() {
  RunKey k;
  // getrandom on a 4-byte request never returns short once the pool is initialised; fall back to
  // the clock only if it fails so a run can still proceed (identity needs uniqueness, not secrecy).
  if (getrandom(&k.key, sizeof k.key, 0) != static_cast<ssize_t>(sizeof k.key)) {
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    k.key = static_cast<std::uint32_t>(ts.tv_nsec) ^ static_cast<std::uint32_t>(ts.tv_sec);
  }
  return k;
}

}  // namespace tandem::probe
