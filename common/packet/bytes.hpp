// ByteReader / ByteWriter: the only way packet code touches raw bytes. Every read checks the
// remaining length first; multi-byte values are big-endian (network order). Neither type throws.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace tandem::packet {

// A cursor over borrowed bytes. The caller keeps the underlying buffer alive for as long as the
// reader or any span it returned is used. A failed read leaves the cursor where it was.
class ByteReader {
 public:
  ByteReader() = default;
  explicit ByteReader(std::span<const std::uint8_t> data) : data_(data) {}

  std::size_t remaining() const { return data_.size() - pos_; }
  std::size_t position() const { return pos_; }
  bool empty() const { return remaining() == 0; }
  // The unread bytes (no copy).
  std::span<const std::uint8_t> rest() const { return data_.subspan(pos_); }

  bool read_u8(std::uint8_t& out) {
    if (remaining() < 1) return false;
    out = data_[pos_++];
    return true;
  }
  bool read_u16(std::uint16_t& out) {
    if (remaining() < 2) return false;
    out = static_cast<std::uint16_t>((data_[pos_] << 8) | data_[pos_ + 1]);
    pos_ += 2;
    return true;
  }
  bool read_u32(std::uint32_t& out) {
    if (remaining() < 4) return false;
    out = (std::uint32_t{data_[pos_]} << 24) | (std::uint32_t{data_[pos_ + 1]} << 16) |
          (std::uint32_t{data_[pos_ + 2]} << 8) | std::uint32_t{data_[pos_ + 3]};
    pos_ += 4;
    return true;
  }
  std::optional<std::uint8_t> u8() {
    std::uint8_t v;
    return read_u8(v) ? std::optional<std::uint8_t>(v) : std::nullopt;
  }
  std::optional<std::uint16_t> u16() {
    std::uint16_t v;
    return read_u16(v) ? std::optional<std::uint16_t>(v) : std::nullopt;
  }
  std::optional<std::uint32_t> u32() {
    std::uint32_t v;
    return read_u32(v) ? std::optional<std::uint32_t>(v) : std::nullopt;
  }
  bool skip(std::size_t n) {
    if (remaining() < n) return false;
    pos_ += n;
    return true;
  }
  // Takes the next n bytes as a view and advances past them; false if fewer remain.
  bool read_span(std::size_t n, std::span<const std::uint8_t>& out) {
    if (remaining() < n) return false;
    out = data_.subspan(pos_, n);
    pos_ += n;
    return true;
  }
  // Peeks n bytes starting at offset (relative to the cursor) without advancing.
  std::optional<std::span<const std::uint8_t>> peek(std::size_t offset, std::size_t n) const {
    if (offset > remaining() || remaining() - offset < n) return std::nullopt;
    return data_.subspan(pos_ + offset, n);
  }

 private:
  std::span<const std::uint8_t> data_;
  std::size_t pos_ = 0;
};

// Appends big-endian values to a caller-owned vector. put_*_at() back-patch bytes already written
// (lengths, checksums); an out-of-range offset is a programming error and returns false.
class ByteWriter {
 public:
  explicit ByteWriter(std::vector<std::uint8_t>& out) : out_(out) {}

  std::size_t size() const { return out_.size(); }

  void put_u8(std::uint8_t v) { out_.push_back(v); }
  void put_u16(std::uint16_t v) {
    out_.push_back(static_cast<std::uint8_t>(v >> 8));
    out_.push_back(static_cast<std::uint8_t>(v));
  }
  void put_u32(std::uint32_t v) {
    out_.push_back(static_cast<std::uint8_t>(v >> 24));
    out_.push_back(static_cast<std::uint8_t>(v >> 16));
    out_.push_back(static_cast<std::uint8_t>(v >> 8));
    out_.push_back(static_cast<std::uint8_t>(v));
  }
  void put_bytes(std::span<const std::uint8_t> b) { out_.insert(out_.end(), b.begin(), b.end()); }
  void put_zeros(std::size_t n) { out_.insert(out_.end(), n, 0); }

  bool put_u8_at(std::size_t offset, std::uint8_t v) {
    if (offset >= out_.size()) return false;
    out_[offset] = v;
    return true;
  }
  bool put_u16_at(std::size_t offset, std::uint16_t v) {
    if (offset > out_.size() || out_.size() - offset < 2) return false;
    out_[offset] = static_cast<std::uint8_t>(v >> 8);
    out_[offset + 1] = static_cast<std::uint8_t>(v);
    return true;
  }
  bool put_u32_at(std::size_t offset, std::uint32_t v) {
    if (offset > out_.size() || out_.size() - offset < 4) return false;
    out_[offset] = static_cast<std::uint8_t>(v >> 24);
    out_[offset + 1] = static_cast<std::uint8_t>(v >> 16);
    out_[offset + 2] = static_cast<std::uint8_t>(v >> 8);
    out_[offset + 3] = static_cast<std::uint8_t>(v);
    return true;
  }

 private:
  std::vector<std::uint8_t>& out_;
};

// Unchecked big-endian loads/stores for code that has already proven the bounds (decode fast paths,
// the in-place patcher). Callers must guarantee p[0..N) is valid.
inline std::uint16_t load_be16(const std::uint8_t* p) {
  return static_cast<std::uint16_t>((p[0] << 8) | p[1]);
}
inline std::uint32_t load_be32(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         std::uint32_t{p[3]};
}
inline void store_be16(std::uint8_t* p, std::uint16_t v) {
  p[0] = static_cast<std::uint8_t>(v >> 8);
  p[1] = static_cast<std::uint8_t>(v);
}
inline void store_be32(std::uint8_t* p, std::uint32_t v) {
  p[0] = static_cast<std::uint8_t>(v >> 24);
  p[1] = static_cast<std::uint8_t>(v >> 16);
  p[2] = static_cast<std::uint8_t>(v >> 8);
  p[3] = static_cast<std::uint8_t>(v);
}

}  // namespace tandem::packet
