// OutcomeTable: what ping knows about each probe, shared by three threads — the sender (send
// confirmations), the capture (the probe leaving, answers) — and the caller, which takes probes out
// in index order once each one's fate is final (answered, timed out, or refused by the kernel).
//
// No lock: one preallocated slot per probe, whose flags live in one atomic word. Each field has one
// writer — the sender writes the syscall time, the capture thread the wire time and the answer —
// and is published by setting its flag (release) and read after seeing the flag (acquire).
//
// Bounded: the probe count is known up front, so a run of at most kMaxSlots probes gets a slot per
// probe and slots are never reused. An unbounded run (count 0: --until or ^C) or a longer one uses a
// ring of kRingSlots slots: probe i lives in slot i % size, tagged with i. The sender takes the slot
// in reserve() before it builds the probe, waiting while the slot's previous probe (i - size) is not
// yet final; the capture thread ignores sightings of a probe whose slot has moved on (it was final
// already, as a late duplicate is to a table that kept it).
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "controller/ping/ping_engine.hpp"

namespace tandem::ping {

class OutcomeTable {
 public:
  static constexpr std::size_t kMaxSlots = std::size_t{1} << 20;   // 1 Mi probes: one slot each
  static constexpr std::size_t kRingSlots = std::size_t{1} << 18;  // otherwise a ring (16 MiB)

  OutcomeTable(const probe::ProbeModule& module, const PingOptions& opts)
      : module_(module),
        opts_(opts),
        ring_(opts.count == 0 || opts.count > kMaxSlots),
        size_(ring_ ? kRingSlots : std::max<std::size_t>(opts.count, 1)),
        slots_(new Slot[size_]) {
    // Without a ring, slot i is probe i from the start (no reserve() needed).
    for (std::size_t i = 0; i < size_; ++i) {
      slots_[i].word.store(ring_ ? kFree : tag(static_cast<std::uint32_t>(i)), std::memory_order_relaxed);
    }
  }

  // Sender thread, before probe `index` is built: makes its slot current, waiting while the slot
  // still holds a probe that is not final (ring only, with kRingSlots probes in flight at once).
  // The wait ends at the latest when that probe's timeout runs out, also after ^C, so it takes no
  // stop flag: every probe sent must have a slot, or the caller would wait for it forever.
  void reserve(std::uint32_t index) {
    if (!ring_) return;
    while (next_final_.load(std::memory_order_acquire) + size_ <= index) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    slot(index).word.store(tag(index), std::memory_order_release);
  }

  // Sender thread, after probe `index`'s syscall.
  void on_sent(std::uint32_t index, bool ok, Nanos ns) {
    Slot& s = slot(index);
    if (ok) s.syscall_ns = ns;
    if (!set_flags(s, index, ok ? kSentOk : kSendFailed)) return;
    // The sender is the only writer of these two (indices only grow): no read-modify-write that
    // the other threads' cache lines would have to bounce for.
    publish_max(touched_, std::uint64_t{index} + 1);
    if (ok) publish_max(sent_upto_, std::uint64_t{index} + 1);
  }

  // Capture thread (the only one).
  void on_observation(const probe::Observation& o, Nanos ts, bool v6) {
    Slot& s = slot(o.index);
    const std::uint64_t w = s.word.load(std::memory_order_acquire);
    if (!matches(w, o.index)) return;  // not this slot's probe (ring: already final and replaced)
    if (o.what == probe::Observation::What::own_probe) {
      // The wire time of the probe leaving is a better RTT origin than the syscall's return; the
      // first sighting is the earliest.
      if (w & kSeenLeaving) return;
      s.wire_ns = ts;
      set_flags(s, o.index, kSeenLeaving);
      return;
    }
    if (w & kAnswered) {
      add_duplicate(s, o.index);
      return;
    }
    s.reply_ns = ts;
    s.reply = o.reply;
    s.icmp_type = o.icmp_type;
    s.icmp_code = o.icmp_code;
    s.reply_from = o.from;
    s.state = classify(opts_.spec.l4, v6, o.reply, o.icmp_type, o.icmp_code, opts_.spec.tcp_flags);
    if (!set_flags(s, o.index, kAnswered)) return;
    if (opts_.until && s.state == *opts_.until) until_hit_.store(true, std::memory_order_release);
  }

  // Calling thread: moves every probe whose fate is known (answered, or unanswered past its
  // timeout, or never sent once sending is over) out to `out`, in index order.
  void collect_final(Nanos now, bool sending_done, std::vector<ProbeOutcome>& out) {
    const Nanos timeout = static_cast<Nanos>(opts_.timeout_s * 1e9);
    std::uint64_t next = next_final_.load(std::memory_order_relaxed);
    const std::uint64_t touched = touched_.load(std::memory_order_acquire);
    const std::uint64_t sent_upto = sent_upto_.load(std::memory_order_acquire);
    while (next < touched) {
      const auto index = static_cast<std::uint32_t>(next);
      Slot& s = slot(index);
      std::uint64_t w = s.word.load(std::memory_order_acquire);
      if (!matches(w, index)) w = 0;  // ring: not reserved yet
      const bool seen = w & kSeenLeaving, ok = w & kSentOk;
      // On a fast path the answer can be captured before sendmmsg() has even returned: a probe
      // is final only once its send is confirmed (by the syscall or by our capture seeing it).
      const bool confirmed = ok || seen;
      const bool failed = (w & kSendFailed) && !seen;
      const Nanos sent_ns = seen ? s.wire_ns : ok ? s.syscall_ns : 0;
      // A refused send is final at once: waiting for it would hold back every later probe.
      const bool known = ((w & kAnswered) && confirmed) || (ok && now - sent_ns >= timeout) || failed ||
                         (sending_done && !ok && next >= sent_upto);
      if (!known) break;
      ProbeOutcome p;
      p.index = index;
      p.sport = module_.sport(index);
      p.sent = confirmed;
      p.send_failed = failed;
      p.seen_leaving = seen;
      p.sent_ns = sent_ns;
      if (w & kAnswered) {
        p.answered = true;
        p.reply_ns = s.reply_ns;
        p.reply = s.reply;
        p.icmp_type = s.icmp_type;
        p.icmp_code = s.icmp_code;
        p.reply_from = s.reply_from;
        p.state = s.state;
      } else {
        p.state = classify(opts_.spec.l4, !opts_.target.is_v4(), probe::ReplyKind::none, 0, 0, opts_.spec.tcp_flags);
      }
      p.duplicates = static_cast<std::uint32_t>((w & kDupMask) >> kDupShift);
      out.push_back(p);
      ++next;
      // Published per probe: reserve() may hand this slot to probe next - 1 + size now.
      next_final_.store(next, std::memory_order_release);
    }
  }

  bool all_final(std::uint64_t attempted) const {
    return next_final_.load(std::memory_order_acquire) >= attempted;
  }

  bool until_hit() const { return until_hit_.load(std::memory_order_acquire); }

 private:
  // Slot word: the probe index in the high 32 bits, then a duplicate count (bits 8..31: it must
  // change only while the slot still holds that probe) and flags.
  enum Flag : std::uint64_t {
    kSentOk = 1,       // the kernel accepted it (syscall_ns valid)
    kSendFailed = 2,   // the kernel refused it after the retries
    kSeenLeaving = 4,  // our capture saw it leave (wire_ns valid)
    kAnswered = 8,     // reply fields valid
    kValid = 16,       // the slot holds the tagged probe
  };
  static constexpr std::uint64_t kFree = 0;
  static constexpr unsigned kDupShift = 8;
  static constexpr std::uint64_t kDupMask = 0xffffff00u;
  static std::uint64_t tag(std::uint32_t index) { return std::uint64_t{index} << 32 | kValid; }
  static bool matches(std::uint64_t w, std::uint32_t index) {
    return (w & kValid) && static_cast<std::uint32_t>(w >> 32) == index;
  }

  struct Slot {
    std::atomic<std::uint64_t> word{kFree};
    Nanos syscall_ns = 0;  // sender
    Nanos wire_ns = 0;     // capture
    Nanos reply_ns = 0;    // capture, and the rest of the answer
    probe::ReplyKind reply = probe::ReplyKind::none;
    std::uint8_t icmp_type = 0, icmp_code = 0;
    PortState state = PortState::filtered;
    packet::IpAddr reply_from;
  };

  Slot& slot(std::uint32_t index) { return slots_[index % size_]; }

  // Sets flags on the slot if it still holds probe `index`; false if it has moved on.
  static bool set_flags(Slot& s, std::uint32_t index, std::uint64_t flags) {
    std::uint64_t w = s.word.load(std::memory_order_relaxed);
    do {
      if (!matches(w, index)) return false;
    } while (
        !s.word.compare_exchange_weak(w, w | flags, std::memory_order_acq_rel, std::memory_order_relaxed));
    return true;
  }

  static void add_duplicate(Slot& s, std::uint32_t index) {
    std::uint64_t w = s.word.load(std::memory_order_relaxed);
    do {
      if (!matches(w, index) || (w & kDupMask) == kDupMask) return;  // moved on, or saturated
    } while (
        !s.word.compare_exchange_weak(w, w + (std::uint64_t{1} << kDupShift), std::memory_order_relaxed));
  }

  static void publish_max(std::atomic<std::uint64_t>& a, std::uint64_t v) {
    if (a.load(std::memory_order_relaxed) < v) a.store(v, std::memory_order_release);
  }

  const probe::ProbeModule& module_;
  const PingOptions& opts_;
  const bool ring_;
  const std::size_t size_;
  std::unique_ptr<Slot[]> slots_;
  std::atomic<std::uint64_t> next_final_{0};  // written by the caller only
  // Highest index + 1 whose send the sender reported: the caller looks no further (a probe is not
  // final before its send is confirmed anyway, and its syscall returns microseconds after it left).
  std::atomic<std::uint64_t> touched_{0};
  std::atomic<std::uint64_t> sent_upto_{0};  // highest index + 1 the kernel accepted
  std::atomic<bool> until_hit_{false};
};

}  // namespace tandem::ping
