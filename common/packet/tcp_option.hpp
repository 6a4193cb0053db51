// TCP options: an owning value type for building probes, and a non-allocating walker over raw option
// bytes for decoding. JSON/report names follow DESIGN.md §5 (option_name()).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "common/base/result.hpp"

namespace tandem::packet {

inline constexpr std::uint8_t kTcpOptEol = 0;
inline constexpr std::uint8_t kTcpOptNop = 1;
inline constexpr std::uint8_t kTcpOptMss = 2;
inline constexpr std::uint8_t kTcpOptWscale = 3;
inline constexpr std::uint8_t kTcpOptSackPerm = 4;
inline constexpr std::uint8_t kTcpOptSack = 5;
inline constexpr std::uint8_t kTcpOptTimestamp = 8;

// The TCP option space: data offset 15 words minus the 5-word fixed header (RFC 9293 §3.1).
inline constexpr std::size_t kTcpOptionSpace = 40;

struct SackBlock {
  std::uint32_t left = 0;
  std::uint32_t right = 0;
  friend bool operator==(const SackBlock&, const SackBlock&) = default;
};

// One option as it goes on the wire. `data` holds the bytes after kind and length; EOL and NOP are
// single bytes and always have empty data. Values are not validated here (a probe may carry an
// out-of-range window scale on purpose); only serialize_tcp_options() enforces wire limits.
struct TcpOption {
  std::uint8_t kind = kTcpOptNop;
  std::vector<std::uint8_t> data;

  static TcpOption mss(std::uint16_t value);
  static TcpOption wscale(std::uint8_t shift);
  static TcpOption sack_perm();
  static TcpOption sack(std::span<const SackBlock> blocks);
  static TcpOption timestamp(std::uint32_t value, std::uint32_t echo_reply);
  static TcpOption nop();
  static TcpOption eol();
  static TcpOption raw(std::uint8_t kind, std::vector<std::uint8_t> bytes);

  bool is_single_byte() const { return kind == kTcpOptEol || kind == kTcpOptNop; }
  // Bytes this option takes on the wire (1 for EOL/NOP, else 2 + data).
  std::size_t wire_size() const { return is_single_byte() ? 1 : 2 + data.size(); }

  friend bool operator==(const TcpOption&, const TcpOption&) = default;
};

// JSON name of an option kind: mss, sack_perm, sack, wscale, timestamp, nop, eol, kind<N>.
std::string option_name(std::uint8_t kind);

// Sum of wire_size() over the list, before padding.
std::size_t tcp_options_wire_size(std::span<const TcpOption> options);

// Serializes in the given order, then pads with zero bytes to a multiple of 4. A zero byte is EOL,
// so the padding reads as "end of option list" followed by zero fill, as RFC 9293 §3.2 prescribes;
// no NOPs are inserted, so the options keep exactly the offsets the caller chose.
// Errors (Errc::usage, subsystem "tcp-options"): more than 40 bytes (never truncated), data on
// EOL/NOP, data longer than 253 bytes.
Result<std::vector<std::uint8_t>> serialize_tcp_options(std::span<const TcpOption> options);

// A decoded option: `data` points into the caller's buffer (bytes after kind and length).
struct TcpOptionView {
  std::uint8_t kind = 0;
  std::span<const std::uint8_t> data;
};

// Walks raw option bytes without allocating. next() yields options in order and returns false at
// the end or on the first malformed option (then malformed() is true): a length byte missing, a
// length below 2, or a length running past the end. EOL is yielded and ends the walk; the bytes
// after it are padding.
class TcpOptionReader {
 public:
  explicit TcpOptionReader(std::span<const std::uint8_t> raw) : raw_(raw) {}

  bool next(TcpOptionView& out);
  bool malformed() const { return malformed_; }
  // Offset of the option next() will look at (or of the malformed one).
  std::size_t offset() const { return pos_; }

 private:
  std::span<const std::uint8_t> raw_;
  std::size_t pos_ = 0;
  bool done_ = false;
  bool malformed_ = false;
};

// Calls f(const TcpOptionView&) for each well-formed option; returns false if the list was
// malformed (the options before the bad one were still visited).
template <class F>
bool for_each_tcp_option(std::span<const std::uint8_t> raw, F&& f) {
  TcpOptionReader r(raw);
  TcpOptionView v;
  while (r.next(v)) f(v);
  return !r.malformed();
}

// Decodes raw option bytes into owning values (for reports and tests, not the hot path).
// Malformed lists return the options before the bad one and set *malformed if given.
std::vector<TcpOption> parse_tcp_option_bytes(std::span<const std::uint8_t> raw,
                                              bool* malformed = nullptr);

}  // namespace tandem::packet
