#include "common/packet/tcp_option.hpp"

#include "common/packet/bytes.hpp"

namespace tandem::packet {

TcpOption TcpOption::mss(std::uint16_t value) {
  return {kTcpOptMss, {static_cast<std::uint8_t>(value >> 8), static_cast<std::uint8_t>(value)}};
}

TcpOption TcpOption::wscale(std::uint8_t shift) { return {kTcpOptWscale, {shift}}; }

TcpOption TcpOption::sack_perm() { return {kTcpOptSackPerm, {}}; }

TcpOption TcpOption::sack(std::span<const SackBlock> blocks) {
  TcpOption o{kTcpOptSack, {}};
  ByteWriter w(o.data);
  for (const auto& b : blocks) {
    w.put_u32(b.left);
    w.put_u32(b.right);
  }
  return o;
}

TcpOption TcpOption::timestamp(std::uint32_t value, std::uint32_t echo_reply) {
  TcpOption o{kTcpOptTimestamp, {}};
  ByteWriter w(o.data);
  w.put_u32(value);
  w.put_u32(echo_reply);
  return o;
}

TcpOption TcpOption::nop() { return {kTcpOptNop, {}}; }
TcpOption TcpOption::eol() { return {kTcpOptEol, {}}; }
TcpOption TcpOption::raw(std::uint8_t kind, std::vector<std::uint8_t> bytes) {
  return {kind, std::move(bytes)};
}

std::string option_name(std::uint8_t kind) {
  switch (kind) {
    case kTcpOptEol: return "eol";
    case kTcpOptNop: return "nop";
    case kTcpOptMss: return "mss";
    case kTcpOptWscale: return "wscale";
    case kTcpOptSackPerm: return "sack_perm";
    case kTcpOptSack: return "sack";
    case kTcpOptTimestamp: return "timestamp";
    default: return "kind" + std::to_string(kind);
  }
}

std::size_t tcp_options_wire_size(std::span<const TcpOption> options) {
  std::size_t n = 0;
  for (const auto& o : options) n += o.wire_size();
  return n;
}

Result<std::vector<std::uint8_t>> serialize_tcp_options(std::span<const TcpOption> options) {
  for (const auto& o : options) {
    if (o.is_single_byte() && !o.data.empty())
      return make_error(Errc::usage, "tcp-options",
                        option_name(o.kind) + " is a single-byte option and cannot carry data");
    if (o.data.size() > 253)
      return make_error(Errc::usage, "tcp-options",
                        option_name(o.kind) + " data of " + std::to_string(o.data.size()) +
                            " bytes does not fit a one-byte length");
  }
  const std::size_t size = tcp_options_wire_size(options);
  if (size > kTcpOptionSpace)
    return make_error(Errc::usage, "tcp-options",
                      "options take " + std::to_string(size) + " bytes, more than the " +
                          std::to_string(kTcpOptionSpace) + "-byte TCP option space");
  std::vector<std::uint8_t> out;
  out.reserve((size + 3) & ~std::size_t{3});
  ByteWriter w(out);
  for (const auto& o : options) {
    w.put_u8(o.kind);
    if (o.is_single_byte()) continue;
    w.put_u8(static_cast<std::uint8_t>(2 + o.data.size()));
    w.put_bytes(o.data);
  }
  w.put_zeros((4 - out.size() % 4) % 4);
  return out;
}

bool TcpOptionReader::next(TcpOptionView& out) {
  if (done_ || pos_ >= raw_.size()) {
    done_ = true;
    return false;
  }
  const std::uint8_t kind = raw_[pos_];
  if (kind == kTcpOptEol || kind == kTcpOptNop) {
    out = {kind, {}};
    ++pos_;
    if (kind == kTcpOptEol) {
      // Everything after EOL is padding; the walk ends here.
      done_ = true;
    }
    return true;
  }
  if (raw_.size() - pos_ < 2) {
    done_ = malformed_ = true;
    return false;
  }
  const std::uint8_t len = raw_[pos_ + 1];
  if (len < 2 || len > raw_.size() - pos_) {
    done_ = malformed_ = true;
    return false;
  }
  out = {kind, raw_.subspan(pos_ + 2, len - 2u)};
  pos_ += len;
  return true;
}

std::vector<TcpOption> parse_tcp_option_bytes(std::span<const std::uint8_t> raw, bool* malformed) {
  std::vector<TcpOption> out;
  const bool ok = for_each_tcp_option(raw, [&](const TcpOptionView& v) {
    out.push_back({v.kind, std::vector<std::uint8_t>(v.data.begin(), v.data.end())});
  });
  if (malformed) *malformed = !ok;
  return out;
}

}  // namespace tandem::packet
