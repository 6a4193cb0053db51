// Replies (docs/correlation.md steps 5-6): the server's replies to each sighting — its first reply
// and its retransmissions, until the next copy of the same probe —, which of them reached the
// client, and the clock estimate from answered pairs. Real servers retransmit their SYN-ACKs and
// real clients their SYNs (DESIGN.md §8): a retransmitted reply is never taken for the first one.
#include <algorithm>

#include "controller/correlate/correlator.hpp"

namespace tandem::correlate::detail {

void Correlator::index_client_replies() {
  std::vector<std::uint64_t> q = std::move(q_reply_);
  const KeyFilter probe_keys = std::move(c_reply_keys_);
  if (!c_.cap->present || !client_id_) {
    if (q_shared_) q_primary_ = std::move(q);
    return;
  }
  auto cid = *client_id_;
  // Only replies whose key a probe asks for are indexed (see KeyFilter).
  std::vector<std::uint64_t> entries;
  entries.reserve(c_.role_n[kRoleTcpReply] + c_.role_n[kRoleDatagram] + c_.role_n[kRoleEchoReply] +
                  c_.role_n[kRoleIcmpError]);
  for (std::uint32_t i = 0; i < c_.recs.size(); ++i) {
    const Rec& r = c_.recs[i];
    if (r.dst != cid) continue;
    client_received_ += r.role != kRoleNone;
    if (r.bits & kOutgoing) continue;
    if (auto k = reply_key(r, l4_); k && probe_keys.maybe(join_key(*k))) entries.push_back(std::uint64_t{join_key(*k)} << 32 | i);
  }
  SortedMultimap idx;
  idx.assign(std::move(entries), &sort_scratch_);
  c_reply_built_ = true;
  c_reply_of_ = idx.gather(q, work_.size(), &sort_scratch_);  // sorts q by key
  if (q_shared_) q_primary_ = std::move(q);
}

// The end of each copy's reply window on both sides: the next copy of the same probe (same
// flow and sequence number / tag as that side saw it), or the retransmission window. tandem's own
// probes (a run key) never repeat, so the grouping is skipped for them.
void Correlator::find_copy_windows() {
  const Nanos window = std::max(m_.retransmit_window_ns, m_.reply_timeout_ns);
  // The client side depends only on the client's probes, which pass B does not change: the second
  // call (after pass B) keeps the windows and the copy chains of the first.
  const bool client_done = c_windows_done_;
  c_windows_done_ = true;
  const bool group = !m_.run_key;
  auto flow_key = [&](const Rec& r) {
    return std::uint64_t{probe_reply_key(r, l4_)} << 32 | std::uint64_t{r.sport} << 16 | r.src;
  };
  // Each side's copies in probe order, and per copy a 32-bit hash of its flow key << 32 | its place
  // among them: only those 8-byte words are sorted (several times faster than whole copies), and
  // only the copies sharing a hash — a flow's retransmissions, the odd collision — are looked at
  // again, grouped by their exact key.
  std::vector<Copy> c_copies, s_copies;
  std::vector<std::uint64_t> c_h, s_h;
  auto add = [](std::vector<Copy>& copies, std::vector<std::uint64_t>& h, const Copy& c) {
    h.push_back(((c.key * 0x9e3779b97f4a7c15ull) & 0xffffffff00000000ull) | copies.size());
    copies.push_back(c);
  };
  if (group) {
    if (!client_done) {
      c_copies.reserve(work_.size());
      c_h.reserve(work_.size());
      c_next_copy_.assign(work_.size(), kNone);
      c_group_head_.assign(work_.size(), false);
    }
    s_copies.reserve(work_.size());
    s_h.reserve(work_.size());
  }
  for (std::uint32_t k = 0; k < work_.size(); ++k) {
    if (k + kPrefetchAhead < work_.size()) {
      const auto& a = work_[k + kPrefetchAhead];
      if (!client_done) c_.prefetch(a.c_probe);
      if (a.match == Match::matched) s_.prefetch(a.s_probe);
    }
    auto& w = work_[k];
    if (w.c_probe != kNone && !client_done) {
      const Nanos t = c_.ts(w.c_probe);
      w.c_end = t + window;
      if (group) {
        add(c_copies, c_h, Copy{flow_key(c_.recs[w.c_probe]), t, k});
        c_group_head_[k] = true;  // until an earlier copy of its flow is found
      }
    }
    if (w.match == Match::matched) {
      const Nanos t = s_.ts(w.s_probe);
      w.s_end = t + window;
      if (group) add(s_copies, s_h, Copy{flow_key(s_.recs[w.s_probe]), t, k});
    }
  }
  if (!group) return;
  // Each flow's copies in time order (probe order on ties): every copy's window ends at the next
  // one, and `link(k, next)` is told each copy's successor in its flow.
  std::vector<Copy> g;
  auto close_windows = [&](std::vector<std::uint64_t>& h, const std::vector<Copy>& copies, auto end_of, auto link) {
    sort_by_key(h, &sort_scratch_);  // stable: probe order within a hash
    for (std::size_t i = 0; i < h.size();) {
      std::size_t e = i + 1;
      while (e < h.size() && (h[e] >> 32) == (h[i] >> 32)) ++e;
      if (e - i > 1) {
        for (std::size_t x = i; x < e; ++x) __builtin_prefetch(&copies[static_cast<std::uint32_t>(h[x])]);
        g.clear();
        for (std::size_t x = i; x < e; ++x) {
          g.push_back(copies[static_cast<std::uint32_t>(h[x])]);
          __builtin_prefetch(&work_[g.back().k], 1);
        }
        std::stable_sort(g.begin(), g.end(),
                         [](const Copy& a, const Copy& b) { return a.key != b.key ? a.key < b.key : a.t < b.t; });
        for (std::size_t x = 0; x + 1 < g.size(); ++x) {
          if (g[x + 1].key != g[x].key) continue;
          Nanos& end = end_of(work_[g[x].k]);
          end = std::min(end, g[x + 1].t);
          link(g[x].k, g[x + 1].k);
        }
      }
      i = e;
    }
  };
  if (!client_done) {
    // The flows as chains in probe order, for settle_client_replies().
    close_windows(c_h, c_copies, [](ProbeWork& w) -> Nanos& { return w.c_end; },
                  [&](std::uint32_t k, std::uint32_t next) {
                    c_next_copy_[k] = next;
                    c_group_head_[next] = false;
                  });
  }
  close_windows(s_h, s_copies, [](ProbeWork& w) -> Nanos& { return w.s_end; }, [](std::uint32_t, std::uint32_t) {});
}

void Correlator::settle_client_replies() {
  // First each copy's own pick, independent of every other probe.
  auto own_pick = [&](std::uint32_t k) {
    auto& w = work_[k];
    bool real = false;
    w.c_reply = c_.cap->present ? pick_client_reply(k, true, &real) : kNone;
    w.real = real;
  };
  if (!c_.cap->present || !c_reply_built_) {
    for (std::uint32_t k = 0; k < work_.size(); ++k) {
      if (work_[k].c_probe == kNone) continue;
      own_pick(k);
      finish_client_reply(k);
    }
    return;
  }
  const Nanos window = std::max(m_.retransmit_window_ns, m_.reply_timeout_ns);
  const bool timed = time_known();
  const Nanos off = corr_.clock.offset_ns, err = corr_.clock.error_ns;
  // A reply's one-way delay back, as the clock allows: never negative, at most the slowest
  // forward one-way seen (the path's other direction is assumed no slower) plus the slack.
  const Nanos lo = -err - kTimeSlackNs;
  const Nanos hi = (have_ow_ ? max_ow_ : m_.reply_timeout_ns) + err + kTimeSlackNs;
  struct SReply {
    Nanos t;
    std::uint32_t pkt, k, j;  // packet, owning copy, index among its replies (0 = first)
  };
  std::vector<std::uint32_t> members;
  std::vector<SReply> sr;
  std::vector<std::pair<Nanos, std::uint32_t>> cr;  // client replies of the flow, by time
  std::vector<std::uint32_t> used_mask;
  auto settle_group = [&](std::span<const std::uint32_t> ks) {
    sr.clear();
    cr.clear();
    for (auto k : ks) {
      auto& w = work_[k];
      // The tie below decides which client reply is a copy of which server reply; a reply
      // pick_client_reply() took for the server's is re-decided here.
      if (w.real) w.c_reply = kNone;
      w.real = false;
      w.c_received = 0;
      w.c_retx = kNone;
      w.c_unattributed = false;
      if (w.s_reply == kNone) continue;
      sr.push_back({s_.ts(w.s_reply), w.s_reply, k, 0});
      std::uint32_t j = 1;
      for (auto pkt : more_replies(k)) sr.push_back({s_.ts(pkt), pkt, k, j++});
    }
    std::sort(sr.begin(), sr.end(), [](const SReply& a, const SReply& b) { return a.t < b.t; });
    // The client's replies to this flow: the index range is the same for every copy (same key).
    const auto& w0 = work_[ks.front()];
    const Rec& p0 = c_.recs[w0.c_probe];
    const Nanos t_first = c_.ts(w0.c_probe);
    Nanos t_last = t_first;
    for (auto k : ks) t_last = std::max(t_last, c_.ts(work_[k].c_probe));
    for (const auto r : c_reply_of_.of(ks.front())) {
      const Nanos t = c_.ts(r);
      if (t < t_first || t >= t_last + window || !answers(p0, c_.recs[r], l4_)) continue;
      cr.emplace_back(t, r);
    }
    std::sort(cr.begin(), cr.end());
    // Whether server reply x can be the one client reply r is a copy of.
    auto compatible = [&](std::size_t x, std::uint32_t r, bool* server_like) {
      const Rec& a = s_.recs[sr[x].pkt];
      const Rec& b = c_.recs[r];
      const auto& w = work_[sr[x].k];
      if (kind_code(a) != kind_code(b)) return false;
      const bool seq_rewritten = c_.recs[w.c_probe].primary != s_.recs[w.s_probe].primary;
      if (a.role == kRoleTcpReply && a.primary != b.primary && !seq_rewritten) return false;
      if (server_like) *server_like = true;
      if ((a.bits & kHasTs) && (b.bits & kHasTs) && a.tsval != b.tsval) return false;
      if (a.ipid != 0 && b.ipid != 0 && a.ipid != b.ipid) return false;
      const Nanos t = c_.ts(r);
      if (timed) {
        const Nanos back = t + off - sr[x].t;
        return back >= lo && back <= hi;
      }
      return t >= c_.ts(w.c_probe);
    };
    // Clock-free: the network round trip the pairing implies (client interval minus the server's
    // turnaround); the right copy gives the path's, an earlier reply that plus its delay.
    auto implied_rtt = [&](std::size_t x, std::uint32_t r) {
      const auto& w = work_[sr[x].k];
      return (c_.ts(r) - c_.ts(w.c_probe)) - (sr[x].t - s_.ts(w.s_probe));
    };
    std::vector<std::size_t> feasible;
    std::size_t next = 0;  // server replies before this one are behind the flow's order
    for (std::size_t ci = 0; ci < cr.size(); ++ci) {
      const auto [t, r] = cr[ci];
      // The copy whose window the reply arrived in (for replies no server reply is tied to).
      std::uint32_t home = kNone;
      for (auto k : ks) {
        if (c_.ts(work_[k].c_probe) <= t && t < std::max(work_[k].c_end, c_.ts(work_[k].c_probe) + m_.reply_timeout_ns)) home = k;
      }
      bool server_like = false;
      feasible.clear();
      for (std::size_t x = next; x < sr.size(); ++x) {
        if (compatible(x, r, &server_like)) feasible.push_back(x);
      }
      std::optional<std::size_t> pick;
      if (feasible.size() == 1) {
        pick = feasible.front();
      } else if (feasible.size() > 1 && !timed) {
        Nanos best = 0;
        for (auto x : feasible) {
          const Nanos rtt = implied_rtt(x, r);
          if (rtt < -kTimeSlackNs) continue;
          if (!pick || rtt < best) { pick = x; best = rtt; }
        }
      } else if (feasible.size() > 1) {
        // Several copies the server sent fit this arrival. In order, as many arrivals as fitting
        // copies pair one to one; fewer arrivals leave unknown which copies were lost.
        std::size_t arrivals = 0;
        for (std::size_t cj = ci; cj < cr.size(); ++cj) {
          for (auto x : feasible) {
            if (compatible(x, cr[cj].second, nullptr)) { ++arrivals; break; }
          }
        }
        if (arrivals >= feasible.size()) {
          pick = feasible.front();
        } else {
          for (auto x : feasible) work_[sr[x].k].c_unattributed = true;
          continue;
        }
      }
      if (!pick) {
        if (server_like && home != kNone) work_[home].c_unattributed = true;
        continue;
      }
      auto& ow = work_[sr[*pick].k];
      if (sr[*pick].j == 0) {
        ow.real = true;
        ow.c_reply = r;
      } else if (ow.c_retx == kNone) {
        ow.c_retx = r;
      }
      ++ow.c_received;
      next = *pick + 1;
    }
  };
  // Flow by flow, in the order of their first copies (the copies' work state and packets then lie
  // close together in memory, and each flow's are still in the cache for all three steps): each
  // copy's pick; then, where the server replied, its replies' copies tied per flow in order, which
  // overrides the picks; then what decide() needs. A flow's steps read and write only its copies.
  if (c_group_head_.empty()) {
    // A run key: every probe is its own flow.
    for (std::uint32_t k = 0; k < work_.size(); ++k) {
      prefetch_ahead(k, kAheadCProbe | kAheadSProbe | kAheadSReply | kAheadCReplies);
      if (work_[k].c_probe == kNone) continue;
      own_pick(k);
      if (work_[k].s_reply != kNone) {
        const std::uint32_t one[1] = {k};
        settle_group(one);
      }
      finish_client_reply(k);
    }
    return;
  }
  for (std::uint32_t first = 0; first < work_.size(); ++first) {
    prefetch_ahead(first, kAheadCProbe | kAheadSProbe | kAheadSReply | kAheadCReplies);
    if (!c_group_head_[first]) continue;
    members.clear();
    bool any_reply = false;
    for (std::uint32_t x = first; x != kNone; x = c_next_copy_[x]) {
      members.push_back(x);
      any_reply |= work_[x].s_reply != kNone;
      own_pick(x);
    }
    if (any_reply) settle_group(members);
    for (const auto x : members) finish_client_reply(x);
  }
}

void Correlator::find_server_replies() {
  std::vector<std::uint64_t> q;
  for (std::uint32_t k = 0; k < work_.size(); ++k) {
    prefetch_ahead(k, kAheadSProbe);
    const auto& w = work_[k];
    if (w.match != Match::matched || w.s_reply != kNone) continue;
    q.push_back(std::uint64_t{join_key(probe_reply_key(s_.recs[w.s_probe], l4_))} << 32 | k);
  }
  if (q.empty()) return;
  const auto replies = s_reply_idx_.gather(q, work_.size(), &sort_scratch_);
  std::vector<std::uint32_t> mine;
  for (std::size_t k = 0; k < work_.size(); ++k) {
    prefetch_ahead(k, kAheadSProbe);
    if (k + kPrefetchAhead < work_.size()) {
      for (const auto r : replies.of(k + kPrefetchAhead)) s_.prefetch(r);
    }
    auto& w = work_[k];
    if (w.match != Match::matched || w.s_reply != kNone) continue;
    const Rec& p = s_.recs[w.s_probe];
    const Nanos t0 = s_.ts(w.s_probe);
    const Nanos t1 = w.s_end > t0 ? w.s_end : t0 + m_.reply_timeout_ns;
    mine.clear();
    for (const auto r : replies.of(k)) {
      Nanos tr = s_.ts(r);
      if (r == w.s_probe || tr < t0 || tr >= t1 || !answers(p, s_.recs[r], l4_)) continue;
      mine.push_back(r);
    }
    if (mine.empty()) continue;
    std::stable_sort(mine.begin(), mine.end(), [&](auto a, auto b) { return s_.ts(a) < s_.ts(b); });
    // The first reply must come within the reply timeout; its retransmissions are the later
    // replies of the same kind (a connection's later packets — the server's FIN carries the same
    // ack — are not copies of its SYN-ACK).
    if (s_.ts(mine.front()) > t0 + m_.reply_timeout_ns) continue;
    const auto kind = kind_code(s_.recs[mine.front()]);
    std::erase_if(mine, [&](std::uint32_t r) { return kind_code(s_.recs[r]) != kind; });
    w.s_reply = mine.front();
    w.s_replies = static_cast<std::uint16_t>(std::min<std::size_t>(mine.size(), 0xffff));
    for (std::size_t j = 1; j < mine.size(); ++j) s_more_replies_.emplace_back(static_cast<std::uint32_t>(k), mine[j]);
  }
  // Positions were appended in order within each call; a second call adds later positions after
  // earlier ones of the first, so sort once for the lookups.
  std::sort(s_more_replies_.begin(), s_more_replies_.end(), [&](const auto& a, const auto& b) {
    return a.first != b.first ? a.first < b.first : s_.ts(a.second) < s_.ts(b.second);
  });
  // Each probe's run in it, found without a search by the per-reply lookups that follow.
  more_off_.assign(work_.size() + 1, 0);
  for (const auto& e : s_more_replies_) ++more_off_[e.first + 1];
  for (std::size_t k = 0; k < work_.size(); ++k) more_off_[k + 1] += more_off_[k];
}

bool Correlator::reverse_agrees(std::uint32_t sr, std::uint32_t cr, bool use_time) const {
  const Rec& a = s_.recs[sr];
  const Rec& b = c_.recs[cr];
  if (kind_code(a) != kind_code(b)) return false;
  if (a.role == kRoleIcmpError) return true;  // both quote the same probe: that is the invariant
  if (a.role == kRoleTcpReply && a.primary == b.primary) return true;
  if (a.ipid != 0 && a.ipid == b.ipid) return true;
  if ((a.bits & kHasTs) && (b.bits & kHasTs) && a.tsval == b.tsval) return true;
  if ((a.bits & kHasTag) && (b.bits & kHasTag) && a.primary == b.primary) return true;
  if (use_time && time_known()) {
    Nanos expect = s_.ts(sr) - corr_.clock.offset_ns;
    Nanos t = c_.ts(cr);
    Nanos tol = corr_.clock.error_ns + kTimeSlackNs;
    return t >= expect - tol && t <= expect + m_.reply_timeout_ns + tol;
  }
  return false;
}

int Correlator::which_server_reply(std::size_t k, std::uint32_t cr, bool use_time) const {
  const auto& w = work_[k];
  if (w.s_reply == kNone || w.c_probe == kNone) return -1;
  const Rec& b = c_.recs[cr];
  // The server's replies in time order: the first, then its retransmissions.
  std::uint32_t list[16];
  std::size_t n = 0;
  list[n++] = w.s_reply;
  for (auto pkt : more_replies(k)) {
    if (n == 16) break;
    list[n++] = pkt;
  }
  // A sequence-rewriting middlebox rewrites the reply's too: then the server's ISN cannot agree,
  // and time or uniqueness must.
  const bool seq_rewritten = w.match == Match::matched && c_.recs[w.c_probe].primary != s_.recs[w.s_probe].primary;
  int strong = -1, strong_n = 0;
  int best = -1;
  Nanos best_rtt = 0;
  const Nanos c_tx = c_.ts(w.c_probe), c_rx = c_.ts(cr), s_rx = s_.ts(w.s_probe);
  for (std::size_t j = 0; j < n; ++j) {
    const Rec& a = s_.recs[list[j]];
    if (kind_code(a) != kind_code(b)) continue;
    // A TCP reply is a copy of the server's only if it carries the server's ISN (a forged SYN-ACK
    // does not), unless the path rewrites sequence numbers. For UDP and ICMP, answers() already
    // matched ports, tags or echo ids, and the kinds agree.
    if (a.role == kRoleTcpReply && a.primary != b.primary && !seq_rewritten) continue;
    // Per-copy carriers: a retransmission has the same ISN, but (with timestamps) another TSval.
    const bool ts_eq = (a.bits & kHasTs) && (b.bits & kHasTs) && a.tsval == b.tsval;
    const bool id_eq = a.ipid != 0 && a.ipid == b.ipid;
    if (ts_eq || id_eq) {
      if (strong_n++ == 0) strong = static_cast<int>(j);
      continue;
    }
    if (use_time && time_known() && a.role != kRoleTcpReply && !reverse_agrees(list[j], cr, true)) continue;
    // Clock-free: the network round trip this pairing implies, client interval minus the server's
    // turnaround. The right copy gives the path's round trip; an earlier reply gives that plus the
    // retransmission interval, a later one a negative value.
    const Nanos rtt = (c_rx - c_tx) - (s_.ts(list[j]) - s_rx);
    if (rtt < -kTimeSlackNs) continue;
    if (best < 0 || rtt < best_rtt) {
      best = static_cast<int>(j);
      best_rtt = rtt;
    }
  }
  if (strong_n == 1) return strong;
  return best;
}

std::uint32_t Correlator::pick_client_reply(std::size_t k, bool use_time, bool* real, std::uint16_t* received,
                                            std::uint32_t* retx) const {
  *real = false;
  if (received) *received = 0;
  if (retx) *retx = kNone;
  const auto& w = work_[k];
  if (w.c_probe == kNone || !c_reply_built_) return kNone;
  const Rec& p = c_.recs[w.c_probe];
  const Nanos t0 = c_.ts(w.c_probe);
  const Nanos t1 = std::max(w.c_end, t0 + m_.reply_timeout_ns);
  std::uint32_t first = kNone, match = kNone;
  std::uint32_t copies_seen = 0;  // bit j: the server's j-th reply reached the client (j < 32)
  for (const auto r : c_reply_of_.of(k)) {
    const Nanos t = c_.ts(r);
    if (t < t0 || t >= t1 || !answers(p, c_.recs[r], l4_)) continue;
    const int j = which_server_reply(k, r, use_time);
    if (j < 0) {
      // Not a copy of anything the server sent: another sender's (or no server evidence), only
      // within the reply timeout.
      if (t <= t0 + m_.reply_timeout_ns && (first == kNone || t < c_.ts(first))) first = r;
      continue;
    }
    if (j < 32) copies_seen |= 1u << j;
    if (j == 0) {
      if (match == kNone || t < c_.ts(match)) match = r;
    } else if (retx && (*retx == kNone || t < c_.ts(*retx))) {
      *retx = r;
    }
  }
  if (received) *received = static_cast<std::uint16_t>(__builtin_popcount(copies_seen));
  if (match != kNone) {
    *real = true;
    return match;
  }
  return first;
}

void Correlator::estimate_clock() {
  if (m_.clock) {
    corr_.clock = *m_.clock;
    return;
  }
  corr_.clock = ClockEstimate{0, 0, "none"};
  bool have = false;
  Nanos best_rtt = 0;
  for (std::size_t k = 0; k < work_.size(); ++k) {
    prefetch_ahead(k, kAheadCProbe | kAheadSProbe | kAheadSReply | kAheadCReplies);
    const auto& w = work_[k];
    if (w.match != Match::matched || w.s_reply == kNone) continue;
    bool real = false;
    auto cr = pick_client_reply(k, false, &real);
    if (!real) continue;
    Nanos c_tx = c_.ts(w.c_probe), s_rx = s_.ts(w.s_probe), s_tx = s_.ts(w.s_reply), c_rx = c_.ts(cr);
    // NTP's on-wire calculation: the server's turnaround does not count as path delay.
    Nanos rtt = (c_rx - c_tx) - (s_tx - s_rx);
    if (rtt < 0) continue;
    if (!have || rtt < best_rtt) {
      have = true;
      best_rtt = rtt;
      corr_.clock.offset_ns = ((s_rx - c_tx) - (c_rx - s_tx)) / 2;
      corr_.clock.error_ns = rtt / 2;
    }
  }
  if (have) corr_.clock.source = "probes";
}

}  // namespace tandem::correlate::detail
