#include "common/pcapio/pcap_reader.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>

#include <pcap/pcap.h>

namespace tandem::pcapio {

namespace {
constexpr const char* kSubsystem = "pcap";
}

Result<PcapReader> PcapReader::open(const std::string& path, CutShort cut) {
  // Opening the FILE ourselves separates "cannot open" (environment) from "not a capture" (bad
  // input): libpcap reports both through the same error string.
  FILE* fp = std::fopen(path.c_str(), "rb");
  if (fp == nullptr) {
    return make_error(Errc::environment, kSubsystem,
                      "open " + path + ": " + std::strerror(errno));
  }
  char errbuf[PCAP_ERRBUF_SIZE] = {};
  pcap_t* p = pcap_fopen_offline_with_tstamp_precision(fp, PCAP_TSTAMP_PRECISION_NANO, errbuf);
  if (p == nullptr) {
    std::fclose(fp);  // libpcap leaves the FILE to us when it fails
    return make_error(Errc::usage, kSubsystem,
                      "read " + path + ": not a readable pcap/pcapng file: " + errbuf);
  }
  PcapReader r;
  r.handle_ = p;
  r.path_ = path;
  r.linktype_ = linktype_from_dlt(pcap_datalink(p));
  r.snaplen_ = pcap_snapshot(p);
  r.cut_ = cut;
  return r;
}

PcapReader::PcapReader(PcapReader&& other) noexcept
    : handle_(std::exchange(other.handle_, nullptr)),
      path_(std::move(other.path_)),
      linktype_(other.linktype_),
      snaplen_(other.snaplen_),
      count_(other.count_),
      cut_(other.cut_),
      cut_short_(std::move(other.cut_short_)) {}

PcapReader& PcapReader::operator=(PcapReader&& other) noexcept {
  if (this != &other) {
    if (handle_ != nullptr) pcap_close(handle_);
    handle_ = std::exchange(other.handle_, nullptr);
    path_ = std::move(other.path_);
    linktype_ = other.linktype_;
    snaplen_ = other.snaplen_;
    count_ = other.count_;
    cut_ = other.cut_;
    cut_short_ = std::move(other.cut_short_);
  }
  return *this;
}

PcapReader::~PcapReader() {
  if (handle_ != nullptr) pcap_close(handle_);  // also closes the FILE
}

Result<std::optional<PacketView>> PcapReader::next() {
  if (cut_short_) return std::optional<PacketView>();  // libpcap must not be asked again past the cut
  pcap_pkthdr* h = nullptr;
  const u_char* bytes = nullptr;
  const int rc = pcap_next_ex(handle_, &h, &bytes);
  if (rc == 1) {
    ++count_;
    // Opened with nanosecond precision, libpcap scales µs files so tv_usec holds nanoseconds.
    PacketView v;
    v.ts_ns = static_cast<Nanos>(h->ts.tv_sec) * 1'000'000'000 + static_cast<Nanos>(h->ts.tv_usec);
    v.origlen = h->len;
    v.data = std::span<const std::uint8_t>(bytes, h->caplen);
    return std::optional<PacketView>(v);
  }
  if (rc == PCAP_ERROR_BREAK) return std::optional<PacketView>();
  // libpcap reads each record (pcap header + body, or a whole pcapng block) with fread of its
  // announced length: a short read at the end of the file leaves the FILE at EOF, a corrupt record
  // in the middle does not. So EOF after an error means the file stops inside a record, the way
  // tshark ("cut short in the middle of a packet") also reads it.
  if (cut_ == CutShort::stop && std::feof(pcap_file(handle_)) != 0) {
    cut_short_ = pcap_geterr(handle_);
    return std::optional<PacketView>();
  }
  return make_error(Errc::usage, kSubsystem,
                    "read " + path_ + " packet " + std::to_string(count_ + 1) + ": " +
                        pcap_geterr(handle_));
}

Result<std::uint64_t> PcapReader::for_each(const PacketFn& fn) {
  std::uint64_t n = 0;
  for (;;) {
    auto p = next();
    if (!p) return p.error();
    if (!p->has_value()) return n;
    fn(**p);
    ++n;
  }
}

}  // namespace tandem::pcapio
