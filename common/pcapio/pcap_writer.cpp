#include "common/pcapio/pcap_writer.hpp"

#include <algorithm>
#include <utility>

#include "common/pcapio/file_out.hpp"

namespace tandem::pcapio {

namespace {
constexpr const char* kSubsystem = "pcap";
constexpr std::uint32_t kMagicNanoseconds = 0xa1b23c4d;
constexpr std::uint32_t kMaxSnaplen = 262144;  // libpcap's MAXIMUM_SNAPLEN
}  // namespace

Result<PcapWriter> PcapWriter::create(const std::string& path, int lt, std::uint32_t snaplen,
                                      std::size_t buffer_bytes) {
  if (lt < 0) return make_error(Errc::usage, kSubsystem, "create " + path + ": invalid link type");
  auto file = detail::BufferedFile::open(path, buffer_bytes);
  if (!file) return file.error();
  PcapWriter w;
  w.file_ = std::move(file).value();
  w.snaplen_ = snaplen == 0 ? kMaxSnaplen : snaplen;
  auto& b = w.file_.buffer();
  detail::put_u32(b, kMagicNanoseconds);
  detail::put_u16(b, 2);  // version 2.4
  detail::put_u16(b, 4);
  detail::put_u32(b, 0);  // thiszone: timestamps are UTC
  detail::put_u32(b, 0);  // sigfigs
  detail::put_u32(b, w.snaplen_);
  detail::put_u32(b, static_cast<std::uint32_t>(lt));
  // Written at once so that a file that cannot be written fails here, not at the first packet.
  if (auto s = w.flush(); !s) return s.error();
  return w;
}

Status PcapWriter::write(const PacketView& packet) {
  if (auto s = file_.usable(); !s) return s;
  // Built only on failure: this is the per-packet hot path.
  const auto reject = [this](const std::string& why) -> Error {
    return make_error(Errc::usage, kSubsystem,
                      "write " + file_.path() + " packet " + std::to_string(packets_ + 1) + ": " + why);
  };
  if (packet.ts_ns < 0) return reject("negative timestamp");
  if (packet.data.size() > 0xFFFFFFFFu) return reject("too large");
  const std::uint32_t origlen = packet.origlen == 0 ? packet.caplen() : packet.origlen;
  if (origlen < packet.caplen()) {
    return reject("origlen smaller than captured length");
  }
  const std::uint32_t caplen = std::min(packet.caplen(), snaplen_);
  const auto secs = static_cast<std::uint64_t>(packet.ts_ns / 1'000'000'000);
  if (secs > 0xFFFFFFFFu) return reject("timestamp after 2106");
  auto& b = file_.buffer();
  detail::put_u32(b, static_cast<std::uint32_t>(secs));
  detail::put_u32(b, static_cast<std::uint32_t>(packet.ts_ns % 1'000'000'000));
  detail::put_u32(b, caplen);
  detail::put_u32(b, origlen);
  b.insert(b.end(), packet.data.begin(), packet.data.begin() + caplen);
  ++packets_;
  return file_.record_done();
}

}  // namespace tandem::pcapio
