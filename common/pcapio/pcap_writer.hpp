// PcapWriter: classic pcap with the nanosecond magic (0xa1b23c4d), little-endian, for tools that do
// not read pcapng. Same buffering and error contract as PcapngWriter.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/base/result.hpp"
#include "common/pcapio/file_out.hpp"
#include "common/pcapio/packet.hpp"

namespace tandem::pcapio {

class PcapWriter {
 public:
  // Creates/truncates path and writes the file header. snaplen 0 means 262144 (libpcap's maximum).
  static Result<PcapWriter> create(const std::string& path, int linktype, std::uint32_t snaplen = 0,
                                   std::size_t buffer_bytes = 1 << 20);

  // Move-only; the destructor closes and only logs an error at that point: call close() to see it.

  // Errc::usage if ts_ns < 0 or origlen < caplen (origlen 0 means data.size()); data longer than the
  // snaplen is cut to it (origlen keeps the true length).
  Status write(const PacketView& packet);
  Status flush() { return file_.flush(); }
  Status close() { return file_.close(); }  // idempotent; the first error seen

  std::uint64_t packets_written() const { return packets_; }

 private:
  PcapWriter() = default;

  detail::BufferedFile file_;
  std::uint32_t snaplen_ = 0;
  std::uint64_t packets_ = 0;
};

}  // namespace tandem::pcapio
