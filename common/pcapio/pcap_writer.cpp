#include "common/pcapio/pcap_writer.hpp"

#include <algorithm>
#include <utility>

#include "common/base/log.hpp"
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
  auto fd = detail::open_for_write(path);
  if (!fd) return fd.error();
  PcapWriter w;
  w.fd_ = *fd;
  w.path_ = path;
  w.snaplen_ = snaplen == 0 ? kMaxSnaplen : snaplen;
  w.buffer_bytes_ = std::max<std::size_t>(buffer_bytes, 4096);
  w.buf_.reserve(w.buffer_bytes_ + 4096);
  auto& b = w.buf_;
  detail::put_u32(b, kMagicNanoseconds);
  detail::put_u16(b, 2);  // version 2.4
  detail::put_u16(b, 4);
  detail::put_u32(b, 0);  // thiszone: timestamps are UTC
  detail::put_u32(b, 0);  // sigfigs
  detail::put_u32(b, w.snaplen_);
  detail::put_u32(b, static_cast<std::uint32_t>(lt));
  if (auto s = w.flush(); !s) return s.error();
  return w;
}

PcapWriter::PcapWriter(PcapWriter&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      path_(std::move(other.path_)),
      snaplen_(other.snaplen_),
      buf_(std::move(other.buf_)),
      buffer_bytes_(other.buffer_bytes_),
      packets_(other.packets_),
      failed_(other.failed_),
      first_error_(std::move(other.first_error_)) {}

PcapWriter& PcapWriter::operator=(PcapWriter&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) {
      if (auto s = close(); !s) log::get(kSubsystem)->error("{}", s.error().text());
    }
    fd_ = std::exchange(other.fd_, -1);
    path_ = std::move(other.path_);
    snaplen_ = other.snaplen_;
    buf_ = std::move(other.buf_);
    buffer_bytes_ = other.buffer_bytes_;
    packets_ = other.packets_;
    failed_ = other.failed_;
    first_error_ = std::move(other.first_error_);
  }
  return *this;
}

PcapWriter::~PcapWriter() {
  if (fd_ >= 0) {
    if (auto s = close(); !s) log::get(kSubsystem)->error("{}", s.error().text());
  }
}

Status PcapWriter::fail(Error e) {
  if (!failed_) {
    failed_ = true;
    first_error_ = e;
  }
  return e;
}

Status PcapWriter::write(const PacketView& packet) {
  if (failed_) return first_error_;
  if (fd_ < 0) return make_error(Errc::usage, kSubsystem, "write " + path_ + ": writer is closed");
  // Built only on failure: this is the per-packet hot path.
  const auto reject = [this](const std::string& why) -> Error {
    return make_error(Errc::usage, kSubsystem,
                      "write " + path_ + " packet " + std::to_string(packets_ + 1) + ": " + why);
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
  detail::put_u32(buf_, static_cast<std::uint32_t>(secs));
  detail::put_u32(buf_, static_cast<std::uint32_t>(packet.ts_ns % 1'000'000'000));
  detail::put_u32(buf_, caplen);
  detail::put_u32(buf_, origlen);
  buf_.insert(buf_.end(), packet.data.begin(), packet.data.begin() + caplen);
  ++packets_;
  if (buf_.size() >= buffer_bytes_) return flush();
  return ok_status();
}

Status PcapWriter::flush() {
  if (failed_) return first_error_;
  if (fd_ < 0 || buf_.empty()) return ok_status();
  auto s = detail::write_all(fd_, path_, buf_);
  buf_.clear();
  if (!s) return fail(s.error());
  return ok_status();
}

Status PcapWriter::close() {
  if (fd_ < 0) return failed_ ? Status(first_error_) : ok_status();
  Status s = flush();
  Status c = detail::sync_and_close(fd_, path_);
  fd_ = -1;
  if (!s) return s;
  if (!c) return fail(c.error());
  return ok_status();
}

}  // namespace tandem::pcapio
