// PcapngWriter: writes pcapng (libpcap can only read it): one Section Header Block naming tandem,
// one Interface Description Block per interface with nanosecond resolution, Enhanced Packet Blocks
// with optional comments, and Interface Statistics Blocks with the capture's counters. Output is little-endian and buffered; every write error (disk full, ...)
// is returned as a Result and the writer then refuses further writes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/result.hpp"
#include "common/pcapio/file_out.hpp"
#include "common/pcapio/packet.hpp"

namespace tandem::pcapio {

// "tandem <project version>", the default shb_userappl.
std::string default_user_appl();

struct PcapngOptions {
  std::string user_appl = default_user_appl();  // shb_userappl; empty: option omitted
  std::string hardware;                         // shb_hardware; empty: omitted
  std::string os;                               // shb_os; empty: omitted
  std::size_t buffer_bytes = 1 << 20;           // flushed to the file when it fills
};

struct PcapngInterface {
  int linktype = linktype::kEthernet;  // LINKTYPE_*
  std::uint32_t snaplen = 0;           // 0 = no limit (pcapng convention)
  std::string name;                    // if_name; empty: omitted
  std::string description;             // if_description; empty: omitted
};

// One Interface Statistics Block (what Wireshark's Capture File Properties shows as drops). A counter
// left nullopt is omitted: unknown is not 0 (T17).
struct PcapngInterfaceStats {
  std::int64_t ts_ns = 0;                       // when the counters were taken (>= 0)
  std::optional<std::uint64_t> filter_accept;   // isb_filteraccept: accepted by the capture filter (ps_recv)
  std::optional<std::uint64_t> os_drop;         // isb_osdrop: dropped by the OS for lack of buffer (ps_drop)
  std::optional<std::uint64_t> if_drop;         // isb_ifdrop: dropped by the interface (ps_ifdrop, when known)
  std::optional<std::uint64_t> user_delivered;  // isb_usrdeliv: delivered to the application
  std::string comment;                          // opt_comment; empty: omitted
};

class PcapngWriter {
 public:
  // Creates/truncates path and writes the SHB. Errc::environment if it cannot be created.
  static Result<PcapngWriter> create(const std::string& path, PcapngOptions options = {});

  // Move-only; the destructor closes and only logs an error at that point: call close() to see it.

  // Writes an IDB (if_tsresol = 9) and returns its interface id (0, 1, ... in call order).
  Result<std::uint32_t> add_interface(const PcapngInterface& iface);

  // Writes one EPB. Preconditions checked (Errc::usage): interface_id exists, ts_ns >= 0,
  // origlen >= data.size(), comment <= 65535 bytes (UTF-8 is the caller's job). origlen 0 means
  // data.size(). Data longer than the interface's snaplen (if not 0) is cut to it; origlen keeps the
  // true length. A usage error rejects only that packet; an I/O error ends the writer.
  Status write(std::uint32_t interface_id, const PacketView& packet, std::string_view comment = {});

  // Writes one ISB for interface_id (Errc::usage: no such interface, ts_ns < 0, comment too long).
  Status write_statistics(std::uint32_t interface_id, const PcapngInterfaceStats& stats);

  // Flushes the buffer to the file (Errc::environment on a write error such as ENOSPC).
  Status flush() { return file_.flush(); }
  // Flushes, fsyncs and closes. Idempotent; returns the first error seen by this writer.
  Status close() { return file_.close(); }

  std::uint64_t packets_written() const { return packets_; }

 private:
  PcapngWriter() = default;

  detail::BufferedFile file_;
  std::vector<std::uint32_t> snaplens_;  // per interface id
  std::uint64_t packets_ = 0;
};

}  // namespace tandem::pcapio
