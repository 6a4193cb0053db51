// OutcomeTable: what ping knows about each probe, shared by three threads — the sender (send
// confirmations), the capture (the probe leaving, answers) — and the caller, which takes probes out
// in index order once each one's fate is final (answered, timed out, or refused by the kernel).
#pragma once

#include <atomic>
#include <deque>
#include <mutex>
#include <vector>

#include "controller/ping/ping_engine.hpp"

namespace tandem::ping {

// The outcome table shared by the capture thread (answers), the sender thread (send times) and the
// calling thread (finalisation). A deque so that an unbounded run can grow without moving entries.
class OutcomeTable {
 public:
  OutcomeTable(const probe::ProbeModule& module, const PingOptions& opts) : module_(module), opts_(opts) {}

  void on_sent(std::uint32_t index, bool ok, Nanos ns) {
    std::lock_guard lock(mu_);
    auto& p = at(index);
    p.sent = ok || p.seen_leaving;
    p.send_failed = !p.sent;
    if (ok && !p.seen_leaving) p.sent_ns = ns;
    if (ok) sent_upto_ = std::max<std::uint64_t>(sent_upto_, std::uint64_t{index} + 1);
  }

  void on_observation(const probe::Observation& o, Nanos ts, bool v6) {
    std::lock_guard lock(mu_);
    auto& p = at(o.index);
    if (o.what == probe::Observation::What::own_probe) {
      // The wire time of the probe leaving is a better RTT origin than the syscall's return.
      if (!p.seen_leaving) {
        p.seen_leaving = true;
        p.sent_ns = ts;
      }
      return;
    }
    if (p.answered) {
      ++p.duplicates;
      return;
    }
    p.answered = true;
    p.reply_ns = ts;
    p.reply = o.reply;
    p.icmp_type = o.icmp_type;
    p.icmp_code = o.icmp_code;
    p.reply_from = o.from;
    p.state = classify(opts_.spec.l4, v6, o.reply, o.icmp_type, o.icmp_code);
    if (opts_.until && p.state == *opts_.until) until_hit_.store(true, std::memory_order_release);
  }

  // Moves every probe whose fate is known (answered, or unanswered past its timeout, or never sent
  // once sending is over) out to `out`, in index order.
  void collect_final(Nanos now, bool sending_done, std::vector<ProbeOutcome>& out) {
    std::lock_guard lock(mu_);
    Nanos timeout = static_cast<Nanos>(opts_.timeout_s * 1e9);
    while (next_final_ < table_.size()) {
      auto& p = table_[next_final_];
      // On a fast path the answer can be captured before sendmmsg() has even returned: a probe
      // is final only once its send is confirmed (by the syscall or by our capture seeing it).
      bool confirmed = p.sent || p.seen_leaving;
      // A refused send is final at once: waiting for it would hold back every later probe.
      bool known = (p.answered && confirmed) || (p.sent && now - p.sent_ns >= timeout) || p.send_failed ||
                   (sending_done && !p.sent && next_final_ >= sent_upto_);
      if (!known) break;
      if (!p.answered) p.state = classify(opts_.spec.l4, !opts_.target.is_v4(), probe::ReplyKind::none, 0, 0);
      p.sent = confirmed;
      out.push_back(p);
      ++next_final_;
    }
  }

  bool all_final(std::uint64_t attempted) {
    std::lock_guard lock(mu_);
    return next_final_ >= attempted;
  }

  bool until_hit() const { return until_hit_.load(std::memory_order_acquire); }

 private:
  ProbeOutcome& at(std::uint32_t index) {
    while (table_.size() <= index) {
      ProbeOutcome p;
      p.index = static_cast<std::uint32_t>(table_.size());
      p.sport = module_.sport(p.index);
      table_.push_back(p);
    }
    return table_[index];
  }

  const probe::ProbeModule& module_;
  const PingOptions& opts_;
  std::mutex mu_;
  std::deque<ProbeOutcome> table_;
  std::size_t next_final_ = 0;
  std::uint64_t sent_upto_ = 0;
  std::atomic<bool> until_hit_{false};
};


}  // namespace tandem::ping
