// SendLoop: paced sending of a packet sequence through a RawSender, with a report.
//
// The loop asks the Pacer which packets are due, fills them from the generator (or the pre-built
// list), sends every due packet with one sendmmsg (so a sender that fell behind catches up in
// batches instead of drifting), records each packet's send timestamp and errno, and stops at
// `count`, when `until` returns true, when `*stop` becomes true, or at the first non-transient
// error when abort_on_error is set.
//
// Threading contract:
//   - run() blocks and does all its work on the calling thread; the RawSender must not be used by
//     another thread meanwhile.
//   - generator, until, on_sent and on_progress are called on that thread, never concurrently.
//   - `stop` may be set from any thread or a signal handler (std::atomic<bool>, lock-free); `until`
//     may read state that another thread (e.g. a reply receiver) updates, provided that state is
//     itself thread-safe. Both are checked before every batch and at least every 10 ms while waiting.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <vector>

#include "common/base/clock.hpp"
#include "common/base/result.hpp"
#include "common/netio/pacer.hpp"
#include "common/netio/raw_sender.hpp"
#include "common/packet/addr.hpp"

namespace tandem::netio {

// Writes packet `index` (a complete IP packet) into `out` (cleared by the loop, capacity reused) and
// returns its destination.
using PacketGenerator = std::function<IpAddr(std::uint64_t index, std::vector<std::uint8_t>& out)>;

// A pre-built packet: packet i of the run is prebuilt[i % size()].
struct PrebuiltPacket {
  std::vector<std::uint8_t> bytes;
  IpAddr dst;
};

// Snapshot handed to on_progress (about every progress_interval_ns, and once at the end).
struct SendProgress {
  std::uint64_t attempted = 0;
  std::uint64_t sent = 0;
  std::uint64_t failed = 0;
  Nanos elapsed_ns = 0;   // since the first packet's deadline
  Nanos behind_ns = 0;    // lateness of the latest batch
  bool final = false;
};

struct SendReport {
  std::uint64_t attempted = 0;  // packets handed to the kernel (sent + failed)
  std::uint64_t sent = 0;       // accepted by the kernel
  std::uint64_t failed = 0;     // rejected; see errors_by_errno
  std::uint64_t retries = 0;    // ENOBUFS/EAGAIN retries that later succeeded or failed
  std::map<int, std::uint64_t> errors_by_errno;
  std::optional<Error> first_error;  // send_error() of the first failed packet
  Nanos first_send_ns = 0;  // CLOCK_REALTIME of the first accepted packet (0 if none)
  Nanos last_send_ns = 0;   // CLOCK_REALTIME of the last accepted packet
  double achieved_pps = 0;  // (sent - 1) / (last - first), 0 with fewer than 2 packets
  double requested_pps = 0; // the schedule's rate (0 = unlimited)
  Nanos max_behind_ns = 0;  // worst lateness against the schedule
  std::uint64_t catchup_batches = 0;  // batches that carried more than one due packet
  std::uint64_t syscalls = 0;
  bool stopped = false;     // ended by stop flag, until predicate or abort_on_error, not by count
  // Per-packet CLOCK_REALTIME send time by index (0 = failed); empty if keep_timestamps is false.
  std::vector<Nanos> send_ns;
};

struct SendLoopConfig {
  std::uint64_t count = 1;                 // packets to send; 0 = unbounded (needs until or stop)
  Schedule schedule = Schedule::unlimited();
  PacerOptions pacer;
  std::size_t max_batch = RawSender::kMaxBatch;  // cap on packets per sendmmsg (1..kMaxBatch)
  // Optional: true ends the run. Checked before each batch, so a catch-up batch after a stall can
  // carry up to max_batch - 1 packets past the moment it turned true; max_batch = 1 makes it exact.
  std::function<bool()> until;
  const std::atomic<bool>* stop = nullptr; // optional: true ends the run (SIGINT)
  // Optional: called after each packet's syscall with its index and outcome (ping's RTT bookkeeping).
  std::function<void(std::uint64_t index, const PacketStatus& status)> on_sent;
  std::function<void(const SendProgress&)> on_progress;  // optional
  Nanos progress_interval_ns = 250'000'000;
  bool keep_timestamps = true;             // fill SendReport::send_ns (8 bytes per packet)
  bool abort_on_error = true;              // stop at the first non-transient send error
};

class SendLoop {
 public:
  SendLoop(PacketGenerator generator, SendLoopConfig config);
  // Pre-built packets, sent in order and cycled. precondition: !packets.empty().
  SendLoop(std::vector<PrebuiltPacket> packets, SendLoopConfig config);

  // Runs to completion (see the header comment for the stop conditions). Errc::usage when the
  // config cannot run (count 0 with neither until nor stop, max_batch 0). Send failures do not make
  // this an error: they are in the report (first_error, errors_by_errno).
  Result<SendReport> run(RawSender& sender);

 private:
  PacketGenerator generator_;
  std::vector<PrebuiltPacket> prebuilt_;
  SendLoopConfig config_;
};

}  // namespace tandem::netio
