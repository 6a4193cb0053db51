// PcapWriter: classic pcap with the nanosecond magic (0xa1b23c4d), little-endian, for tools that do
// not read pcapng. Same buffering and error contract as PcapngWriter.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/base/result.hpp"
#include "common/pcapio/packet.hpp"

namespace tandem::pcapio {

class PcapWriter {
 public:
  // Creates/truncates path and writes the file header. snaplen 0 means 262144 (libpcap's maximum).
  static Result<PcapWriter> create(const std::string& path, int linktype, std::uint32_t snaplen = 0,
                                   std::size_t buffer_bytes = 1 << 20);

  PcapWriter(PcapWriter&& other) noexcept;
  PcapWriter& operator=(PcapWriter&& other) noexcept;
  PcapWriter(const PcapWriter&) = delete;
  PcapWriter& operator=(const PcapWriter&) = delete;
  ~PcapWriter();  // closes; an error at that point is only logged, so call close() to see it

  // Errc::usage if ts_ns < 0 or origlen < caplen (origlen 0 means data.size()); data longer than the
  // snaplen is cut to it (origlen keeps the true length).
  Status write(const PacketView& packet);
  Status flush();
  Status close();

  std::uint64_t packets_written() const { return packets_; }

 private:
  PcapWriter() = default;
  Status fail(Error e);

  int fd_ = -1;
  std::string path_;
  std::uint32_t snaplen_ = 0;
  std::vector<std::uint8_t> buf_;
  std::size_t buffer_bytes_ = 0;
  std::uint64_t packets_ = 0;
  bool failed_ = false;
  Error first_error_;
};

}  // namespace tandem::pcapio
