// correlate(): see docs/correlation.md for the algorithm this file implements. In brief:
//   1. decode every packet of both captures once into a 36-byte Rec (no per-packet allocation; a
//      fast path for plain TCP, the two captures on two threads: records.cpp);
//   2. find the probes in the client capture and give them ids (run key, or send order);
//   3. pass A: match each probe to its server sighting on >= 2 agreeing discriminating invariants;
//   4. find the server's reply to each sighting and the replies the client got;
//   5. estimate the clock from answered pairs (unless the manifest has it);
//   6. pass B: probes still without a sighting get one if exactly one candidate agreeing on one
//      invariant falls in the probe's offset-corrected time window;
//   7. decide fates, diff fields of matched pairs, aggregate findings (field_diff.cpp).
#include "controller/correlate/correlate.hpp"

#include <algorithm>
#include <cstring>
#include <map>
#include <optional>
#include <tuple>
#include <unordered_map>

#include "common/packet/build.hpp"
#include "common/packet/decode.hpp"
#include "common/packet/tcp_option.hpp"
#include "common/probe/identity.hpp"
#include "controller/correlate/field_diff.hpp"
#include "controller/correlate/index.hpp"
#include "controller/correlate/records.hpp"

namespace tandem::correlate {
namespace {

using namespace detail;  // NOLINT(google-build-using-namespace): this file's own records
using packet::Decoded;
using packet::IpAddr;

constexpr std::uint32_t kNone = 0xffffffffu;
// The slack added to time windows: capture timestamping jitter on either end.
constexpr Nanos kTimeSlackNs = 1'000'000;
// At most this many server packets sharing one carrier value are looked at: such a value identifies
// nothing.
constexpr std::size_t kMaxChainWalk = 256;

enum class L4Kind { tcp, udp, icmp };

bool is_probe_shape(const Rec& r, L4Kind l4) {
  switch (l4) {
    case L4Kind::tcp: return r.role == kRoleSyn;
    case L4Kind::udp: return r.role == kRoleDatagram;
    case L4Kind::icmp: return r.role == kRoleEchoReq;
  }
  return false;
}

// The key a probe is looked up by in reply indexes: what its replies and ICMP quotes carry.
std::uint32_t probe_reply_key(const Rec& p, L4Kind l4) {
  switch (l4) {
    case L4Kind::tcp: return p.primary;
    case L4Kind::udp: return std::uint32_t{p.dport} << 16 | p.sport;
    case L4Kind::icmp: return p.primary;
  }
  return 0;
}

// The key a reply-shaped packet is indexed under (see probe_reply_key); nullopt if not a reply.
std::optional<std::uint32_t> reply_key(const Rec& r, L4Kind l4) {
  switch (l4) {
    case L4Kind::tcp:
      if (r.role == kRoleTcpReply && (r.flags & packet::kTcpAck)) return r.ack - 1;
      if (r.role == kRoleIcmpError && (r.bits & kQuotedTcp) && (r.bits & kHasPrimary)) return r.primary;
      return std::nullopt;
    case L4Kind::udp:
      if (r.role == kRoleDatagram) return std::uint32_t{r.sport} << 16 | r.dport;
      if (r.role == kRoleIcmpError && (r.bits & kQuotedUdp)) return std::uint32_t{r.dport} << 16 | r.sport;
      return std::nullopt;
    case L4Kind::icmp:
      if (r.role == kRoleEchoReply && (r.bits & kHasPrimary)) return r.primary;
      if (r.role == kRoleIcmpError && (r.bits & kQuotedIcmp)) return r.primary;
      return std::nullopt;
  }
  return std::nullopt;
}

// Does reply-shaped r answer (or quote) probe p, both as seen on the same end?
bool answers(const Rec& p, const Rec& r, L4Kind l4) {
  if (r.dst != p.src) return false;
  if (r.role == kRoleIcmpError) {
    if (l4 == L4Kind::icmp) return (r.bits & kHasPrimary) && r.primary == p.primary;
    if (r.sport != p.sport || r.dport != p.dport) return false;
    if (l4 == L4Kind::tcp) return r.primary == p.primary;
    return !((r.bits & kHasTag) && (p.bits & kHasTag)) || r.primary == p.primary;
  }
  switch (l4) {
    case L4Kind::tcp: return r.sport == p.dport && r.dport == p.sport && r.ack == p.primary + 1;
    case L4Kind::udp:
      if (r.sport != p.dport || r.dport != p.sport) return false;
      return !((r.bits & kHasTag) && (p.bits & kHasTag)) || r.primary == p.primary;
    case L4Kind::icmp: return r.primary == p.primary;
  }
  return false;
}

// Reply kinds compare by what §5 names: SYN-ACK vs RST vs other TCP, ICMP type/code, UDP.
std::uint32_t kind_code(const Rec& r) {
  switch (r.role) {
    case kRoleTcpReply: return 1u << 16 | (r.flags & (packet::kTcpSyn | packet::kTcpRst));
    case kRoleDatagram: return 2u << 16;
    case kRoleEchoReply:
    case kRoleIcmpError: return 3u << 16 | std::uint32_t{r.flags} << 8 | r.code;
    default: return 0;
  }
}

// A reply's shape, kept per probe once the per-packet records are gone.
struct ReplyShape {
  std::uint8_t role = kRoleNone, flags = 0, code = 0;
  static ReplyShape of(const Rec& r) { return {r.role, r.flags, r.code}; }
};

std::string kind_text(ReplyShape r) {
  switch (r.role) {
    case kRoleTcpReply: return reply_kind_text(packet::kProtoTcp, r.flags, 0, 0);
    case kRoleDatagram: return reply_kind_text(packet::kProtoUdp, 0, 0, 0);
    case kRoleEchoReply:
    case kRoleIcmpError: return reply_kind_text(packet::kProtoIcmp, 0, r.flags, r.code);
    default: return {};
  }
}

// Which invariants tell probes apart in this run: one whose value is the same for every probe
// (a fixed source port, the probes' constant TSval, IP ID 0) identifies nothing.
struct Discriminating {
  bool primary = true, ipid = false, sport = false, tsval = false;
};

template <class T>
struct VaryTracker {
  bool seen = false, varies = false;
  T first{};
  void add(T v) {
    if (!seen) { seen = true; first = v; } else if (v != first) { varies = true; }
  }
};

enum class Match : std::uint8_t { none, matched, ambiguous };

// The diff fast path: equal fingerprints, identities, ports and addresses mean nothing to report.
// A TTL that went up was rewritten (routers only decrement it): that is a finding too.
bool same_fields(const Rec& a, const AddrTable& ta, const Rec& b, const AddrTable& tb) {
  return a.fp == b.fp && a.ipid == b.ipid && a.primary == b.primary && a.sport == b.sport && b.ttl <= a.ttl &&
         a.dport == b.dport && ta.get(a.src) && tb.get(b.src) && *ta.get(a.src) == *tb.get(b.src) &&
         ta.get(a.dst) && tb.get(b.dst) && *ta.get(a.dst) == *tb.get(b.dst);
}

enum SameBits : std::uint8_t { kForwardSame = 1, kReverseSame = 2 };

// Everything decide() and diff() need of a probe, so that the per-packet records can be freed
// before the output (the larger part of the peak) is allocated.
struct ProbeWork {
  std::uint32_t id = 0;
  std::uint32_t c_probe = kNone, s_probe = kNone, s_reply = kNone, c_reply = kNone;
  std::uint32_t candidates = 0;  // for the ambiguity note
  std::uint32_t conflict_with = kNone;  // probe id that claimed the same server packet
  std::uint32_t weak = 0;  // server candidates agreeing on exactly one invariant (pass A)
  std::uint32_t unidentified = 0;  // pass B: unclaimed server packets in its window, none agreeing
  std::uint16_t sport = 0;
  std::uint16_t c_reply_src = 0;
  std::int16_t forward_hops = 0, reverse_hops = 0;
  ReplyShape c_reply_shape, s_reply_shape;
  Match match = Match::none;
  std::uint8_t score = 0;  // invariants agreeing with the claimed server packet
  bool real = false;       // c_reply is the server's reply
  std::uint8_t same = 0;   // SameBits: pairs whose diff has nothing to report
};

class Correlator {
 public:
  Correlator(const CaptureSide& client, const CaptureSide& server, const RunManifest& m)
      : m_(m) {
    c_.cap = &client;
    s_.cap = &server;
  }

  Result<Correlation> run();

 private:
  Status validate();
  void find_endpoints();
  void find_client_probes();
  int score(const Rec& c, const Rec& s) const;
  void build_server_indexes();
  void pass_a();
  void pass_b();
  void find_server_replies();
  void index_client_replies();
  // Client replies to probe i, best first: the one matching the server's reply if any.
  std::uint32_t pick_client_reply(std::size_t i, bool use_time, bool* real) const;
  bool reverse_agrees(std::uint32_t s_reply, std::uint32_t c_reply, bool use_time) const;
  void estimate_clock();
  void settle_client_replies();
  void release_records();
  void decide();
  void diff(std::size_t i);
  // The client kernel's RST to a SYN-ACK it has no socket for (the probe came from a raw socket):
  // same flow, seq = the probe's seq + 1. Attributed to its probe on both sides (role "probe" in the
  // bundle) instead of being counted as a packet about no probe.
  void find_follow_ups();
  void annotate_packets();

  bool time_known() const { return corr_.clock.source != "none"; }
  // Join keys: with a run key a TCP sequence number (or ack - 1) maps to its probe index, a
  // bijection that keeps equality and makes keys follow send order, so the sorts in
  // SortedMultimap find their input already in order.
  std::uint32_t join_key(std::uint32_t k) const { return seq_key_ ? seq_key_->index_from_seq(k) : k; }

  const RunManifest& m_;
  L4Kind l4_ = L4Kind::tcp;
  Side c_, s_;
  std::optional<std::uint16_t> client_id_, target_id_, server_id_;
  std::optional<std::uint16_t> dport_;
  std::vector<ProbeWork> work_;  // by probe position (corr_.probes once decide() made them)
  Discriminating disc_;
  std::optional<probe::RunKey> seq_key_;
  // Primary ids and replies are joined in batches (index.hpp); the secondary carriers, needed only
  // when the primary one was rewritten, are sorted on first use and looked up one by one.
  detail::SortedMultimap s_primary_, s_reply_idx_, c_reply_idx_;
  bool c_reply_built_ = false;
  std::vector<detail::SortedMultimap::Range> c_reply_of_;  // per probe: its client replies
  detail::SortedMultimap s_ipid_, s_sport_, s_tsval_;
  bool ipid_built_ = false, sport_built_ = false, tsval_built_ = false;
  std::vector<std::uint32_t> s_cands_;   // server probe candidates, capture order
  std::vector<std::uint32_t> s_claimed_; // per server rec: probe position that claimed it
  Nanos min_ow_ = 0, max_ow_ = 0;        // one-way delays (offset-corrected) seen in pass A
  bool have_ow_ = false;
  Correlation corr_;
  std::vector<std::pair<std::uint32_t, std::int32_t>> c_follow_, s_follow_;  // (packet, probe id)
};

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

std::string drop_note(const char* side, std::uint64_t drops) {
  return std::string(side) + " capture dropped " + std::to_string(drops) + " packet(s)";
}

// The client's reply to each probe and what decide()/diff() need of the packets involved.
void Correlator::settle_client_replies() {
  for (std::size_t k = 0; k < work_.size(); ++k) {
    auto& w = work_[k];
    if (w.c_probe == kNone) continue;
    const Rec& c = c_.recs[w.c_probe];
    bool real = false;
    auto cr = c_.cap->present ? pick_client_reply(k, true, &real) : kNone;
    w.c_reply = cr;
    w.real = real;
    if (cr != kNone) {
      const Rec& r = c_.recs[cr];
      w.c_reply_shape = ReplyShape::of(r);
      w.c_reply_src = r.src;
    }
    if (w.match == Match::matched) {
      const Rec& s = s_.recs[w.s_probe];
      w.forward_hops = static_cast<std::int16_t>(int{c.ttl} - int{s.ttl});
      if (same_fields(c, c_.addrs, s, s_.addrs)) w.same |= kForwardSame;
    }
    if (w.s_reply != kNone) {
      const Rec& sr = s_.recs[w.s_reply];
      w.s_reply_shape = ReplyShape::of(sr);
      if (cr != kNone) {
        const Rec& r = c_.recs[cr];
        w.reverse_hops = static_cast<std::int16_t>(int{sr.ttl} - int{r.ttl});
        if (same_fields(sr, s_.addrs, r, c_.addrs)) w.same |= kReverseSame;
      }
    }
  }
}

void Correlator::release_records() {
  std::vector<Rec>().swap(c_.recs);
  std::vector<Rec>().swap(s_.recs);
  std::vector<std::uint32_t>().swap(s_cands_);
  std::vector<std::uint32_t>().swap(s_claimed_);
}

void Correlator::decide() {
  const bool cp = c_.cap->present, sp = s_.cap->present;
  corr_.probes.resize(work_.size());
  for (std::size_t k = 0; k < work_.size(); ++k) {
    auto& w = work_[k];
    auto& p = corr_.probes[k];
    p.id = w.id;
    if (p.id < m_.probe_variant.size()) p.variant = m_.probe_variant[p.id];
    if (w.unidentified > 0) {
      p.note = "unidentified: " + std::to_string(w.unidentified) +
               " server packet(s) in its time window match no invariant";
    }
    p.client_probe = w.c_probe;
    if (!cp) { p.fate = Fate::unknown; p.note = "client capture absent"; continue; }
    if (w.c_probe == kNone) {
      if (c_.drops) { p.fate = Fate::unknown; p.note = drop_note("client", c_.drops); }
      else p.fate = Fate::not_sent;
      continue;
    }
    p.sport = w.sport;
    p.client_tx_ns = c_.ts(w.c_probe);
    const bool real = w.real;
    const auto cr = w.c_reply;
    const bool have_cr = cr != kNone;
    const bool cr_icmp = have_cr && w.c_reply_shape.role == kRoleIcmpError;
    if (have_cr) {
      p.client_reply = cr;
      p.client_rx_ns = c_.ts(cr);
      p.rtt_us = (p.client_rx_ns - p.client_tx_ns) / 1000;
      p.reply = kind_text(w.c_reply_shape);
    }
    if (w.match == Match::matched) {
      p.server_probe = w.s_probe;
      p.server_rx_ns = s_.ts(w.s_probe);
      if (w.forward_hops >= 0) p.forward_hops = w.forward_hops;  // < 0: the TTL was rewritten (a finding)
      if (w.s_reply != kNone) {
        p.server_reply = w.s_reply;
        p.server_tx_ns = s_.ts(w.s_reply);
      }
    }
    bool icmp_from_router = cr_icmp && !real;
    if (!sp) {
      // The client's view alone says where an ICMP error came from; a direct reply could be the
      // server's or a middlebox's, which only the server capture tells.
      if (icmp_from_router && target_id_ && w.c_reply_src != *target_id_) {
        p.fate = Fate::icmp_error;
        p.hop = *c_.addrs.get(w.c_reply_src);
      } else {
        p.fate = Fate::unknown;
        p.note = "server capture absent";
      }
      continue;
    }
    if (w.match == Match::ambiguous) {
      p.fate = Fate::unknown;
      if (w.conflict_with != kNone) {
        p.note = "ambiguous: the server packet matching it also matches probe " + std::to_string(w.conflict_with);
      } else if (w.candidates > 0) {
        p.note = "ambiguous: " + std::to_string(w.candidates) + " server packets match";
      }
      continue;
    }
    if (w.match == Match::none) {
      if (w.weak > 0 && !time_known() && !icmp_from_router) {
        // One carrier agrees and no clock can say whether the time fits: the probe may have
        // arrived with its other carriers rewritten, so neither "lost" nor "injected" is certain.
        p.fate = Fate::unknown;
        p.note = "unidentified: " + std::to_string(w.weak) +
                 " server packet(s) agree on one invariant only and the clock offset is unknown";
      } else if (cr_icmp) { p.fate = Fate::icmp_error; p.hop = *c_.addrs.get(w.c_reply_src); }
      else if (have_cr) { p.fate = Fate::injected; p.hop = *c_.addrs.get(w.c_reply_src); }
      else if (s_.drops) { p.fate = Fate::unknown; p.note = drop_note("server", s_.drops); }
      else p.fate = Fate::lost_forward;
      continue;
    }
    // Seen at the server.
    if (real) {
      p.fate = Fate::answered;
      if (w.reverse_hops >= 0) p.reverse_hops = w.reverse_hops;
      continue;
    }
    if (have_cr) {
      if (cr_icmp) p.fate = Fate::icmp_error;
      else p.fate = Fate::injected;
      p.hop = *c_.addrs.get(w.c_reply_src);
      continue;
    }
    if (w.s_reply == kNone) {
      if (s_.drops) { p.fate = Fate::unknown; p.note = drop_note("server", s_.drops); }
      else p.fate = Fate::unanswered;
      continue;
    }
    p.reply = kind_text(w.s_reply_shape);
    if (c_.drops) { p.fate = Fate::unknown; p.note = drop_note("client", c_.drops); }
    else p.fate = Fate::reply_lost;
  }
}

void Correlator::diff(std::size_t k) {
  auto& p = corr_.probes[k];
  const auto same = work_[k].same;
  auto full = [&](Direction dir, const Side& from, std::uint32_t i, const Side& to, std::uint32_t j) {
    auto pa = from.cap->packets[i];
    auto pb = to.cap->packets[j];
    auto da = packet::decode(static_cast<std::uint32_t>(from.cap->linktype), pa.data, pa.origlen);
    auto db = packet::decode(static_cast<std::uint32_t>(to.cap->linktype), pb.data, pb.origlen);
    diff_packets(dir, da, db, p.changes);
  };
  if (p.client_probe != kNoPacket && p.server_probe != kNoPacket && !(same & kForwardSame)) {
    full(Direction::forward, c_, p.client_probe, s_, p.server_probe);
  }
  // Seen at the server, never answered: was it corrupted on the way (a rewrite without the checksum
  // fixed)? Then the server's kernel dropped it after the capture, and the path is to blame.
  if (p.fate == Fate::unanswered && p.server_probe != kNoPacket) {
    auto pb = s_.cap->packets[p.server_probe];
    auto db = packet::decode(static_cast<std::uint32_t>(s_.cap->linktype), pb.data, pb.origlen);
    if (auto field = bad_checksum(db)) {
      p.changes.push_back(FieldChange{Direction::forward, *field, "valid", "bad"});
      if (p.note.empty()) p.note = "arrived with a bad " + field->substr(0, field->find('.')) + " checksum: the server's kernel discarded it";
    }
  }
  if (p.fate == Fate::answered && p.server_reply != kNoPacket && p.client_reply != kNoPacket &&
      !(same & kReverseSame)) {
    full(Direction::reverse, s_, p.server_reply, c_, p.client_reply);
  }
}

void Correlator::find_follow_ups() {
  if (l4_ != L4Kind::tcp) return;
  auto flow_key = [](const Rec& r, std::uint32_t seq) {
    return std::uint64_t{r.sport} << 48 | std::uint64_t{r.dport} << 32 | seq;
  };
  auto scan = [&](Side& side, auto probe_of, auto reply_of, std::vector<std::pair<std::uint32_t, std::int32_t>>& out) {
    if (!side.cap->present || side.recs.empty()) return;
    std::vector<bool> owned(side.recs.size(), false);
    std::size_t candidates = 0;
    for (const auto& w : work_) {
      if (const auto i = probe_of(w); i != kNone) owned[i] = true;
      if (const auto i = reply_of(w); i != kNone) owned[i] = true;
    }
    // A bare RST (no ACK, no SYN) not yet owned: only those can be a kernel's answer to a SYN-ACK.
    auto bare_rst = [](const Rec& r) {
      return r.role == kRoleTcpReply && (r.flags & packet::kTcpRst) && !(r.flags & (packet::kTcpAck | packet::kTcpSyn));
    };
    for (std::uint32_t i = 0; i < side.recs.size(); ++i) candidates += !owned[i] && bare_rst(side.recs[i]);
    if (candidates == 0) return;
    auto belongs = [&](const Rec& r, std::uint32_t k) {
      if (k >= work_.size() || probe_of(work_[k]) == kNone) return false;
      const Rec& p = side.recs[probe_of(work_[k])];
      return r.primary == p.primary + 1 && r.sport == p.sport && r.dport == p.dport && r.src == p.src && r.dst == p.dst;
    };
    // With a run key and a count, probe k sits at work_[k] and its seq maps back to k: most RSTs are
    // placed without a table. The rest (a rewritten seq at the server, no key) go through one.
    const bool by_key = seq_key_ && m_.count;
    std::vector<std::uint32_t> rest;
    for (std::uint32_t i = 0; i < side.recs.size(); ++i) {
      const Rec& r = side.recs[i];
      if (owned[i] || !bare_rst(r)) continue;
      if (by_key) {
        const std::uint32_t k = seq_key_->index_from_seq(r.primary - 1);
        if (belongs(r, k)) {
          out.emplace_back(i, static_cast<std::int32_t>(work_[k].id));
          continue;
        }
      }
      rest.push_back(i);
    }
    if (rest.empty()) return;
    std::unordered_map<std::uint64_t, std::uint32_t> by_flow;
    by_flow.reserve(work_.size());
    for (std::uint32_t k = 0; k < work_.size(); ++k) {
      const auto i = probe_of(work_[k]);
      if (i == kNone) continue;
      const Rec& p = side.recs[i];
      // Two probes on one flow with one seq cannot be told apart: leave both unattributed.
      auto [it, fresh] = by_flow.emplace(flow_key(p, p.primary + 1), k);
      if (!fresh) it->second = kNone;
    }
    for (const std::uint32_t i : rest) {
      const Rec& r = side.recs[i];
      auto it = by_flow.find(flow_key(r, r.primary));
      if (it == by_flow.end() || it->second == kNone || !belongs(r, it->second)) continue;
      out.emplace_back(i, static_cast<std::int32_t>(work_[it->second].id));
    }
  };
  scan(c_, [](const ProbeWork& w) { return w.c_probe; }, [](const ProbeWork& w) { return w.c_reply; }, c_follow_);
  scan(s_, [](const ProbeWork& w) { return w.s_probe; }, [](const ProbeWork& w) { return w.s_reply; }, s_follow_);
}

void Correlator::annotate_packets() {
  corr_.client_packet_probe.assign(c_.cap->present ? c_.cap->packets.size() : 0, -1);
  corr_.server_packet_probe.assign(s_.cap->present ? s_.cap->packets.size() : 0, -1);
  for (const auto& p : corr_.probes) {
    auto id = static_cast<std::int32_t>(p.id);
    if (p.client_probe != kNoPacket) corr_.client_packet_probe[p.client_probe] = id;
    if (p.client_reply != kNoPacket) corr_.client_packet_probe[p.client_reply] = id;
    if (p.server_probe != kNoPacket) corr_.server_packet_probe[p.server_probe] = id;
    if (p.server_reply != kNoPacket) corr_.server_packet_probe[p.server_reply] = id;
  }
  for (auto [i, id] : c_follow_) corr_.client_packet_probe[i] = id;
  for (auto [i, id] : s_follow_) corr_.server_packet_probe[i] = id;
  corr_.unmatched_client = static_cast<std::uint64_t>(
      std::count(corr_.client_packet_probe.begin(), corr_.client_packet_probe.end(), -1));
  corr_.unmatched_server = static_cast<std::uint64_t>(
      std::count(corr_.server_packet_probe.begin(), corr_.server_packet_probe.end(), -1));
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

}  // namespace

Result<Correlation> correlate(const CaptureSide& client, const CaptureSide& server, const RunManifest& m) {
  Correlator c(client, server, m);
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
