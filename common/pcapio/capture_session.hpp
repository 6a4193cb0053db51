// CaptureSession: a background thread capturing into memory from start() to stop(), with an optional
// live per-packet hook (the ping engine matches replies with it while probes are still going out).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "common/base/result.hpp"
#include "common/pcapio/live_capture.hpp"
#include "common/pcapio/packet.hpp"

namespace tandem::pcapio {

struct CaptureSessionConfig {
  LiveCaptureConfig capture;
  // Storage caps. Packets libpcap delivers beyond either cap are not stored and are counted in
  // CaptureResult::cap_dropped (and in dropped_total()), never lost silently. The callback still
  // sees them.
  std::size_t max_packets = 1'000'000;
  std::size_t max_bytes = 256u * 1024 * 1024;
  bool store = true;  // false: only the callback sees packets (nothing is kept, nothing cap-dropped)
  // Runs on the capture thread for every packet, before it is stored. It must be quick, must not
  // throw and must not call stop(); the view is valid only during the call. Anything it shares with
  // other threads needs its own synchronisation.
  PacketFn on_packet;
};

struct CaptureResult {
  std::string device;
  int linktype = 0;  // LINKTYPE_*; kLinuxSll/kLinuxSll2 carry the packet direction
  int snaplen = 0;
  TsPrecision precision = TsPrecision::micro;
  PacketBuffer packets;
  CaptureStats stats;             // libpcap/kernel counters taken at stop
  std::uint64_t seen = 0;         // packets libpcap delivered to us
  std::uint64_t cap_dropped = 0;  // delivered but not stored: a cap was reached
  Nanos started_ns = 0;           // realtime when the handle became active
  Nanos stopped_ns = 0;
  // Set if the capture thread hit a libpcap error mid-run (interface vanished, ...); packets up to
  // that point are still in `packets`.
  std::optional<Error> error;

  // Everything that was on the wire but is not in `packets`; nullopt when the kernel counters are
  // unavailable (drops are then unknown, not zero).
  std::optional<std::uint64_t> dropped_total() const {
    if (!stats.available) return std::nullopt;
    return stats.dropped + stats.if_dropped + cap_dropped;
  }
};

// Threading contract: start(), stop() and the destructor are called from one controlling thread.
// on_packet runs on the capture thread. packets_seen() may be read from any thread.
class CaptureSession {
 public:
  explicit CaptureSession(CaptureSessionConfig config);
  CaptureSession(const CaptureSession&) = delete;
  CaptureSession& operator=(const CaptureSession&) = delete;
  ~CaptureSession();  // stops without drain if still running; the packets are discarded

  // Opens the handle (same errors as LiveCapture::open) and starts the thread. Returns only once the
  // handle is active, the filter installed and the thread is polling, so anything sent after start()
  // returns is captured. Errc::usage if already started.
  Status start();

  // Keeps capturing for drain_for (late replies still arriving), then stops, collects what is left
  // in the kernel buffer, and returns the packets and final counters. Errc::usage if not running.
  Result<CaptureResult> stop(std::chrono::milliseconds drain_for = std::chrono::milliseconds(0));

  bool running() const { return thread_.joinable(); }
  int linktype() const { return linktype_; }  // valid after a successful start()
  std::uint64_t packets_seen() const { return seen_.load(std::memory_order_relaxed); }

 private:
  void run();

  CaptureSessionConfig config_;
  std::optional<LiveCapture> capture_;
  std::thread thread_;
  int stop_fd_ = -1;  // eventfd that wakes the thread's poll
  std::atomic<bool> stop_requested_{false};
  int linktype_ = 0;
  std::atomic<std::uint64_t> seen_{0};
  CaptureResult result_;  // owned by the capture thread until it is joined
};

}  // namespace tandem::pcapio
