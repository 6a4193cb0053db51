// correlate(): see docs/correlation.md for the algorithm this file implements. In brief:
//   1. decode every packet of both captures once into a 36-byte Rec (no per-packet allocation; a
//      fast path for plain TCP, the two captures on two threads: records.cpp);
//   2. find the probes in the client capture and give them ids (run key, or send order);
//   3. pass A: match each probe to its server sighting on >= 2 agreeing discriminating invariants;
//   4. find the server's reply to each sighting and the replies the client got;
//   5. estimate the clock from answered pairs (unless the manifest has it);
//   6. pass B: probes still without a sighting get one if exactly one candidate agreeing on one
//      invariant falls in the probe's offset-corrected time window;
//   7. decide fates, diff fields of matched pairs, attribute the client's RSTs, aggregate findings
//      (outcome.cpp, field_diff.cpp).
// The Correlator and the state its passes share are declared in correlator.hpp.
#include "controller/correlate/correlate.hpp"

#include <algorithm>
#include <cstring>
#include <map>
#include <optional>
#include <tuple>
#include <unordered_map>

#include "common/packet/build.hpp"
#include "common/packet/decode.hpp"
#include "controller/correlate/correlator.hpp"
#include "controller/correlate/field_diff.hpp"

namespace tandem::correlate {
namespace detail {

Status Correlator::validate() {
  if (m_.l4 == "tcp") l4_ = L4Kind::tcp;
  else if (m_.l4 == "udp") l4_ = L4Kind::udp;
  else if (m_.l4 == "icmp") l4_ = L4Kind::icmp;
  else return make_error(Errc::usage, "correlate", "manifest l4 '" + m_.l4 + "' is not tcp, udp or icmp");
  if (m_.count && m_.probe_variant.size() > *m_.count) {
    return make_error(Errc::usage, "correlate", "manifest lists variants for " +
                      std::to_string(m_.probe_variant.size()) + " probes but count is " + std::to_string(*m_.count));
  }
  std::size_t nvar = std::max<std::size_t>(m_.variants.size(), 1);
  for (auto v : m_.probe_variant) {
    if (v >= nvar) {
      return make_error(Errc::usage, "correlate", "manifest probe_variant " + std::to_string(v) +
                        " is out of range (" + std::to_string(nvar) + " variants)");
    }
  }
  for (const Side* s : {&c_, &s_}) {
    if (s->cap->present && !linktype_supported(s->cap->linktype)) {
      return make_error(Errc::usage, "correlate", std::string(s == &c_ ? "client" : "server") +
                        " capture has link type " + std::to_string(s->cap->linktype) + ", which cannot be decoded");
    }
  }
  return ok_status();
}

// The most frequent value of id_of(rec) over recs passing keep(rec).
template <class Keep, class IdOf>
std::optional<std::uint16_t> most_frequent(const std::vector<Rec>& recs, std::size_t n_ids, Keep keep, IdOf id_of) {
  std::vector<std::uint32_t> counts(n_ids + 1, 0);
  for (const auto& r : recs) {
    if (keep(r)) {
      auto id = id_of(r);
      if (id < counts.size()) ++counts[id];
    }
  }
  auto it = std::max_element(counts.begin(), counts.end());
  if (it == counts.end() || *it == 0) return std::nullopt;
  return static_cast<std::uint16_t>(it - counts.begin());
}

void Correlator::find_endpoints() {
  auto shape = [&](const Rec& r) { return is_probe_shape(r, l4_); };
  if (c_.cap->present) {
    auto known = m_.client ? m_.client : c_.cap->local;
    if (known) client_id_ = c_.addrs.find(*known);
    if (!known) {
      // Without a manifest: the probes' sender is the most frequent source of probe-shaped
      // packets, preferring those the link layer marks as sent by this host.
      bool any_out = std::any_of(c_.recs.begin(), c_.recs.end(), [&](const Rec& r) { return shape(r) && (r.bits & kOutgoing); });
      client_id_ = most_frequent(c_.recs, c_.addrs.size(), [&](const Rec& r) { return shape(r) && (!any_out || (r.bits & kOutgoing)); },
                                 [](const Rec& r) { return r.src; });
    }
    if (client_id_) {
      auto cid = *client_id_;
      if (m_.target) target_id_ = c_.addrs.find(*m_.target);
      else target_id_ = most_frequent(c_.recs, c_.addrs.size(), [&](const Rec& r) { return shape(r) && r.src == cid; },
                                      [](const Rec& r) { return r.dst; });
      if (m_.dport) dport_ = *m_.dport;
      else if (target_id_ && l4_ != L4Kind::icmp) {
        // Ports are 16 bits: count them directly.
        std::vector<std::uint32_t> counts(65536, 0);
        for (const auto& r : c_.recs) {
          if (shape(r) && r.src == cid && r.dst == *target_id_) ++counts[r.dport];
        }
        auto it = std::max_element(counts.begin(), counts.end());
        if (*it) dport_ = static_cast<std::uint16_t>(it - counts.begin());
      }
    }
  }
  if (s_.cap->present) {
    if (s_.cap->local) server_id_ = s_.addrs.find(*s_.cap->local);
    else {
      // NAT may change the destination (DNAT), so the server is whoever receives probe-shaped
      // packets most often, not necessarily the address the client aimed at.
      bool any_in = std::any_of(s_.recs.begin(), s_.recs.end(), [&](const Rec& r) {
        return shape(r) && !(r.bits & kOutgoing) && s_.cap->linktype != 0 && pcapio::is_linux_cooked(s_.cap->linktype);
      });
      server_id_ = most_frequent(s_.recs, s_.addrs.size(), [&](const Rec& r) { return shape(r) && (!any_in || !(r.bits & kOutgoing)); },
                                 [](const Rec& r) { return r.dst; });
    }
  }
}

void Correlator::find_client_probes() {
  std::uint64_t count_limit = m_.count ? *m_.count : (m_.run_key ? (1u << 24) : ~std::uint64_t{0});
  std::vector<std::pair<std::uint32_t, std::uint32_t>> found;  // (id, client rec)
  if (c_.cap->present && client_id_ && target_id_) {
    std::optional<probe::RunKey> key;
    if (m_.run_key) key = probe::RunKey{*m_.run_key};
    std::uint32_t ordinal = 0;
    for (std::uint32_t i = 0; i < c_.recs.size(); ++i) {
      const Rec& r = c_.recs[i];
      if (!is_probe_shape(r, l4_) || r.src != *client_id_ || r.dst != *target_id_) continue;
      if (dport_ && l4_ != L4Kind::icmp && r.dport != *dport_) continue;
      std::optional<std::uint32_t> id;
      if (key) {
        if (l4_ == L4Kind::tcp) id = key->index_from_seq(r.primary);
        else if (r.bits & kHasTag) id = r.primary;
        else if (l4_ == L4Kind::icmp && r.sport == key->icmp_ident() && m_.count && *m_.count <= 65536) id = r.dport;
        if (id && *id >= count_limit) id.reset();
      } else {
        id = ordinal++;
      }
      if (id) found.emplace_back(*id, i);
    }
  }
  // With a run key, ids follow send order, so the client's probes are usually in order already.
  auto by_id = [](const auto& a, const auto& b) { return a.first < b.first; };
  if (!std::is_sorted(found.begin(), found.end(), by_id)) std::stable_sort(found.begin(), found.end(), by_id);
  // Duplicates (the same id sent twice) keep the first sighting; the rest are unmatched packets.
  found.erase(std::unique(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.first == b.first; }),
              found.end());

  if (m_.count) {
    work_.resize(*m_.count);
    for (std::uint32_t id = 0; id < *m_.count; ++id) work_[id].id = id;
    for (auto [id, rec] : found) work_[id].c_probe = rec;
  } else {
    work_.resize(found.size());
    for (std::size_t k = 0; k < found.size(); ++k) {
      work_[k].id = found[k].first;
      work_[k].c_probe = found[k].second;
    }
  }
  std::vector<std::pair<std::uint32_t, std::uint32_t>>().swap(found);
  VaryTracker<std::uint32_t> v_ipid, v_ts;
  VaryTracker<std::uint16_t> v_sport;
  std::size_t n = 0;
  for (auto& w : work_) {
    auto ci = w.c_probe;
    if (ci == kNone) continue;
    const Rec& r = c_.recs[ci];
    w.sport = l4_ == L4Kind::icmp ? 0 : r.sport;
    ++n;
    v_ipid.add(r.ipid);
    v_sport.add(r.sport);
    if (r.bits & kHasTs) v_ts.add(r.tsval);
  }
  // A lone probe is told apart by anything; otherwise an invariant must vary to identify.
  disc_.ipid = v_ipid.varies || (n == 1 && v_ipid.first != 0);
  disc_.sport = l4_ != L4Kind::icmp && (v_sport.varies || n == 1);
  disc_.tsval = v_ts.varies || (n == 1 && v_ts.seen);
}

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

void Correlator::build_server_indexes() {
  if (!s_.cap->present || !server_id_) return;
  auto sid = *server_id_;
  for (std::uint32_t i = 0; i < s_.recs.size(); ++i) {
    const Rec& r = s_.recs[i];
    if (is_probe_shape(r, l4_) && r.dst == sid && r.src != sid) s_cands_.push_back(i);
  }
  // Captures are written in time order; a file merged by hand may not be, and pass B's time
  // windows need it.
  if (!std::is_sorted(s_cands_.begin(), s_cands_.end(), [&](auto a, auto b) { return s_.ts(a) < s_.ts(b); })) {
    std::stable_sort(s_cands_.begin(), s_cands_.end(), [&](auto a, auto b) { return s_.ts(a) < s_.ts(b); });
  }
  s_primary_.reserve(s_cands_.size());
  for (auto i : s_cands_) {
    if (s_.recs[i].bits & kHasPrimary) s_primary_.add(join_key(s_.recs[i].primary), i);
  }
  s_primary_.seal();
  s_claimed_.assign(s_.recs.size(), kNone);
  // Replies the server sent: what answers() checks per probe.
  std::size_t n = 0;
  for (const auto& r : s_.recs) n += r.src == sid;
  s_reply_idx_.reserve(n);
  for (std::uint32_t i = 0; i < s_.recs.size(); ++i) {
    const Rec& r = s_.recs[i];
    if (r.src != sid) continue;
    if (auto k = reply_key(r, l4_)) s_reply_idx_.add(join_key(*k), i);
  }
  s_reply_idx_.seal();
}

void Correlator::index_client_replies() {
  if (!c_.cap->present || !client_id_) return;
  auto cid = *client_id_;
  std::size_t n = 0;
  for (const auto& r : c_.recs) n += r.dst == cid;
  c_reply_idx_.reserve(n);
  for (std::uint32_t i = 0; i < c_.recs.size(); ++i) {
    const Rec& r = c_.recs[i];
    if (r.dst != cid || (r.bits & kOutgoing)) continue;
    if (auto k = reply_key(r, l4_)) c_reply_idx_.add(join_key(*k), i);
  }
  c_reply_idx_.seal();
  c_reply_built_ = true;
  std::vector<std::uint64_t> q;
  q.reserve(work_.size());
  for (std::uint32_t k = 0; k < work_.size(); ++k) {
    if (work_[k].c_probe != kNone) q.push_back(std::uint64_t{join_key(probe_reply_key(c_.recs[work_[k].c_probe], l4_))} << 32 | k);
  }
  c_reply_of_ = c_reply_idx_.lookup(q, work_.size());
}

void Correlator::pass_a() {
  if (s_cands_.empty()) return;
  auto claim = [&](std::size_t k, std::uint32_t s, int sc) {
    auto& w = work_[k];
    w.score = static_cast<std::uint8_t>(sc);
    if (s_claimed_[s] != kNone) {
      auto other = s_claimed_[s];
      auto& o = work_[other];
      if (o.score > sc) return;  // a better-identified probe owns it; this one stays unmatched
      if (o.score < sc) {
        // This probe agrees on more carriers: the earlier claim was a coincidence (16-bit IP IDs
        // and ports repeat in long runs).
        o.match = Match::none;
        o.s_probe = kNone;
        o.score = 0;
      } else {
        // Equally good: neither is certain; report it rather than pick.
        w.match = Match::ambiguous;
        w.conflict_with = o.id;
        o.match = Match::ambiguous;
        o.conflict_with = w.id;
        return;
      }
    }
    s_claimed_[s] = static_cast<std::uint32_t>(k);
    w.s_probe = s;
    w.match = Match::matched;
  };
  std::vector<std::uint32_t> cands;
  // Per server rec: 1 + the probe position that last took it as a candidate. Deduplicates the
  // candidates in O(1) each (a common IP ID or port brings dozens of them), keeping their order.
  std::vector<std::uint32_t> taken(s_.recs.size(), 0);
  std::vector<detail::SortedMultimap::Range> by_primary;
  {
    std::vector<std::uint64_t> q;
    q.reserve(work_.size());
    for (std::uint32_t k = 0; k < work_.size(); ++k) {
      auto ci = work_[k].c_probe;
      if (ci != kNone && (c_.recs[ci].bits & kHasPrimary)) q.push_back(std::uint64_t{join_key(c_.recs[ci].primary)} << 32 | k);
    }
    by_primary = s_primary_.lookup(q, work_.size());
  }
  for (std::size_t k = 0; k < work_.size(); ++k) {
    auto& w = work_[k];
    if (w.c_probe == kNone) continue;
    const Rec& c = c_.recs[w.c_probe];
    cands.clear();
    const auto stamp = static_cast<std::uint32_t>(k + 1);
    auto take = [&](std::uint32_t s) {
      if (taken[s] == stamp) return;
      taken[s] = stamp;
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
      // Newest first and at most kMaxChainWalk of them, as for the other carriers below.
      auto range = by_primary[k];
      for (std::uint32_t t = range.n, walked = 0; t-- > 0 && walked < kMaxChainWalk; ++walked) {
        take(s_primary_.value(range.pos + t));
      }
    }
    auto best_of = [&](int& best, std::uint32_t& best_s, std::uint32_t& ties) {
      best = 0;
      best_s = kNone;
      ties = 0;
      // The candidates are scattered over the server records: start all their loads at once.
      if (cands.size() > 2) {
        for (auto s : cands) __builtin_prefetch(&s_.recs[s]);
      }
      for (auto s : cands) {
        int sc = score(c, s_.recs[s]);
        if (sc > best) { best = sc; best_s = s; ties = 1; } else if (sc == best && sc > 0) { ++ties; }
      }
    };
    int best;
    std::uint32_t best_s, ties;
    best_of(best, best_s, ties);
    if (best < 2 || ties > 1) {
      // The primary carrier was rewritten (or collides): look the probe up by the others.
      if (disc_.ipid && c.ipid != 0) {
        if (!ipid_built_) {
          ipid_built_ = true;
          for (auto i : s_cands_) s_ipid_.add(s_.recs[i].ipid, i);
          s_ipid_.seal();
        }
        collect(s_ipid_, c.ipid);
      }
      if (disc_.sport) {
        if (!sport_built_) {
          sport_built_ = true;
          for (auto i : s_cands_) s_sport_.add(s_.recs[i].sport, i);
          s_sport_.seal();
        }
        collect(s_sport_, c.sport);
      }
      if (disc_.tsval && (c.bits & kHasTs)) {
        if (!tsval_built_) {
          tsval_built_ = true;
          for (auto i : s_cands_) {
            if (s_.recs[i].bits & kHasTs) s_tsval_.add(s_.recs[i].tsval, i);
          }
          s_tsval_.seal();
        }
        collect(s_tsval_, c.tsval);
      }
      best_of(best, best_s, ties);
    }
    if (best == 1) w.weak = ties;
    if (best >= 2 && ties == 1) {
      claim(k, best_s, best);
    } else if (best >= 2) {
      w.match = Match::ambiguous;
      w.candidates = ties;
    }
  }
}

void Correlator::find_server_replies() {
  std::vector<std::uint64_t> q;
  for (std::uint32_t k = 0; k < work_.size(); ++k) {
    const auto& w = work_[k];
    if (w.match != Match::matched || w.s_reply != kNone) continue;
    q.push_back(std::uint64_t{join_key(probe_reply_key(s_.recs[w.s_probe], l4_))} << 32 | k);
  }
  if (q.empty()) return;
  auto replies = s_reply_idx_.lookup(q, work_.size());
  for (std::size_t k = 0; k < work_.size(); ++k) {
    auto& w = work_[k];
    if (w.match != Match::matched || w.s_reply != kNone) continue;
    const Rec& p = s_.recs[w.s_probe];
    Nanos t0 = s_.ts(w.s_probe), t1 = t0 + m_.reply_timeout_ns;
    std::uint32_t best = kNone;
    // Newest first: among equally early replies the last captured wins, as it always has.
    auto range = replies[k];
    for (std::uint32_t t = range.n; t-- > 0;) {
      auto r = s_reply_idx_.value(range.pos + t);
      Nanos tr = s_.ts(r);
      if (r == w.s_probe || tr < t0 || tr > t1 || !answers(p, s_.recs[r], l4_)) continue;
      if (best == kNone || tr < s_.ts(best)) best = r;
    }
    w.s_reply = best;
  }
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

std::uint32_t Correlator::pick_client_reply(std::size_t k, bool use_time, bool* real) const {
  *real = false;
  const auto& w = work_[k];
  if (w.c_probe == kNone || !c_reply_built_) return kNone;
  const Rec& p = c_.recs[w.c_probe];
  Nanos t0 = c_.ts(w.c_probe), t1 = t0 + m_.reply_timeout_ns;
  std::uint32_t first = kNone, match = kNone, same_kind = kNone;
  std::uint32_t same_kind_count = 0;
  std::uint32_t want_kind = w.s_reply != kNone ? kind_code(s_.recs[w.s_reply]) : 0;
  auto range = c_reply_of_[k];
  for (std::uint32_t i = range.n; i-- > 0;) {  // newest first, as ties have always been broken
    auto r = c_reply_idx_.value(range.pos + i);
    Nanos t = c_.ts(r);
    if (t < t0 || t > t1 || !answers(p, c_.recs[r], l4_)) continue;
    if (first == kNone || t < c_.ts(first)) first = r;
    if (w.s_reply == kNone) continue;
    if (kind_code(c_.recs[r]) == want_kind) {
      ++same_kind_count;
      if (same_kind == kNone || t < c_.ts(same_kind)) same_kind = r;
    }
    if (reverse_agrees(w.s_reply, r, use_time) && (match == kNone || t < c_.ts(match))) match = r;
  }
  if (match != kNone) { *real = true; return match; }
  // Same kind, nothing else to compare (sequence rewritten, IP ID 0, no timestamps): accept it
  // only if it is the one reply of that kind.
  if (same_kind != kNone && same_kind_count == 1 && !(use_time && time_known())) { *real = true; return same_kind; }
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

void Correlator::pass_b() {
  if (s_cands_.empty() || !time_known()) return;
  const Nanos off = corr_.clock.offset_ns, err = corr_.clock.error_ns;
  // One-way delays seen for probes matched without time bound where an unidentified sighting
  // may sit; without any, the reply timeout bounds it.
  for (const auto& w : work_) {
    if (w.match != Match::matched) continue;
    Nanos ow = s_.ts(w.s_probe) - off - c_.ts(w.c_probe);
    if (!have_ow_) { min_ow_ = max_ow_ = ow; have_ow_ = true; }
    min_ow_ = std::min(min_ow_, ow);
    max_ow_ = std::max(max_ow_, ow);
  }
  Nanos lo_d = have_ow_ ? min_ow_ - err - kTimeSlackNs : -err - kTimeSlackNs;
  Nanos hi_d = have_ow_ ? max_ow_ + err + kTimeSlackNs : m_.reply_timeout_ns + err;
  for (std::size_t k = 0; k < work_.size(); ++k) {
    auto& w = work_[k];
    if (w.c_probe == kNone || w.match == Match::matched || w.conflict_with != kNone) continue;
    const Rec& c = c_.recs[w.c_probe];
    Nanos t = c_.ts(w.c_probe) + off;
    auto it = std::lower_bound(s_cands_.begin(), s_cands_.end(), t + lo_d,
                               [&](std::uint32_t s, Nanos v) { return s_.ts(s) < v; });
    std::uint32_t hit = kNone, hits = 0, unclaimed = 0;
    for (; it != s_cands_.end() && s_.ts(*it) <= t + hi_d; ++it) {
      if (s_claimed_[*it] != kNone) continue;
      ++unclaimed;
      if (score(c, s_.recs[*it]) >= 1) { hit = *it; ++hits; }
    }
    if (hits == 1) {
      s_claimed_[hit] = static_cast<std::uint32_t>(k);
      w.s_probe = hit;
      w.match = Match::matched;
      w.candidates = 0;
    } else if (hits > 1) {
      w.match = Match::ambiguous;
      w.candidates = hits;
    } else if (unclaimed > 0 && w.match == Match::none) {
      // Something arrived at the server in this probe's window that nothing identifies: it may be
      // this probe with every carrier rewritten, so "lost" would be a guess.
      w.match = Match::ambiguous;
      w.candidates = 0;
      w.unidentified = unclaimed;
    }
  }
}

Result<Correlation> Correlator::run() {
  if (auto st = validate(); !st) return st.error();
  std::optional<std::uint32_t> key = m_.run_key;
  decode_sides(c_, s_, key);
  find_endpoints();
  if (l4_ == L4Kind::tcp && m_.run_key) seq_key_ = probe::RunKey{*m_.run_key};
  find_client_probes();
  build_server_indexes();
  index_client_replies();
  if (m_.clock) corr_.clock = *m_.clock;
  else corr_.clock = ClockEstimate{0, 0, "none"};
  pass_a();
  find_server_replies();
  estimate_clock();
  pass_b();
  // The sighting indexes are done with: give their memory back before the output grows.
  s_primary_.clear();
  for (auto* idx : {&s_ipid_, &s_sport_, &s_tsval_}) idx->clear();
  find_server_replies();
  s_reply_idx_.clear();
  settle_client_replies();
  c_reply_idx_.clear();
  std::vector<detail::SortedMultimap::Range>().swap(c_reply_of_);
  find_follow_ups();
  // From here on the probes' work state says all: the output replaces the per-packet records.
  release_records();
  decide();
  for (std::size_t k = 0; k < corr_.probes.size(); ++k) {
    if (work_[k].match == Match::ambiguous) ++corr_.ambiguous;
    diff(k);
  }
  std::vector<ProbeWork>().swap(work_);
  corr_.findings = aggregate_findings(corr_.probes);
  annotate_packets();
  corr_.client_stats = c_.cap->stats;
  corr_.server_stats = s_.cap->stats;
  corr_.client_present = c_.cap->present;
  corr_.server_present = s_.cap->present;
  corr_.client_packets = c_.cap->present ? c_.cap->packets.size() : 0;
  corr_.server_packets = s_.cap->present ? s_.cap->packets.size() : 0;
  corr_.variants = m_.variants;
  if (corr_.variants.empty()) corr_.variants.push_back(Variant{"default", "", 0, ""});
  return std::move(corr_);
}

}  // namespace detail

Result<Correlation> correlate(const CaptureSide& client, const CaptureSide& server, const RunManifest& m) {
  detail::Correlator c(client, server, m);
  return c.run();
}

std::string reply_kind_text(std::uint8_t l4_proto, std::uint8_t tcp_flags, std::uint8_t icmp_type,
                            std::uint8_t icmp_code) {
  switch (l4_proto) {
    case packet::kProtoTcp:
      if (tcp_flags & packet::kTcpRst) return "rst";
      if ((tcp_flags & (packet::kTcpSyn | packet::kTcpAck)) == (packet::kTcpSyn | packet::kTcpAck)) return "syn_ack";
      return "tcp";
    case packet::kProtoUdp: return "udp";
    case packet::kProtoIcmp:
    case packet::kProtoIcmpv6:
      return "icmp:" + std::to_string(icmp_type) + "/" + std::to_string(icmp_code);
    default: return {};
  }
}

}  // namespace tandem::correlate
