// LiveCapture: one activated libpcap handle (RAII), configured the way tandem captures probes and
// replies: immediate mode, nanosecond stamps where the platform has them, no promiscuous mode, an
// optimised BPF filter, non-blocking with a pollable fd.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "common/base/result.hpp"
#include "common/pcapio/packet.hpp"

struct pcap;  // libpcap's pcap_t; kept out of this header

namespace tandem::pcapio {

// 256 bytes hold every probe we build (Ethernet/SLL2 + IPv6 + TCP with 40 bytes of options = 134)
// and an ICMP error quoting one (outer headers + 8-byte ICMP + quoted IPv6 + TCP header with
// options), with room to spare; payload beyond that is never inspected, and a small snaplen keeps
// the kernel ring and our capture files small. origlen still records the true size.
inline constexpr int kDefaultSnaplen = 256;
inline constexpr int kDefaultBufferBytes = 32 * 1024 * 1024;

struct LiveCaptureConfig {
  std::string device = "any";    // "any" gives Linux cooked frames (SLL, or SLL2 if prefer_sll2)
  int snaplen = kDefaultSnaplen;
  int buffer_bytes = kDefaultBufferBytes;  // kernel ring size; drops start when it fills
  std::string filter;            // BPF text; empty captures everything
  bool promisc = false;          // we only want traffic to/from this host
  bool immediate = true;         // deliver each packet at once: live reply matching needs it
  bool prefer_sll2 = false;      // on "any": ask for SLL2 (carries the ifindex) when offered
};

// Threading: a LiveCapture is used by one thread at a time (libpcap handles are not thread-safe),
// except break_loop(), which may be called from any thread.
class LiveCapture {
 public:
  // Creates and activates the handle and installs the filter. Errors:
  //   Errc::permission  - no CAP_NET_RAW (message says so)
  //   Errc::environment - no such device, device down, other activation failures
  //   Errc::usage       - a filter that does not compile (pcap_geterr text and the filter quoted)
  static Result<LiveCapture> open(const LiveCaptureConfig& config);

  LiveCapture(LiveCapture&& other) noexcept;
  LiveCapture& operator=(LiveCapture&& other) noexcept;
  LiveCapture(const LiveCapture&) = delete;
  LiveCapture& operator=(const LiveCapture&) = delete;
  ~LiveCapture();

  const std::string& device() const { return device_; }
  int linktype() const { return linktype_; }  // LINKTYPE_* (see packet.hpp), e.g. kLinuxSll on "any"
  int snaplen() const { return snaplen_; }
  // nano when the kernel/libpcap honoured nanosecond precision, micro if it fell back (timestamps
  // are still reported in ns, just with µs resolution).
  TsPrecision precision() const { return precision_; }
  // Readable when packets may be waiting: poll() it, then dispatch(). Always valid on Linux.
  int selectable_fd() const { return fd_; }

  // Hands up to max_packets buffered packets (<= 0: all currently buffered) to `fn` without
  // blocking; returns how many. The view passed to fn points into libpcap's ring and is valid only
  // during the call. Errors (Errc::environment) mean the handle broke, e.g. the interface vanished.
  Result<int> dispatch(int max_packets, const PacketFn& fn);

  // Current counters; see CaptureStats for the never-silent-zero contract.
  CaptureStats stats() const;

  // Makes a running dispatch() return early. Safe from any thread.
  void break_loop();

  pcap* native_handle() const { return handle_; }

 private:
  LiveCapture() = default;
  void reset();

  pcap* handle_ = nullptr;
  std::string device_;
  int linktype_ = 0;
  int snaplen_ = 0;
  int fd_ = -1;
  TsPrecision precision_ = TsPrecision::micro;
};

}  // namespace tandem::pcapio
