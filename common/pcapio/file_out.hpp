// Internal to pcapio: an owned, buffered output file with a sticky first error, and little-endian
// appenders, shared by the pcap and pcapng writers. Not part of the public API.
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

// The part both writers share: the fd, the output buffer (the writer appends whole records to
// buffer()), flushing when it fills, and the error contract — the first I/O error (ENOSPC, EIO, ...)
// is kept and returned by every later call; usage errors are the writer's business. Move-only;
// the destructor closes and logs an error it cannot return (call close() to see it).
class BufferedFile {
 public:
  // Creates/truncates path (mode 0644). buffer_bytes below 4096 is raised to 4096.
  static Result<BufferedFile> open(const std::string& path, std::size_t buffer_bytes);

  BufferedFile() = default;
  BufferedFile(BufferedFile&& other) noexcept;
  BufferedFile& operator=(BufferedFile&& other) noexcept;
  BufferedFile(const BufferedFile&) = delete;
  BufferedFile& operator=(const BufferedFile&) = delete;
  ~BufferedFile();

  std::vector<std::uint8_t>& buffer() { return buf_; }
  const std::string& path() const { return path_; }
  // The first error, or Errc::usage "writer is closed" after close(); ok while writable.
  Status usable() const;
  // After appending a record: flushes when the buffer holds buffer_bytes or more.
  Status record_done() { return buf_.size() >= buffer_bytes_ ? flush() : ok_status(); }
  Status flush();
  // Flushes, fsyncs and closes. Idempotent; returns the first error seen.
  Status close();

 private:
  Status fail(Error e);

  int fd_ = -1;
  std::string path_;
  std::vector<std::uint8_t> buf_;
  std::size_t buffer_bytes_ = 0;
  bool failed_ = false;
  Error first_error_;
};

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
