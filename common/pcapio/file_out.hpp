// Internal to pcapio: an owned output fd with whole-buffer writes and little-endian appenders, shared
// by the pcap and pcapng writers. Not part of the public API.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/base/result.hpp"

namespace tandem::pcapio::detail {

// Opens (creating/truncating, mode 0644) for writing. Errc::environment with strerror on failure.
Result<int> open_for_write(const std::string& path);
// Writes all of data, retrying short writes and EINTR. Errc::environment naming path and cause
// (ENOSPC, EIO, ...).
Status write_all(int fd, const std::string& path, std::span<const std::uint8_t> data);
// fsync (where the file supports it) and close. Errc::environment on failure.
Status sync_and_close(int fd, const std::string& path);

inline void put_u16(std::vector<std::uint8_t>& b, std::uint16_t v) {
  b.push_back(static_cast<std::uint8_t>(v));
  b.push_back(static_cast<std::uint8_t>(v >> 8));
}
inline void put_u32(std::vector<std::uint8_t>& b, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) b.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}
inline void put_u64(std::vector<std::uint8_t>& b, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) b.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}
inline void patch_u32(std::vector<std::uint8_t>& b, std::size_t at, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) b[at + static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(v >> (8 * i));
}
inline void pad_to_4(std::vector<std::uint8_t>& b) {
  while (b.size() % 4 != 0) b.push_back(0);
}

}  // namespace tandem::pcapio::detail
