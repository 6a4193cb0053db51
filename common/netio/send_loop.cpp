#include "common/netio/send_loop.hpp"

#include <algorithm>
#include <array>
#include <utility>

namespace tandem::netio {

namespace {

constexpr const char* kSubsystem = "send-loop";

bool stop_requested(const SendLoopConfig& c) {
  return (c.stop != nullptr && c.stop->load(std::memory_order_relaxed)) || (c.until && c.until());
}

}  // namespace

SendLoop::SendLoop(PacketGenerator generator, SendLoopConfig config)
    : generator_(std::move(generator)), config_(std::move(config)) {}

SendLoop::SendLoop(std::vector<PrebuiltPacket> packets, SendLoopConfig config)
    : prebuilt_(std::move(packets)), config_(std::move(config)) {}

Result<SendReport> SendLoop::run(RawSender& sender) {
  const SendLoopConfig& c = config_;
  if (c.count == 0 && !c.until && c.stop == nullptr) {
    return make_error(Errc::usage, kSubsystem, "unbounded run (count 0) needs an until predicate or a stop flag");
  }
  if (c.max_batch == 0) return make_error(Errc::usage, kSubsystem, "max_batch must be at least 1");
  if (!generator_ && prebuilt_.empty()) return make_error(Errc::usage, kSubsystem, "no packets to send");

  const std::size_t max_batch = std::min(c.max_batch, RawSender::kMaxBatch);
  SendReport report;
  report.requested_pps = c.schedule.rate_pps();
  if (c.keep_timestamps && c.count != 0) report.send_ns.reserve(c.count);

  // Generated packets live in per-slot buffers reused across batches (no allocation once warm).
  std::array<std::vector<std::uint8_t>, RawSender::kMaxBatch> buffers;
  std::array<OutPacket, RawSender::kMaxBatch> out{};
  std::array<PacketStatus, RawSender::kMaxBatch> status{};

  Pacer pacer(c.schedule, c.pacer);
  pacer.start();
  const Nanos t0 = pacer.t0();
  Nanos next_progress = t0 + c.progress_interval_ns;
  const SendCounters base = sender.counters();
  Nanos last_behind = 0;

  auto progress = [&](bool final) {
    if (!c.on_progress) return;
    c.on_progress(SendProgress{report.attempted, report.sent, report.failed, monotonic_ns() - t0,
                               last_behind, final});
  };

  std::uint64_t next = 0;
  while (c.count == 0 || next < c.count) {
    if (stop_requested(c)) {
      report.stopped = true;
      break;
    }
    const std::uint64_t left = c.count == 0 ? max_batch : c.count - next;
    const Due due = pacer.wait_due(next, std::min<std::uint64_t>(left, max_batch), c.stop);
    // Checked again after the wait: an answer that arrived while waiting (ping --until) must stop
    // the run before one more packet leaves.
    if (due.count == 0 || stop_requested(c)) {  // stop flag raised while waiting
      report.stopped = true;
      break;
    }
    last_behind = due.behind_ns;
    if (due.count > 1) ++report.catchup_batches;

    const std::size_t n = static_cast<std::size_t>(due.count);
    for (std::size_t k = 0; k < n; ++k) {
      const std::uint64_t index = next + k;
      if (generator_) {
        buffers[k].clear();
        const IpAddr dst = generator_(index, buffers[k]);
        out[k] = OutPacket{buffers[k], dst};
      } else {
        const PrebuiltPacket& p = prebuilt_[index % prebuilt_.size()];
        out[k] = OutPacket{p.bytes, p.dst};
      }
    }
    const BatchResult br = sender.send_batch(std::span<const OutPacket>(out.data(), n),
                                             std::span<PacketStatus>(status.data(), n), c.abort_on_error);

    bool abort = false;
    for (std::size_t k = 0; k < br.processed; ++k) {
      const PacketStatus& s = status[k];
      ++report.attempted;
      if (s.err == 0) {
        ++report.sent;
        if (report.first_send_ns == 0) report.first_send_ns = s.sent_ns;
        report.last_send_ns = s.sent_ns;
      } else {
        ++report.failed;
        ++report.errors_by_errno[s.err];
        if (!report.first_error) report.first_error = send_error(s.err, out[k].dst);
        // Transient errors reaching here already exhausted the retry policy; they count as failed
        // but do not end the run (the next batch may find buffer space again).
        if (c.abort_on_error && classify_send_errno(s.err) != SendErrorClass::transient) abort = true;
      }
      if (c.keep_timestamps) report.send_ns.push_back(s.sent_ns);
      if (c.on_sent) c.on_sent(next + k, s);
    }
    next += br.processed;
    if (abort) {
      report.stopped = true;
      break;
    }
    if (c.on_progress && monotonic_ns() >= next_progress) {
      progress(false);
      next_progress += c.progress_interval_ns;
      // After a long stall, do not fire a burst of progress callbacks to catch up.
      next_progress = std::max(next_progress, monotonic_ns());
    }
  }

  const SendCounters& end = sender.counters();
  report.retries = end.retries - base.retries;
  report.syscalls = end.syscalls - base.syscalls;
  report.max_behind_ns = pacer.stats().max_behind_ns;
  if (report.sent >= 2 && report.last_send_ns > report.first_send_ns) {
    report.achieved_pps = static_cast<double>(report.sent - 1) * 1e9 /
                          static_cast<double>(report.last_send_ns - report.first_send_ns);
  }
  progress(true);
  return report;
}

}  // namespace tandem::netio
