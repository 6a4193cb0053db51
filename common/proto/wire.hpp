// The envelope and the codec: one wire message = an 18-byte fixed header (network byte order)
// followed by a Cereal portable-binary body. docs/wire-protocol.md is normative; the tables below
// are the same data in code, so the doc, the codec and the tests cannot drift apart silently.
//
// Contract of decode(): input is untrusted bytes from a peer. It never throws, never reads past the
// span, and allocates at most what the per-type limits allow (every declared length is checked
// against the bytes that remain and against the field's maximum before any allocation). Failures
// come back as a named WireErrc.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/result.hpp"
#include "common/proto/messages.hpp"

namespace tandem::proto {

inline constexpr std::array<std::uint8_t, 4> kMagic = {'T', 'N', 'D', 'M'};
inline constexpr std::uint16_t kProtocolVersion = 1;     // what this build speaks
inline constexpr std::uint16_t kMinProtocolVersion = 1;  // oldest version this build accepts
inline constexpr std::size_t kHeaderSize = 18;

// Header layout (all big-endian):
//   0  magic "TNDM"   4  version u16   6  type u16   8  flags u16   10  request id u32   14  body length u32
struct Header {
  std::uint16_t version = kProtocolVersion;
  std::uint16_t type = 0;
  std::uint16_t flags = 0;       // v1: reserved, must be 0
  std::uint32_t request_id = 0;  // a reply carries its request's id; the controller drops mismatches
  std::uint32_t body_length = 0;
};

enum class Direction : std::uint8_t { to_agent, to_controller, either };

// One row of the message table (docs/wire-protocol.md §3).
struct MessageInfo {
  MsgType type;
  std::string_view name;        // as in the doc: "HELLO", "CAPTURE_CHUNK", ...
  Direction direction;
  std::uint32_t max_body;       // bytes, the body-length limit checked before reading the body
};

inline constexpr std::array<MessageInfo, 18> kMessageTable = {{
    {MsgType::hello, "HELLO", Direction::to_agent, 4096},
    {MsgType::hello_ok, "HELLO_OK", Direction::to_controller, 8192},
    {MsgType::clock_probe, "CLOCK_PROBE", Direction::to_agent, 64},
    {MsgType::clock_reply, "CLOCK_REPLY", Direction::to_controller, 64},
    {MsgType::run_setup, "RUN_SETUP", Direction::to_agent, 65536},
    {MsgType::run_ok, "RUN_OK", Direction::to_controller, 16'384},
    {MsgType::capture_start, "CAPTURE_START", Direction::to_agent, 16},
    {MsgType::capture_stop, "CAPTURE_STOP", Direction::to_agent, 16},
    {MsgType::capture_stats, "CAPTURE_STATS", Direction::to_controller, 64},
    {MsgType::send_plan, "SEND_PLAN", Direction::to_agent, 65536},
    {MsgType::send_report, "SEND_REPORT", Direction::to_controller, 64},
    {MsgType::status, "STATUS", Direction::to_agent, 16},
    {MsgType::status_reply, "STATUS_REPLY", Direction::to_controller, 512},
    {MsgType::fetch_capture, "FETCH_CAPTURE", Direction::to_agent, 32},
    {MsgType::capture_chunk, "CAPTURE_CHUNK", Direction::to_controller, kMaxChunkBytes + 128},
    {MsgType::run_end, "RUN_END", Direction::to_agent, 16},
    {MsgType::error, "ERROR", Direction::to_controller, 1024},
    {MsgType::bye, "BYE", Direction::either, 16},
}};

// The largest envelope any message can have: the transport's ZMQ_MAXMSGSIZE.
inline constexpr std::size_t kMaxEnvelopeSize = kHeaderSize + kMaxChunkBytes + 128;

// nullptr for an unknown type number.
const MessageInfo* find_message(std::uint16_t type);
std::string_view message_name(MsgType type);

// Named decode failures (stable names; they appear in logs and in ERROR texts).
enum class WireErrc : std::uint8_t {
  short_header,         // fewer than kHeaderSize bytes
  bad_magic,
  unsupported_version,
  unknown_type,
  bad_flags,            // reserved flag bits set
  body_too_large,       // declared body length above the type's limit
  body_length_mismatch, // declared body length != bytes that follow the header
  truncated,            // a field runs past the end of the body
  length_exceeds_input, // a declared string/list/bytes length exceeds the bytes that remain
  field_too_long,       // a declared length exceeds that field's maximum
  bad_value,            // enum/bool out of range, bad charset, inconsistent fields
  trailing_bytes,       // body has bytes after the last field
  bad_endianness,       // portable-binary endianness byte is not 0 or 1
};
std::string_view to_string(WireErrc e);

struct WireError {
  WireErrc code;
  std::string detail;  // where: "RUN_SETUP.flows[3].dst: length 900 > max 64"
  // "proto: decode: <name>: <detail>" as a tandem::Error with Errc::protocol.
  Error to_error() const;
};

struct Envelope {
  Header header;
  Message message;
};

// Either a decoded envelope or a named reason; mirrors tandem::Result's interface.
class [[nodiscard]] Decoded {
 public:
  Decoded(Envelope e) : v_(std::move(e)) {}   // NOLINT(google-explicit-constructor)
  Decoded(WireError e) : v_(std::move(e)) {}  // NOLINT(google-explicit-constructor)
  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  Envelope& value() { return std::get<0>(v_); }
  const Envelope& value() const { return std::get<0>(v_); }
  const WireError& error() const { return std::get<1>(v_); }

 private:
  std::variant<Envelope, WireError> v_;
};

// Encodes one message. Fails (Errc::usage, naming the field) if a field breaks its limit or charset:
// we never send what the peer must refuse.
Result<std::vector<std::uint8_t>> encode(const Message& message, std::uint32_t request_id,
                                         std::uint16_t version = kProtocolVersion);

// Decodes exactly one envelope occupying all of `bytes`. Never throws; see the file comment.
Decoded decode(std::span<const std::uint8_t> bytes) noexcept;

// Header only (for logging a message that failed later checks). Never throws.
std::optional<Header> peek_header(std::span<const std::uint8_t> bytes) noexcept;

// Agent-side session states of docs/wire-protocol.md §5. `invalid` is the catch-all: a request that
// is not allowed in the current state is answered with ERROR{unexpected_message} and the state is
// kept (the session is not torn down for one bad request).
enum class SessionState : std::uint8_t { start, ready, armed, capturing, stopped, closed, invalid };
std::string_view to_string(SessionState s);

// The state after the agent successfully handles `request` in `from`; SessionState::invalid if the
// request is not allowed there. Failures the agent reports with ERROR keep the state (except as the
// doc says). Lease expiry and controller loss move capturing/armed to stopped (see the doc).
SessionState next_state(SessionState from, MsgType request);

}  // namespace tandem::proto
