// PcapReader: streams packets out of a pcap or pcapng file through libpcap, one at a time, with
// nanosecond timestamps whatever the file's resolution. Nothing is loaded whole.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "common/base/result.hpp"
#include "common/pcapio/packet.hpp"

struct pcap;

namespace tandem::pcapio {

// Limitation (libpcap): in a pcapng file every interface must have the same link type, and the
// packet's interface id, comments and other options are not exposed.
class PcapReader {
 public:
  // Errors: Errc::environment when the file cannot be opened (missing, unreadable), Errc::usage
  // when it is not a pcap/pcapng file (message carries libpcap's reason).
  static Result<PcapReader> open(const std::string& path);

  PcapReader(PcapReader&& other) noexcept;
  PcapReader& operator=(PcapReader&& other) noexcept;
  PcapReader(const PcapReader&) = delete;
  PcapReader& operator=(const PcapReader&) = delete;
  ~PcapReader();

  const std::string& path() const { return path_; }
  int linktype() const { return linktype_; }  // LINKTYPE_* (see packet.hpp)
  int snaplen() const { return snaplen_; }
  std::uint64_t packets_read() const { return count_; }

  // The next packet, or nullopt at the end of the file. The view points into the reader's buffer
  // and is valid until the next call. A truncated or corrupt record is Errc::usage naming the file
  // and the packet number; packets before it were good.
  Result<std::optional<PacketView>> next();

  // Streams every remaining packet to fn (views valid during the call only). Returns how many.
  Result<std::uint64_t> for_each(const PacketFn& fn);

 private:
  PcapReader() = default;

  pcap* handle_ = nullptr;
  std::string path_;
  int linktype_ = 0;
  int snaplen_ = 0;
  std::uint64_t count_ = 0;
};

}  // namespace tandem::pcapio
