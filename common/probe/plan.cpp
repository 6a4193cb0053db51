#include "common/probe/plan.hpp"

#include <numeric>
#include <utility>

namespace tandem::probe {

std::uint64_t splitmix64_next(std::uint64_t& state) {
  state += 0x9e3779b97f4a7c15ULL;
  std::uint64_t z = state;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

std::vector<std::uint16_t> variant_schedule(std::uint64_t seed, std::uint32_t count, std::size_t variants) {
  std::vector<std::uint16_t> out;
  out.reserve(count);
  if (variants <= 1) {
    out.assign(count, 0);
    return out;
  }
  std::uint64_t state = seed;
  std::vector<std::uint16_t> block(variants);
  while (out.size() < count) {
    std::iota(block.begin(), block.end(), std::uint16_t{0});
    for (std::size_t i = variants - 1; i > 0; --i) {
      // Modulo bias is below 2^-50 for any realistic variant count; the exact rule matters more
      // than the bias, because the controller must reproduce it bit for bit.
      std::size_t j = static_cast<std::size_t>(splitmix64_next(state) % (i + 1));
      std::swap(block[i], block[j]);
    }
    for (std::size_t k = 0; k < variants && out.size() < count; ++k) out.push_back(block[k]);
  }
  return out;
}

std::vector<std::uint16_t> stream_schedule(std::uint64_t seed, const std::vector<std::uint32_t>& counts) {
  std::vector<std::uint16_t> out;
  std::uint64_t total = 0;
  for (auto c : counts) total += c;
  out.reserve(total);
  if (counts.size() <= 1) {
    out.assign(total, 0);
    return out;
  }
  std::vector<std::uint32_t> left = counts;
  std::uint64_t state = seed;
  std::vector<std::uint16_t> block;
  while (out.size() < total) {
    block.clear();
    for (std::size_t s = 0; s < left.size(); ++s) {
      if (left[s] > 0) block.push_back(static_cast<std::uint16_t>(s));
    }
    for (std::size_t i = block.size() - 1; i > 0; --i) {
      std::size_t j = static_cast<std::size_t>(splitmix64_next(state) % (i + 1));
      std::swap(block[i], block[j]);
    }
    for (auto s : block) {
      out.push_back(s);
      --left[s];
    }
  }
  return out;
}

}  // namespace tandem::probe
