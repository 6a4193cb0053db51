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

// What a file that ends inside a record means: a capture copied while tcpdump still wrote it (its
// last record header or body incomplete, or a pcapng block cut), or a corrupt length in the last
// record — the two cannot be told apart.
enum class CutShort {
  error,  // next() returns Errc::usage (default: a caller that did not ask for it must not lose data)
  stop,   // next() ends the file after the last complete packet; cut_short() says so
};

// Limitation (libpcap): in a pcapng file every interface must have the same link type, and the
// packet's interface id, comments and other options are not exposed.
class PcapReader {
 public:
  // Errors: Errc::environment when the file cannot be opened (missing, unreadable), Errc::usage
  // when it is not a pcap/pcapng file (message carries libpcap's reason) — including a file cut
  // inside its file header (pcap) or before its first Interface Description Block (pcapng).
  static Result<PcapReader> open(const std::string& path, CutShort cut = CutShort::error);

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
  // and is valid until the next call. A corrupt record is Errc::usage naming the file and the
  // packet number; packets before it were good. A file that ends inside a record is the same error
  // with CutShort::error, and the end of the file (for good) with CutShort::stop.
  Result<std::optional<PacketView>> next();

  // With CutShort::stop, once next() has ended a file that ends inside a record: libpcap's reason
  // ("truncated dump file; tried to read 74 captured bytes, only got 30"); nullopt otherwise.
  // packets_read() is then the number of complete packets.
  const std::optional<std::string>& cut_short() const { return cut_short_; }

  // Streams every remaining packet to fn (views valid during the call only). Returns how many.
  Result<std::uint64_t> for_each(const PacketFn& fn);

 private:
  PcapReader() = default;

  pcap* handle_ = nullptr;
  std::string path_;
  int linktype_ = 0;
  int snaplen_ = 0;
  std::uint64_t count_ = 0;
  CutShort cut_ = CutShort::error;
  std::optional<std::string> cut_short_;
};

}  // namespace tandem::pcapio
