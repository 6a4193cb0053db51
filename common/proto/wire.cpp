// Envelope framing, the message table and the Cereal serialisation of every message. The body is
// written by Cereal's PortableBinaryOutputArchive (little-endian chosen explicitly) and read back by
// detail::BoundedInputArchive, which reads the same format from a bounded buffer.
#include "common/proto/wire.hpp"

#include <cereal/archives/portable_binary.hpp>

#include <algorithm>
#include <exception>
#include <limits>
#include <sstream>
#include <type_traits>

#include "common/proto/bounded_archive.hpp"

namespace tandem::proto {
namespace detail {

using InArchive = BoundedInputArchive;
using OutArchive = cereal::PortableBinaryOutputArchive;

enum class Charset : std::uint8_t {
  text,   // printable ASCII plus tab and newline: no escape sequences reach a terminal or a log
  token,  // [A-Za-z0-9._-], not empty... not starting with '.': safe as a file name component
};

inline bool charset_ok(const std::string& s, Charset cs) {
  if (cs == Charset::token) {
    if (!s.empty() && s.front() == '.') return false;
    return std::all_of(s.begin(), s.end(), [](char c) {
      return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
             c == '_' || c == '-';
    });
  }
  return std::all_of(s.begin(), s.end(), [](char c) { return (c >= 0x20 && c <= 0x7e) || c == '\t' || c == '\n'; });
}

[[noreturn]] inline void fail(WireErrc code, const char* field, const std::string& what) {
  throw WireFailure{code, std::string(field) + ": " + what};
}

inline void check_length(const char* field, std::size_t n, std::size_t max) {
  if (n > max) fail(WireErrc::field_too_long, field, "length " + std::to_string(n) + " > max " + std::to_string(max));
}

// --- field wrappers: each variable-length field names its maximum at the point of use ---

struct TextRef {
  std::string& s;
  std::size_t max;
  Charset cs;
  const char* name;
};
struct TextListRef {
  std::vector<std::string>& v;
  std::size_t max_count;
  std::size_t max_len;
  Charset cs;
  const char* name;
};
struct BytesRef {
  std::vector<std::uint8_t>& v;
  std::size_t max;
  const char* name;
};
template <class T>
struct ListRef {
  std::vector<T>& v;
  std::size_t max;
  const char* name;
};
struct FlagRef {
  bool& b;
  const char* name;
};
template <class E>
struct EnumRef {
  E& e;
  const char* name;
};

inline bool enum_ok(Role r) { return r == Role::client || r == Role::server; }
inline bool enum_ok(L4 l) { return l == L4::tcp || l == L4::udp || l == L4::icmp; }
inline bool enum_ok(AgentState s) {
  return static_cast<std::uint8_t>(s) >= 1 && static_cast<std::uint8_t>(s) <= 6;
}
inline bool enum_ok(ErrorCode c) {
  return static_cast<std::uint16_t>(c) >= 1 && static_cast<std::uint16_t>(c) <= 8;
}

inline void save_text(OutArchive& ar, const std::string& s, std::size_t max, Charset cs, const char* name) {
  check_length(name, s.size(), max);
  if (!charset_ok(s, cs)) fail(WireErrc::bad_value, name, "character outside the allowed set");
  ar(cereal::make_size_tag(static_cast<cereal::size_type>(s.size())));
  ar(cereal::binary_data(s.data(), s.size()));
}
inline void load_text(InArchive& ar, std::string& s, std::size_t max, Charset cs, const char* name) {
  const std::uint64_t n = ar.read_size();  // <= bytes left
  check_length(name, n, max);              // <= field max, before the allocation below
  s.resize(static_cast<std::size_t>(n));
  ar.read_raw(s.data(), s.size());
  if (!charset_ok(s, cs)) fail(WireErrc::bad_value, name, "character outside the allowed set");
}

inline void CEREAL_SAVE_FUNCTION_NAME(OutArchive& ar, const TextRef& t) { save_text(ar, t.s, t.max, t.cs, t.name); }
inline void CEREAL_LOAD_FUNCTION_NAME(InArchive& ar, TextRef& t) { load_text(ar, t.s, t.max, t.cs, t.name); }

inline void CEREAL_SAVE_FUNCTION_NAME(OutArchive& ar, const TextListRef& t) {
  check_length(t.name, t.v.size(), t.max_count);
  ar(cereal::make_size_tag(static_cast<cereal::size_type>(t.v.size())));
  for (const auto& s : t.v) save_text(ar, s, t.max_len, t.cs, t.name);
}
inline void CEREAL_LOAD_FUNCTION_NAME(InArchive& ar, TextListRef& t) {
  const std::uint64_t n = ar.read_size();
  check_length(t.name, n, t.max_count);
  t.v.clear();
  t.v.reserve(static_cast<std::size_t>(n));
  for (std::uint64_t i = 0; i < n; ++i) load_text(ar, t.v.emplace_back(), t.max_len, t.cs, t.name);
}

inline void CEREAL_SAVE_FUNCTION_NAME(OutArchive& ar, const BytesRef& b) {
  check_length(b.name, b.v.size(), b.max);
  ar(cereal::make_size_tag(static_cast<cereal::size_type>(b.v.size())));
  ar(cereal::binary_data(b.v.data(), b.v.size()));
}
inline void CEREAL_LOAD_FUNCTION_NAME(InArchive& ar, BytesRef& b) {
  const std::uint64_t n = ar.read_size();
  check_length(b.name, n, b.max);
  b.v.resize(static_cast<std::size_t>(n));
  ar.read_raw(b.v.data(), b.v.size());
}

template <class T>
void CEREAL_SAVE_FUNCTION_NAME(OutArchive& ar, const ListRef<T>& l) {
  check_length(l.name, l.v.size(), l.max);
  ar(cereal::make_size_tag(static_cast<cereal::size_type>(l.v.size())));
  for (const auto& x : l.v) ar(x);
}
template <class T>
void CEREAL_LOAD_FUNCTION_NAME(InArchive& ar, ListRef<T>& l) {
  const std::uint64_t n = ar.read_size();
  check_length(l.name, n, l.max);
  l.v.clear();
  l.v.reserve(static_cast<std::size_t>(n));
  for (std::uint64_t i = 0; i < n; ++i) ar(l.v.emplace_back());
}

inline void CEREAL_SAVE_FUNCTION_NAME(OutArchive& ar, const FlagRef& f) {
  ar(static_cast<std::uint8_t>(f.b ? 1 : 0));
}
inline void CEREAL_LOAD_FUNCTION_NAME(InArchive& ar, FlagRef& f) {
  std::uint8_t v = 0;
  ar.read_value(v);
  if (v > 1) fail(WireErrc::bad_value, f.name, "boolean byte " + std::to_string(v));
  f.b = v == 1;
}

template <class E>
void CEREAL_SAVE_FUNCTION_NAME(OutArchive& ar, const EnumRef<E>& r) {
  if (!enum_ok(r.e)) fail(WireErrc::bad_value, r.name, "enum value out of range");
  ar(static_cast<std::underlying_type_t<E>>(r.e));
}
template <class E>
void CEREAL_LOAD_FUNCTION_NAME(InArchive& ar, EnumRef<E>& r) {
  std::underlying_type_t<E> v{};
  ar.read_value(v);
  // Out-of-range values of an enum with a fixed underlying type are representable, so the cast is
  // defined; we refuse them right after.
  r.e = static_cast<E>(v);
  if (!enum_ok(r.e)) fail(WireErrc::bad_value, r.name, "enum value " + std::to_string(v) + " out of range");
}

inline TextRef text(std::string& s, std::size_t max, const char* name, Charset cs = Charset::text) {
  return {s, max, cs, name};
}
inline FlagRef flag(bool& b, const char* name) { return {b, name}; }
template <class E>
EnumRef<E> enumeration(E& e, const char* name) {
  return {e, name};
}
template <class T>
ListRef<T> list(std::vector<T>& v, std::size_t max, const char* name) {
  return {v, max, name};
}

}  // namespace detail

// --- message layouts (the field order here IS the wire order; see docs/wire-protocol.md §4) ---
// Non-anonymous so that Cereal finds them by argument-dependent lookup.
using detail::Charset;
using detail::enumeration;
using detail::flag;
using detail::list;
using detail::text;

template <class A>
void serialize(A& ar, Flow& f) {
  ar(text(f.src, kMaxAddressLen, "flow.src"), text(f.dst, kMaxAddressLen, "flow.dst"), enumeration(f.l4, "flow.l4"),
     f.sport_min, f.sport_max, f.dport);
}
template <class A>
void serialize(A& ar, ProbeVariant& v) {
  ar(text(v.tcp_options, kMaxTcpOptionsLen, "variant.tcp_options"), v.tos,
     text(v.sport, kMaxSportPolicyLen, "variant.sport"), v.ttl);
}
template <class A>
void serialize(A& ar, ProbeStream& s) {
  ar(text(s.src, kMaxAddressLen, "stream.src"), text(s.dst, kMaxAddressLen, "stream.dst"), s.dport, s.seed, s.count,
     list(s.variants, kMaxVariants, "stream.variants"));
}
template <class A>
void serialize(A& ar, ProbePlan& p) {
  ar(p.count, p.rate_pps, p.interval_us, p.seed, p.dport, text(p.dst, kMaxAddressLen, "plan.dst"), p.ip_version,
     enumeration(p.l4, "plan.l4"), text(p.tcp_options, kMaxTcpOptionsLen, "plan.tcp_options"), p.tos, p.ttl,
     flag(p.df, "plan.df"), p.window, text(p.sport, kMaxSportPolicyLen, "plan.sport"),
     list(p.variants, kMaxVariants, "plan.variants"), list(p.streams, kMaxStreams, "plan.streams"));
}
template <class A>
void serialize(A& ar, Hello& m) {
  ar(m.min_version, m.max_version, text(m.controller_name, kMaxNameLen, "controller_name"),
     detail::TextListRef{m.capabilities, kMaxCapabilities, kMaxCapabilityLen, Charset::token, "capabilities"});
}
template <class A>
void serialize(A& ar, HelloOk& m) {
  ar(m.version, text(m.agent_id, kMaxNameLen, "agent_id", Charset::token),
     text(m.agent_version, kMaxVersionTextLen, "agent_version"),
     detail::TextListRef{m.capabilities, kMaxCapabilities, kMaxCapabilityLen, Charset::token, "capabilities"},
     text(m.policy_summary, kMaxPolicySummaryLen, "policy_summary"),
     detail::TextListRef{m.sources, kMaxSources, kMaxAddressLen, Charset::text, "sources"});
}
template <class A>
void serialize(A& ar, ClockProbe& m) {
  ar(m.t1);
}
template <class A>
void serialize(A& ar, ClockReply& m) {
  ar(m.t1, m.t2, m.t3);
}
template <class A>
void serialize(A& ar, RunSetup& m) {
  ar(text(m.run_id, kMaxNameLen, "run_id", Charset::token), m.lease_deadline_ns, enumeration(m.role, "role"),
     text(m.capture_filter, kMaxFilterLen, "capture_filter"), m.snaplen, list(m.flows, kMaxFlows, "flows"), m.plan);
}
template <class A>
void serialize(A& ar, RunOk& m) {
  ar(text(m.run_id, kMaxNameLen, "run_id", Charset::token), list(m.flows, kMaxFlows, "flows"));
}
template <class A>
void serialize(A& ar, CaptureStop& m) {
  ar(m.drain_ms);
}
template <class A>
void serialize(A& ar, CaptureStats& m) {
  ar(m.received, m.dropped, m.if_dropped, flag(m.if_dropped_known, "if_dropped_known"), m.available_bytes);
}
template <class A>
void serialize(A& ar, SendPlan& m) {
  ar(m.plan);
}
template <class A>
void serialize(A& ar, SendReport& m) {
  ar(m.sent, m.failed, m.first_ns, m.last_ns);
}
template <class A>
void serialize(A& ar, StatusReply& m) {
  ar(enumeration(m.state, "state"), m.progress_permille, text(m.detail, kMaxDetailLen, "detail"));
}
template <class A>
void serialize(A& ar, FetchCapture& m) {
  ar(m.offset, m.max_bytes);
}
template <class A>
void serialize(A& ar, CaptureChunk& m) {
  ar(m.offset, m.total, detail::BytesRef{m.bytes, kMaxChunkBytes, "bytes"},
     detail::BytesRef{m.sha256, kSha256Len, "sha256"});
}
template <class A>
void serialize(A& ar, ErrorReply& m) {
  ar(enumeration(m.code, "code"), text(m.text, kMaxErrorTextLen, "text"));
}

// Empty messages have no fields: Cereal's empty-class elision writes nothing for them.

// --- cross-field rules, applied by the encoder and the decoder alike ---
namespace {

using detail::fail;

void check(const ProbePlan& p) {
  if (p.ip_version != 4 && p.ip_version != 6) fail(WireErrc::bad_value, "plan.ip_version", "must be 4 or 6");
  if (!p.streams.empty()) {
    std::uint64_t sum = 0;
    for (const auto& s : p.streams) sum += s.count;
    if (sum != p.count) fail(WireErrc::bad_value, "plan.streams", "counts must add up to plan.count");
  }
}
void check(const Hello& m) {
  if (m.min_version < 1 || m.min_version > m.max_version)
    fail(WireErrc::bad_value, "HELLO.versions", "need 1 <= min_version <= max_version");
}
void check(const HelloOk& m) {
  if (m.version < 1) fail(WireErrc::bad_value, "HELLO_OK.version", "must be >= 1");
}
void check(const RunSetup& m) {
  if (m.run_id.empty()) fail(WireErrc::bad_value, "run_id", "empty");
  for (const auto& f : m.flows)
    if (f.sport_min > f.sport_max) fail(WireErrc::bad_value, "flow.sport", "sport_min > sport_max");
  check(m.plan);
}
void check(const RunOk& m) {
  if (m.run_id.empty()) fail(WireErrc::bad_value, "run_id", "empty");
}
void check(const SendPlan& m) { check(m.plan); }
void check(const StatusReply& m) {
  if (m.progress_permille > 1000) fail(WireErrc::bad_value, "progress_permille", "> 1000");
}
void check(const FetchCapture& m) {
  if (m.max_bytes == 0 || m.max_bytes > kMaxChunkBytes)
    fail(WireErrc::bad_value, "max_bytes", "must be 1.." + std::to_string(kMaxChunkBytes));
}
void check(const CaptureChunk& m) {
  // offset + size <= total, written so that it cannot overflow
  if (m.offset > m.total || m.bytes.size() > m.total - m.offset)
    fail(WireErrc::bad_value, "CAPTURE_CHUNK", "offset + size > total");
  const bool last = m.offset + m.bytes.size() == m.total;
  if (m.sha256.size() != (last ? kSha256Len : 0))
    fail(WireErrc::bad_value, "sha256", last ? "the last chunk must carry 32 bytes" : "only the last chunk carries it");
}
template <class T>
void check(const T&) {}

void put16(std::uint8_t* p, std::uint16_t v) {
  p[0] = static_cast<std::uint8_t>(v >> 8);
  p[1] = static_cast<std::uint8_t>(v);
}
void put32(std::uint8_t* p, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<std::uint8_t>(v >> (24 - 8 * i));
}
std::uint16_t get16(const std::uint8_t* p) { return static_cast<std::uint16_t>((p[0] << 8) | p[1]); }
std::uint32_t get32(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | p[3];
}

template <std::size_t I = 0>
constexpr bool variant_order_matches() {
  if constexpr (I == std::variant_size_v<Message>) {
    return true;
  } else {
    return static_cast<std::size_t>(std::variant_alternative_t<I, Message>::kType) == I + 1 &&
           static_cast<std::size_t>(kMessageTable[I].type) == I + 1 && variant_order_matches<I + 1>();
  }
}
static_assert(variant_order_matches<>(), "Message alternatives and kMessageTable must follow type numbers");

// Builds alternative `index` of Message from the bounded archive (index < variant_size).
template <std::size_t I = 0>
Message load_alternative(std::size_t index, detail::InArchive& ar) {
  if constexpr (I == std::variant_size_v<Message>) {
    throw detail::WireFailure{WireErrc::unknown_type, "type index " + std::to_string(index)};
  } else {
    if (index != I) return load_alternative<I + 1>(index, ar);
    std::variant_alternative_t<I, Message> m;
    if constexpr (!std::is_empty_v<decltype(m)>) ar(m);
    check(m);
    return Message{std::move(m)};
  }
}

}  // namespace

const MessageInfo* find_message(std::uint16_t type) {
  if (type < 1 || type > kMessageTable.size()) return nullptr;
  return &kMessageTable[type - 1];
}

std::string_view message_name(MsgType type) {
  const MessageInfo* info = find_message(static_cast<std::uint16_t>(type));
  return info ? info->name : std::string_view("UNKNOWN");
}

std::string_view to_string(WireErrc e) {
  switch (e) {
    case WireErrc::short_header: return "short_header";
    case WireErrc::bad_magic: return "bad_magic";
    case WireErrc::unsupported_version: return "unsupported_version";
    case WireErrc::unknown_type: return "unknown_type";
    case WireErrc::bad_flags: return "bad_flags";
    case WireErrc::body_too_large: return "body_too_large";
    case WireErrc::body_length_mismatch: return "body_length_mismatch";
    case WireErrc::truncated: return "truncated";
    case WireErrc::length_exceeds_input: return "length_exceeds_input";
    case WireErrc::field_too_long: return "field_too_long";
    case WireErrc::bad_value: return "bad_value";
    case WireErrc::trailing_bytes: return "trailing_bytes";
    case WireErrc::bad_endianness: return "bad_endianness";
  }
  return "unknown_error";
}

Error WireError::to_error() const {
  return make_error(Errc::protocol, "proto", "decode: " + std::string(to_string(code)) + ": " + detail);
}

Result<std::vector<std::uint8_t>> encode(const Message& message, std::uint32_t request_id, std::uint16_t version) {
  const MsgType type = type_of(message);
  const MessageInfo* info = find_message(static_cast<std::uint16_t>(type));
  std::ostringstream body;
  try {
    std::visit([](const auto& m) { check(m); }, message);
    cereal::PortableBinaryOutputArchive ar(body, cereal::PortableBinaryOutputArchive::Options::LittleEndian());
    std::visit(
        [&ar](const auto& m) {
          if constexpr (!std::is_empty_v<std::decay_t<decltype(m)>>) ar(m);
        },
        message);
  } catch (const detail::WireFailure& f) {
    return make_error(Errc::usage, "proto",
                      "encode " + std::string(info->name) + ": " + std::string(to_string(f.code)) + ": " + f.detail);
  }
  const std::string b = std::move(body).str();
  if (b.size() > info->max_body) {
    // The per-field limits are chosen so that this cannot happen (a unit test encodes every message
    // with all fields at their maxima); reaching it is a bug in the tables.
    return make_error(Errc::internal, "proto",
                      "encode " + std::string(info->name) + ": body of " + std::to_string(b.size()) +
                          " bytes exceeds the type limit " + std::to_string(info->max_body));
  }
  std::vector<std::uint8_t> out(kHeaderSize + b.size());
  std::copy(kMagic.begin(), kMagic.end(), out.begin());
  put16(&out[4], version);
  put16(&out[6], static_cast<std::uint16_t>(type));
  put16(&out[8], 0);
  put32(&out[10], request_id);
  put32(&out[14], static_cast<std::uint32_t>(b.size()));
  std::copy(b.begin(), b.end(), out.begin() + kHeaderSize);
  return out;
}

std::optional<Header> peek_header(std::span<const std::uint8_t> bytes) noexcept {
  if (bytes.size() < kHeaderSize || !std::equal(kMagic.begin(), kMagic.end(), bytes.begin())) return std::nullopt;
  Header h;
  h.version = get16(&bytes[4]);
  h.type = get16(&bytes[6]);
  h.flags = get16(&bytes[8]);
  h.request_id = get32(&bytes[10]);
  h.body_length = get32(&bytes[14]);
  return h;
}

Decoded decode(std::span<const std::uint8_t> bytes) noexcept {
  try {
    if (bytes.size() < kHeaderSize)
      return WireError{WireErrc::short_header, std::to_string(bytes.size()) + " bytes"};
    auto header = peek_header(bytes);
    if (!header) return WireError{WireErrc::bad_magic, "not a tandem message"};
    const Header& h = *header;
    if (h.version < kMinProtocolVersion || h.version > kProtocolVersion)
      return WireError{WireErrc::unsupported_version, "version " + std::to_string(h.version) + ", this build speaks " +
                                                          std::to_string(kMinProtocolVersion) + ".." +
                                                          std::to_string(kProtocolVersion)};
    const MessageInfo* info = find_message(h.type);
    if (!info) return WireError{WireErrc::unknown_type, "type " + std::to_string(h.type)};
    if (h.flags != 0) return WireError{WireErrc::bad_flags, std::string(info->name) + ": flags " + std::to_string(h.flags)};
    if (h.body_length > info->max_body)
      return WireError{WireErrc::body_too_large, std::string(info->name) + ": declared " +
                                                     std::to_string(h.body_length) + " > max " +
                                                     std::to_string(info->max_body)};
    const auto body = bytes.subspan(kHeaderSize);
    if (body.size() != h.body_length)
      return WireError{WireErrc::body_length_mismatch, std::string(info->name) + ": declared " +
                                                           std::to_string(h.body_length) + ", got " +
                                                           std::to_string(body.size())};
    try {
      detail::InArchive ar(body);
      Message m = load_alternative(h.type - 1u, ar);
      if (ar.remaining() != 0)
        return WireError{WireErrc::trailing_bytes, std::string(info->name) + ": " + std::to_string(ar.remaining()) +
                                                       " bytes after the last field"};
      return Envelope{h, std::move(m)};
    } catch (const detail::WireFailure& f) {
      return WireError{f.code, std::string(info->name) + "." + f.detail};
    }
  } catch (const std::exception& e) {
    // Only allocation failure can get here (all other failures are WireFailure); report, don't die.
    return WireError{WireErrc::bad_value, std::string("unexpected: ") + e.what()};
  } catch (...) {
    return WireError{WireErrc::bad_value, "unexpected failure"};
  }
}

std::string_view to_string(SessionState s) {
  switch (s) {
    case SessionState::start: return "START";
    case SessionState::ready: return "READY";
    case SessionState::armed: return "ARMED";
    case SessionState::capturing: return "CAPTURING";
    case SessionState::stopped: return "STOPPED";
    case SessionState::closed: return "CLOSED";
    case SessionState::invalid: return "INVALID";
  }
  return "INVALID";
}

SessionState next_state(SessionState from, MsgType request) {
  using S = SessionState;
  using T = MsgType;
  if (from == S::closed || from == S::invalid) return S::invalid;
  if (request == T::bye) return S::closed;
  if (from == S::start) return request == T::hello ? S::ready : S::invalid;
  // Harmless in every open state: they change nothing.
  if (request == T::clock_probe || request == T::status) return from;
  switch (from) {
    case S::ready:
      if (request == T::run_setup) return S::armed;
      if (request == T::fetch_capture) return S::ready;  // valid; the agent answers not_found (captures end with their run)
      break;
    case S::armed:
      if (request == T::capture_start) return S::capturing;
      if (request == T::run_end) return S::ready;
      break;
    case S::capturing:
      if (request == T::send_plan) return S::capturing;
      if (request == T::capture_stop) return S::stopped;
      if (request == T::run_end) return S::ready;  // ends capture and sending first
      break;
    case S::stopped:
      if (request == T::fetch_capture) return S::stopped;
      if (request == T::run_end) return S::ready;
      break;
    default: break;
  }
  return S::invalid;
}

}  // namespace tandem::proto
