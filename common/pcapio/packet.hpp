// Types shared by every pcapio reader, writer and capture: one captured frame as a borrowed view, the
// file-format link types we deal in, capture counters, and the compact in-memory packet store.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "common/base/clock.hpp"

namespace tandem::pcapio {

// Link types are always the LINKTYPE_* values of the tcpdump.org registry (what pcap and pcapng files
// carry), never libpcap's platform DLT_* numbers: they differ for raw IP (DLT_RAW is 12 on Linux,
// LINKTYPE_RAW is 101). pcapio converts at the libpcap boundary.
namespace linktype {
inline constexpr int kNull = 0;          // BSD loopback (4-byte host-order AF)
inline constexpr int kEthernet = 1;
inline constexpr int kRaw = 101;         // raw IPv4/IPv6, version nibble tells which
inline constexpr int kLinuxSll = 113;    // Linux "cooked" v1: 16-byte header, pkttype at offset 0
inline constexpr int kLinuxSll2 = 276;   // Linux "cooked" v2: 20-byte header, ifindex, pkttype at 10
inline constexpr int kIpv4 = 228;
inline constexpr int kIpv6 = 229;
}  // namespace linktype

// SLL/SLL2 frames say whether the kernel saw the packet leave (pkttype 4 = outgoing) or arrive; the
// decoder uses that on device "any" to tell probes from replies.
inline bool is_linux_cooked(int lt) { return lt == linktype::kLinuxSll || lt == linktype::kLinuxSll2; }

// libpcap's DLT_* <-> registry LINKTYPE_*; identity except for the few historical clashes.
int linktype_from_dlt(int dlt);
int dlt_from_linktype(int lt);
// "EN10MB", "LINUX_SLL2", ... or "LINKTYPE_<n>" for unknown values (for messages and logs).
std::string linktype_name(int lt);

enum class TsPrecision { micro, nano };
inline const char* to_string(TsPrecision p) { return p == TsPrecision::nano ? "ns" : "us"; }

// One frame. `data` is the captured bytes (caplen == data.size()), `origlen` the length on the wire
// (>= caplen when the snaplen cut it). The view borrows memory owned by whoever produced it; see the
// producer for how long it stays valid.
struct PacketView {
  Nanos ts_ns = 0;  // ns since the Unix epoch
  std::uint32_t origlen = 0;
  std::span<const std::uint8_t> data;

  std::uint32_t caplen() const { return static_cast<std::uint32_t>(data.size()); }
};

// Per-packet hook. Must not throw (it runs inside libpcap's C callback frames).
using PacketFn = std::function<void(const PacketView&)>;

// libpcap/kernel counters. Never a silent zero: when libpcap cannot report them `available` is false
// and `unavailable_reason` says why; consumers must then treat drops as unknown, not as 0.
// `warnings` are what else the capture says about its own completeness (a file that ends
// mid-record: packets after the cut are missing the same way dropped ones are); the reports show
// them next to the drops.
struct CaptureStats {
  std::uint64_t received = 0;    // ps_recv: packets the filter accepted (platform-specific meaning)
  std::uint64_t dropped = 0;     // ps_drop: dropped for lack of buffer space (kernel ring full)
  std::uint64_t if_dropped = 0;  // ps_ifdrop: dropped by the interface/driver (often unsupported)
  bool available = false;
  std::string unavailable_reason;
  std::vector<std::string> warnings;  // one sentence each, e.g. "file ends mid-packet after 20 complete packets"
};

// Packets stored compactly: one growing byte arena plus a fixed-size index entry per packet, so
// storing a packet allocates nothing beyond amortised vector growth. Not thread-safe; a
// CaptureSession fills one on its thread and hands it over by move when stopped.
class PacketBuffer {
 public:
  struct Entry {
    Nanos ts_ns;
    std::uint32_t caplen;
    std::uint32_t origlen;
    std::uint64_t offset;  // into the arena
  };

  PacketBuffer() = default;
  // Pre-sizes the arena/index so that a capture of about this size never reallocates.
  void reserve(std::size_t packets, std::size_t bytes);

  void append(const PacketView& p);
  void clear();

  std::size_t size() const { return index_.size(); }
  bool empty() const { return index_.empty(); }
  std::size_t bytes() const { return arena_.size(); }  // sum of caplens
  // The i-th packet; the view stays valid until the buffer is modified or destroyed.
  PacketView operator[](std::size_t i) const;
  const std::vector<Entry>& index() const { return index_; }

  class Iterator {
   public:
    using difference_type = std::ptrdiff_t;
    using value_type = PacketView;
    Iterator() = default;
    Iterator(const PacketBuffer* b, std::size_t i) : b_(b), i_(i) {}
    PacketView operator*() const { return (*b_)[i_]; }
    Iterator& operator++() { ++i_; return *this; }
    Iterator operator++(int) { Iterator t = *this; ++i_; return t; }
    bool operator==(const Iterator& o) const { return i_ == o.i_; }

   private:
    const PacketBuffer* b_ = nullptr;
    std::size_t i_ = 0;
  };
  Iterator begin() const { return {this, 0}; }
  Iterator end() const { return {this, index_.size()}; }

 private:
  std::vector<std::uint8_t> arena_;
  std::vector<Entry> index_;
};

}  // namespace tandem::pcapio
