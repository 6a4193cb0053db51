#include "common/pcapio/pcapng_writer.hpp"

#include <algorithm>
#include <utility>

#include <unistd.h>

#include "common/pcapio/file_out.hpp"

#ifndef TANDEM_VERSION
#define TANDEM_VERSION "unknown"
#endif

namespace tandem::pcapio {

namespace {

constexpr const char* kSubsystem = "pcap";

// Block types and option codes from the pcapng specification (draft-ietf-opsawg-pcapng).
constexpr std::uint32_t kShbType = 0x0A0D0D0A;
constexpr std::uint32_t kIdbType = 0x00000001;
constexpr std::uint32_t kEpbType = 0x00000006;
constexpr std::uint32_t kIsbType = 0x00000005;
constexpr std::uint32_t kByteOrderMagic = 0x1A2B3C4D;
constexpr std::uint16_t kOptEndOfOpt = 0;
constexpr std::uint16_t kOptComment = 1;
constexpr std::uint16_t kShbHardware = 2;
constexpr std::uint16_t kShbOs = 3;
constexpr std::uint16_t kShbUserAppl = 4;
constexpr std::uint16_t kIfName = 2;
constexpr std::uint16_t kIfDescription = 3;
constexpr std::uint16_t kIfTsresol = 9;
constexpr std::uint16_t kIsbFilterAccept = 6;
constexpr std::uint16_t kIsbOsDrop = 7;
constexpr std::uint16_t kIsbIfDrop = 5;
constexpr std::uint16_t kIsbUsrDeliv = 8;
constexpr std::uint8_t kTsresolNanoseconds = 9;  // 10^-9 s units
constexpr std::size_t kMaxOptionLength = 0xFFFF;

using detail::pad_to_4;
using detail::patch_u32;
using detail::put_u16;
using detail::put_u32;
using detail::put_u64;

// Appends one option (code, length, value padded to 32 bits); empty values are omitted.
// Returns whether it wrote anything.
bool put_option(std::vector<std::uint8_t>& b, std::uint16_t code, std::string_view value) {
  if (value.empty()) return false;
  put_u16(b, code);
  put_u16(b, static_cast<std::uint16_t>(value.size()));
  b.insert(b.end(), value.begin(), value.end());
  pad_to_4(b);
  return true;
}

// Appends a 64-bit counter option when the value is known. Returns whether it wrote anything.
bool put_counter(std::vector<std::uint8_t>& b, std::uint16_t code, std::optional<std::uint64_t> value) {
  if (!value) return false;
  put_u16(b, code);
  put_u16(b, 8);
  put_u64(b, *value);
  return true;
}

// Starts a block: type and a placeholder total length. Returns the block's start offset.
std::size_t begin_block(std::vector<std::uint8_t>& b, std::uint32_t type) {
  const std::size_t start = b.size();
  put_u32(b, type);
  put_u32(b, 0);
  return start;
}

// Ends a block: trailing total length, then patches the leading one.
void end_block(std::vector<std::uint8_t>& b, std::size_t start, bool had_options) {
  if (had_options) {
    put_u16(b, kOptEndOfOpt);
    put_u16(b, 0);
  }
  const auto total = static_cast<std::uint32_t>(b.size() - start + 4);
  put_u32(b, total);
  patch_u32(b, start + 4, total);
}

}  // namespace

std::string default_user_appl() { return std::string("tandem ") + TANDEM_VERSION; }

Result<PcapngWriter> PcapngWriter::create(const std::string& path, PcapngOptions options) {
  for (const std::string* s : {&options.user_appl, &options.hardware, &options.os}) {
    if (s->size() > kMaxOptionLength) {
      return make_error(Errc::usage, kSubsystem, "create " + path + ": SHB option too long");
    }
  }
  auto file = detail::BufferedFile::open(path, options.buffer_bytes);
  if (!file) return file.error();
  PcapngWriter w;
  w.file_ = std::move(file).value();

  auto& b = w.file_.buffer();
  const std::size_t start = begin_block(b, kShbType);
  put_u32(b, kByteOrderMagic);
  put_u16(b, 1);  // major version
  put_u16(b, 0);  // minor version
  put_u64(b, ~std::uint64_t{0});  // section length unknown: we stream
  bool opts = put_option(b, kShbHardware, options.hardware);
  opts |= put_option(b, kShbOs, options.os);
  opts |= put_option(b, kShbUserAppl, options.user_appl);
  end_block(b, start, opts);
  // Written at once so that a file that cannot be written fails here, not at the first packet.
  if (auto s = w.flush(); !s) {
    static_cast<void>(w.close());  // returned here: the destructor would log the same error again
    return s.error();
  }
  return w;
}

Result<std::uint32_t> PcapngWriter::add_interface(const PcapngInterface& iface) {
  if (auto s = file_.usable(); !s) return s.error();
  if (iface.name.size() > kMaxOptionLength || iface.description.size() > kMaxOptionLength ||
      iface.linktype < 0 || iface.linktype > 0xFFFF) {
    return make_error(Errc::usage, kSubsystem, "write " + file_.path() + ": invalid interface");
  }
  auto& b = file_.buffer();
  const std::size_t start = begin_block(b, kIdbType);
  put_u16(b, static_cast<std::uint16_t>(iface.linktype));
  put_u16(b, 0);  // reserved
  put_u32(b, iface.snaplen);
  put_option(b, kIfName, iface.name);
  put_option(b, kIfDescription, iface.description);
  const char tsresol[1] = {static_cast<char>(kTsresolNanoseconds)};
  put_option(b, kIfTsresol, std::string_view(tsresol, 1));
  end_block(b, start, true);
  snaplens_.push_back(iface.snaplen);
  if (auto s = file_.record_done(); !s) return s.error();
  return static_cast<std::uint32_t>(snaplens_.size() - 1);
}

Status PcapngWriter::write(std::uint32_t interface_id, const PacketView& packet,
                           std::string_view comment) {
  if (auto s = file_.usable(); !s) return s;
  // Built only on failure: this is the per-packet hot path.
  const auto reject = [this](const std::string& why) -> Error {
    return make_error(Errc::usage, kSubsystem,
                      "write " + file_.path() + " packet " + std::to_string(packets_ + 1) + ": " + why);
  };
  if (interface_id >= snaplens_.size()) {
    return reject("no interface " + std::to_string(interface_id));
  }
  if (packet.ts_ns < 0) return reject("negative timestamp");
  if (packet.data.size() > 0xFFFFFFF0u) {
    return reject("packet too large");
  }
  const std::uint32_t origlen = packet.origlen == 0 ? packet.caplen() : packet.origlen;
  if (origlen < packet.caplen()) {
    return reject("origlen smaller than captured length");
  }
  if (comment.size() > kMaxOptionLength) {
    return reject("comment longer than 65535 bytes");
  }
  const std::uint32_t snaplen = snaplens_[interface_id];
  const std::uint32_t caplen = snaplen != 0 ? std::min(packet.caplen(), snaplen) : packet.caplen();
  const auto ts = static_cast<std::uint64_t>(packet.ts_ns);  // if_tsresol = 9: units are ns

  auto& b = file_.buffer();
  const std::size_t start = begin_block(b, kEpbType);
  put_u32(b, interface_id);
  put_u32(b, static_cast<std::uint32_t>(ts >> 32));
  put_u32(b, static_cast<std::uint32_t>(ts));
  put_u32(b, caplen);
  put_u32(b, origlen);
  b.insert(b.end(), packet.data.begin(), packet.data.begin() + caplen);
  pad_to_4(b);
  const bool opts = put_option(b, kOptComment, comment);
  end_block(b, start, opts);
  ++packets_;
  return file_.record_done();
}

Status PcapngWriter::write_statistics(std::uint32_t interface_id, const PcapngInterfaceStats& stats) {
  if (auto s = file_.usable(); !s) return s;
  const auto reject = [this](const std::string& why) -> Error {
    return make_error(Errc::usage, kSubsystem, "write " + file_.path() + " statistics: " + why);
  };
  if (interface_id >= snaplens_.size()) return reject("no interface " + std::to_string(interface_id));
  if (stats.ts_ns < 0) return reject("negative timestamp");
  if (stats.comment.size() > kMaxOptionLength) return reject("comment longer than 65535 bytes");
  const auto ts = static_cast<std::uint64_t>(stats.ts_ns);
  auto& b = file_.buffer();
  const std::size_t start = begin_block(b, kIsbType);
  put_u32(b, interface_id);
  put_u32(b, static_cast<std::uint32_t>(ts >> 32));
  put_u32(b, static_cast<std::uint32_t>(ts));
  bool opts = put_option(b, kOptComment, stats.comment);
  opts |= put_counter(b, kIsbIfDrop, stats.if_drop);
  opts |= put_counter(b, kIsbFilterAccept, stats.filter_accept);
  opts |= put_counter(b, kIsbOsDrop, stats.os_drop);
  opts |= put_counter(b, kIsbUsrDeliv, stats.user_delivered);
  end_block(b, start, opts);
  return file_.record_done();
}

}  // namespace tandem::pcapio
