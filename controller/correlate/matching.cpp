// Matching client probes to their server sightings (docs/correlation.md steps 4 and 7): pass A on
// two or more agreeing invariants, resolved globally (better matches take their packet first, and a
// disagreeing invariant counts against a match), pass B on one invariant inside a unique time
// window. Server candidates come from the client's address or the addresses a NAT is shown to map
// it to (DESIGN.md §8 "Other traffic is not evidence").
#include <algorithm>
#include <array>

#include "controller/correlate/correlator.hpp"

namespace tandem::correlate::detail {

int Correlator::score(const Rec& c, const Rec& s) const {
  int n = 0;
  if ((c.bits & kHasPrimary) && (s.bits & kHasPrimary) && c.primary == s.primary) {
    // An untagged ICMP echo id/seq or a tag counts like the TCP sequence number.
    ++n;
  }
  if (disc_.ipid && c.ipid != 0 && c.ipid == s.ipid) ++n;
  if (disc_.sport && c.sport == s.sport) ++n;
  if (disc_.tsval && (c.bits & kHasTs) && (s.bits & kHasTs) && c.tsval == s.tsval) ++n;
  return n;
}

int Correlator::disagree(const Rec& c, const Rec& s) const {
  int n = 0;
  if ((c.bits & kHasPrimary) && (s.bits & kHasPrimary) && c.primary != s.primary) ++n;
  if (disc_.ipid && c.ipid != 0 && s.ipid != 0 && c.ipid != s.ipid) ++n;
  if (disc_.sport && c.sport != s.sport) ++n;
  if (disc_.tsval && (c.bits & kHasTs) && (s.bits & kHasTs) && c.tsval != s.tsval) ++n;
  return n;
}

// Server candidates from the client's own address when the server sees it; otherwise (a NAT) from
// the addresses pass A's strong matches arrived from, and after pass A only to the ports its matches
// arrived at. Other clients' SYNs to the same port are no
// evidence about this client's probes.
void Correlator::restrict_sources() {
  s_src_ok_.assign(s_.addrs.size(), false);
  std::optional<std::uint16_t> direct;
  if (client_id_) {
    if (const IpAddr* a = c_.addrs.get(*client_id_)) direct = s_.addrs.find(*a);
  }
  bool direct_seen = false;
  if (direct) {
    for (auto i : s_cands_) {
      if (s_.recs[i].src == *direct) { direct_seen = true; break; }
    }
  }
  if (direct_seen) {
    s_src_ok_[*direct] = true;
  } else {
    bool any = false;
    for (const auto& w : work_) {
      if (w.match == Match::matched && s_.recs[w.s_probe].src < s_src_ok_.size()) {
        s_src_ok_[s_.recs[w.s_probe].src] = true;
        any = true;
      }
    }
    // No match at all proves no mapping: every source stays a candidate (pass B then reports the
    // unidentified packets rather than calling the probes lost).
    if (!any) s_src_ok_.assign(s_.addrs.size(), true);
  }
  // Likewise the destination port: once pass A has matched probes, the ports their sightings
  // arrived at are the proven mapping of the analysed flow's port (the port itself, or what a DNAT
  // made of it). A SYN to another port of the server is another flow — in a busy or hand-taken
  // capture one in every window — and must not turn a lost probe into "unidentified".
  std::vector<bool> port_ok;
  if (l4_ != L4Kind::icmp) {
    for (const auto& w : work_) {
      if (w.match != Match::matched) continue;
      if (port_ok.empty()) port_ok.assign(65536, false);
      port_ok[s_.recs[w.s_probe].dport] = true;
    }
  }
  std::erase_if(s_cands_, [&](std::uint32_t i) {
    const auto src = s_.recs[i].src;
    if (!port_ok.empty() && !port_ok[s_.recs[i].dport]) return true;
    return src >= s_src_ok_.size() || !s_src_ok_[src];
  });
}

void Correlator::pass_a() {
  std::vector<std::uint64_t> q = std::move(q_primary_);
  c_primary_keys_ = KeyFilter();
  if (s_cands_.empty()) return;
  // Edges (probe position, server packet) agreeing on >= 2 invariants, bucketed by quality: more
  // agreeing first, then fewer disagreeing. At most 4 invariants: agree 2..4, disagree 0..4-agree.
  struct Edge {
    std::uint32_t k, s;
  };
  auto bucket_of = [](int agree, int dis) { return (4 - agree) * 3 + std::min(dis, 2); };
  std::array<std::vector<Edge>, 9> buckets;

  std::vector<std::uint32_t> cands;
  // The candidates one probe has taken, as (1 + its position) << 32 | server rec in a small
  // open-addressing set: deduplicates them in O(1) each (a common IP ID or port brings dozens),
  // keeping their order. A probe takes at most 1 + 3 * kMaxChainWalk, under a third of the slots,
  // and entries of earlier probes count as empty.
  constexpr std::size_t kTakenSlots = 4096;
  static_assert(kTakenSlots > 3 * (1 + 3 * kMaxChainWalk));
  std::vector<std::uint64_t> taken(kTakenSlots, 0);
  detail::SortedMultimap::Postings by_primary;
  by_primary = s_primary_.gather(q, work_.size(), &sort_scratch_);
  std::vector<std::uint64_t>().swap(q);
  s_primary_.clear();  // by_primary holds all that pass A asks of it
  auto source_ok = [&](std::uint32_t s) {
    const auto src = s_.recs[s].src;
    return s_src_ok_.empty() || (src < s_src_ok_.size() && s_src_ok_[src]);
  };
  for (std::size_t k = 0; k < work_.size(); ++k) {
    prefetch_ahead(k, kAheadCProbe);
    if (k + kPrefetchAhead < work_.size()) {
      for (const auto s : by_primary.of(k + kPrefetchAhead)) s_.prefetch(s);
    }
    auto& w = work_[k];
    if (w.c_probe == kNone) continue;
    const Rec& c = c_.recs[w.c_probe];
    cands.clear();
    const auto stamp = static_cast<std::uint32_t>(k + 1);
    auto take = [&](std::uint32_t s) {
      const std::uint64_t entry = std::uint64_t{stamp} << 32 | s;
      std::size_t slot = (s * 0x9e3779b1u) >> 20;  // 12 bits: kTakenSlots
      while ((taken[slot] >> 32) == stamp) {
        if (taken[slot] == entry) return;
        slot = (slot + 1) & (kTakenSlots - 1);
      }
      if (!source_ok(s)) return;
      taken[slot] = entry;
      cands.push_back(s);
    };
    // Newest first and at most kMaxChainWalk of them: such a common value identifies nothing.
    auto collect = [&](const detail::SortedMultimap& idx, std::uint32_t key) {
      auto range = idx.find(key);
      for (std::uint32_t t = range.n, walked = 0; t-- > 0 && walked < kMaxChainWalk; ++walked) {
        take(idx.value(range.pos + t));
      }
    };
    if (c.bits & kHasPrimary) {
      const auto vals = by_primary.of(k);
      for (std::size_t t = vals.size(), walked = 0; t-- > 0 && walked < kMaxChainWalk; ++walked) take(vals[t]);
    }
    auto best_score = [&] {
      int best = 0;
      if (cands.size() > 2) {
        for (auto s : cands) __builtin_prefetch(&s_.recs[s]);
      }
      for (auto s : cands) best = std::max(best, score(c, s_.recs[s]));
      return best;
    };
    int best = best_score();
    if (best < 2) {
      // The primary carrier was rewritten (or collides): look the probe up by the others.
      if (disc_.ipid && c.ipid != 0) {
        if (!ipid_built_) {
          ipid_built_ = true;
          for (auto i : s_cands_) s_ipid_.add(s_.recs[i].ipid, i);
          s_ipid_.seal(&sort_scratch_);
        }
        collect(s_ipid_, c.ipid);
      }
      if (disc_.sport) {
        if (!sport_built_) {
          sport_built_ = true;
          for (auto i : s_cands_) s_sport_.add(s_.recs[i].sport, i);
          s_sport_.seal(&sort_scratch_);
        }
        collect(s_sport_, c.sport);
      }
      if (disc_.tsval && (c.bits & kHasTs)) {
        if (!tsval_built_) {
          tsval_built_ = true;
          for (auto i : s_cands_) {
            if (s_.recs[i].bits & kHasTs) s_tsval_.add(s_.recs[i].tsval, i);
          }
          s_tsval_.seal(&sort_scratch_);
        }
        collect(s_tsval_, c.tsval);
      }
      best = best_score();
    }
    std::uint32_t weak = 0;
    for (auto s : cands) {
      const int sc = score(c, s_.recs[s]);
      if (sc >= 2) buckets[bucket_of(sc, disagree(c, s_.recs[s]))].push_back({static_cast<std::uint32_t>(k), s});
      else if (sc == 1 && best == 1) ++weak;
    }
    if (best == 1) w.weak = weak;
  }

  // Global resolution, best bucket first: within a bucket an edge whose probe and packet are both
  // still free and have no other free edge in the bucket is a match; a probe with two such edges,
  // or a packet two probes want equally, is ambiguous (the packet is contested: no worse edge may
  // take it; pass B may still decide it by time).
  std::vector<std::uint32_t> probe_n(work_.size(), 0), packet_n(s_.recs.size(), 0);
  std::vector<std::uint32_t> packet_first(s_.recs.size(), kNone);
  auto probe_free = [&](std::uint32_t k) { return work_[k].match == Match::none; };
  auto packet_free = [&](std::uint32_t s) { return s_claimed_[s] == kNone; };
  for (auto& edges : buckets) {
    if (edges.empty()) continue;
    for (const auto& e : edges) {
      if (!probe_free(e.k) || !packet_free(e.s)) continue;
      ++probe_n[e.k];
      if (packet_n[e.s]++ == 0) packet_first[e.s] = e.k;
    }
    for (const auto& e : edges) {
      if (!probe_free(e.k) || !packet_free(e.s)) continue;
      auto& w = work_[e.k];
      if (probe_n[e.k] == 1 && packet_n[e.s] == 1) {
        s_claimed_[e.s] = e.k;
        w.s_probe = e.s;
        w.match = Match::matched;
        w.score = static_cast<std::uint8_t>(score(c_.recs[w.c_probe], s_.recs[e.s]));
      }
    }
    for (const auto& e : edges) {
      auto& w = work_[e.k];
      if (w.match != Match::none || !packet_free(e.s)) continue;
      if (probe_n[e.k] > 1 || packet_n[e.s] > 1) {
        w.match = Match::ambiguous;
        w.candidates = std::max(probe_n[e.k], packet_n[e.s]);
        if (packet_n[e.s] > 1 && packet_first[e.s] != e.k) w.conflict_with = work_[packet_first[e.s]].id;
        else if (packet_n[e.s] > 1) {
          // The first claimant names another one.
          for (const auto& o : edges) {
            if (o.s == e.s && o.k != e.k) { w.conflict_with = work_[o.k].id; break; }
          }
        }
      }
    }
    for (const auto& e : edges) {
      if (packet_n[e.s] > 1 && packet_free(e.s)) s_claimed_[e.s] = kContested;
      probe_n[e.k] = 0;
      packet_n[e.s] = 0;
      packet_first[e.s] = kNone;
    }
  }
}

std::size_t Correlator::pass_b() {
  if (s_cands_.empty() || !time_known()) return 0;
  std::size_t matched = 0;
  const Nanos off = corr_.clock.offset_ns, err = corr_.clock.error_ns;
  // One-way delays seen for probes matched without time bound where an unidentified sighting
  // may sit; without any, the reply timeout bounds it.
  for (std::size_t k = 0; k < work_.size(); ++k) {
    prefetch_ahead(k, kAheadCProbe | kAheadSProbe);
    const auto& w = work_[k];
    if (w.match != Match::matched) continue;
    Nanos ow = s_.ts(w.s_probe) - off - c_.ts(w.c_probe);
    if (!have_ow_) { min_ow_ = max_ow_ = ow; have_ow_ = true; }
    min_ow_ = std::min(min_ow_, ow);
    max_ow_ = std::max(max_ow_, ow);
  }
  Nanos lo_d = have_ow_ ? min_ow_ - err - kTimeSlackNs : -err - kTimeSlackNs;
  Nanos hi_d = have_ow_ ? max_ow_ + err + kTimeSlackNs : m_.reply_timeout_ns + err;
  // The candidates' arrival times side by side (s_cands_ is in time order), and the window's start
  // found from the previous probe's: probes come in send order, so it moves forward a few places
  // at a time instead of a binary search through the whole capture for each probe.
  std::vector<Nanos> cand_ts(s_cands_.size());
  for (std::size_t j = 0; j < s_cands_.size(); ++j) cand_ts[j] = s_.ts(s_cands_[j]);
  std::size_t from = 0;
  for (std::size_t k = 0; k < work_.size(); ++k) {
    auto& w = work_[k];
    if (w.c_probe == kNone || w.match == Match::matched) continue;
    const bool was_ambiguous = w.match == Match::ambiguous;
    const Rec& c = c_.recs[w.c_probe];
    Nanos t = c_.ts(w.c_probe) + off;
    // The first candidate at or after t + lo_d (std::lower_bound's answer).
    const Nanos start = t + lo_d;
    if (from > 0 && cand_ts[from - 1] >= start) {
      from = static_cast<std::size_t>(std::lower_bound(cand_ts.begin(), cand_ts.begin() + static_cast<std::ptrdiff_t>(from), start) -
                                      cand_ts.begin());
    }
    for (std::size_t step = 0; from < cand_ts.size() && cand_ts[from] < start; ++step) {
      if (step == 8) {
        from = static_cast<std::size_t>(std::lower_bound(cand_ts.begin() + static_cast<std::ptrdiff_t>(from), cand_ts.end(), start) -
                                        cand_ts.begin());
        break;
      }
      ++from;
    }
    std::uint32_t hit = kNone, hits = 0, unclaimed = 0;
    for (std::size_t j = from; j < cand_ts.size() && cand_ts[j] <= t + hi_d; ++j) {
      const std::uint32_t s = s_cands_[j];
      const auto owner = s_claimed_[s];
      if (owner != kNone && owner != kContested) continue;
      // A contested packet is open to the probes that contested it, not to weaker ones.
      if (owner == kContested && !was_ambiguous) continue;
      ++unclaimed;
      if (score(c, s_.recs[s]) >= 1) { hit = s; ++hits; }
    }
    if (hits == 1) {
      s_claimed_[hit] = static_cast<std::uint32_t>(k);
      w.s_probe = hit;
      w.match = Match::matched;
      ++matched;
      w.candidates = 0;
      w.conflict_with = kNone;
    } else if (hits > 1) {
      w.match = Match::ambiguous;
      w.candidates = hits;
    } else {
      if (was_ambiguous) {
        // Its equally good candidates all lie outside its time window: they are other copies'.
        w.match = Match::none;
        w.candidates = 0;
        w.conflict_with = kNone;
      }
      if (unclaimed == 0) continue;
      // Something arrived at the server in this probe's window that nothing identifies: it may be
      // this probe with every carrier rewritten, so "lost" would be a guess.
      w.match = Match::ambiguous;
      w.candidates = 0;
      w.unidentified = unclaimed;
    }
  }
  return matched;
}

}  // namespace tandem::correlate::detail
