// Internal to controller/correlate: the Correlator behind correlate() (docs/correlation.md) and what
// its passes share — the per-probe work state, the reply shapes, the join helpers. The matching
// passes are in correlate.cpp, the fates and what follows them (diffs, the client's RSTs, per-packet
// ids) in outcome.cpp. Not part of the library's interface.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <ranges>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "common/packet/build.hpp"
#include "common/packet/decode.hpp"
#include "common/probe/identity.hpp"
#include "controller/correlate/correlate.hpp"
#include "controller/correlate/index.hpp"
#include "controller/correlate/records.hpp"

namespace tandem::correlate::detail {

inline constexpr std::uint32_t kNone = 0xffffffffu;
// The slack added to time windows: capture timestamping jitter on either end.
inline constexpr Nanos kTimeSlackNs = 1'000'000;
// At most this many server packets sharing one carrier value are looked at: such a value identifies
// nothing.
inline constexpr std::size_t kMaxChainWalk = 256;

// How many probes ahead a per-probe pass prefetches the packets it will read (Side::prefetch).
inline constexpr std::size_t kPrefetchAhead = 16;

enum class L4Kind { tcp, udp, icmp };

inline bool is_probe_shape(const Rec& r, L4Kind l4) {
  switch (l4) {
    case L4Kind::tcp: return r.role == kRoleSyn;
    case L4Kind::udp: return r.role == kRoleDatagram;
    case L4Kind::icmp: return r.role == kRoleEchoReq;
  }
  return false;
}

// The key a probe is looked up by in reply indexes: what its replies and ICMP quotes carry.
inline std::uint32_t probe_reply_key(const Rec& p, L4Kind l4) {
  switch (l4) {
    case L4Kind::tcp: return p.primary;
    case L4Kind::udp: return std::uint32_t{p.dport} << 16 | p.sport;
    case L4Kind::icmp: return p.primary;
  }
  return 0;
}

// The key a reply-shaped packet is indexed under (see probe_reply_key); nullopt if not a reply.
inline std::optional<std::uint32_t> reply_key(const Rec& r, L4Kind l4) {
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
inline bool answers(const Rec& p, const Rec& r, L4Kind l4) {
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
inline std::uint32_t kind_code(const Rec& r) {
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

inline std::string kind_text(ReplyShape r) {
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
inline bool same_fields(const Rec& a, const AddrTable& ta, const Rec& b, const AddrTable& tb) {
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
  bool real = false;       // c_reply is the server's first reply
  std::uint8_t same = 0;   // SameBits: pairs whose diff has nothing to report
  // Copies (DESIGN.md §8): a probe's replies are looked for until the next copy of the same probe
  // (same flow and sequence number) on that side, or the retransmission window.
  Nanos c_end = 0, s_end = 0;
  std::uint16_t s_replies = 0;   // replies the server sent to this sighting (first + retransmissions)
  std::uint16_t c_received = 0;  // of those, how many reached the client
  std::uint32_t c_retx = kNone;  // the first retransmitted reply that reached the client
  bool c_unattributed = false;   // a copy of a server reply reached it that no reply could be tied to
  std::int16_t problem = -1;     // index into Correlation::capture_problems: why the fate is unknown
};

// A server packet that two equally good probes claim: nobody owns it until time decides (pass B).
inline constexpr std::uint32_t kContested = 0xfffffffeu;

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
  // Discriminating invariants both packets carry with different values: they count against a match
  // (another copy of the same SYN has the same ports and sequence number, not the same IP ID).
  int disagree(const Rec& c, const Rec& s) const;
  void restrict_sources();
  void build_server_indexes();
  void pass_a();
  // Returns how many probes it matched (their windows and replies are then looked for again).
  std::size_t pass_b();
  void find_copy_windows();
  void find_server_replies();
  void index_client_replies();
  // Client replies to probe i, best first: the one matching the server's reply if any.
  // Sets *real when it is the server's first reply; counts into *received the client replies that
  // are copies of any of the server's replies (nullptr: not counted), *retx the first of those
  // that is a retransmission.
  std::uint32_t pick_client_reply(std::size_t i, bool use_time, bool* real, std::uint16_t* received = nullptr,
                                  std::uint32_t* retx = nullptr) const;
  bool reverse_agrees(std::uint32_t s_reply, std::uint32_t c_reply, bool use_time) const;
  // Which of the server's replies to probe k the client reply cr is a copy of: 0 = the first, j =
  // the j-th retransmission, -1 = none (another sender's).
  int which_server_reply(std::size_t k, std::uint32_t cr, bool use_time) const;
  // The client's reply to each probe, flow by flow (all copies of one probe): each copy's own
  // pick_client_reply(), then the copies of the server's replies at the client — each client reply
  // tied to the earliest compatible server reply not yet tied, in order (a path keeps the order of
  // one flow's packets) — which override the picks (real / c_reply / c_received / c_retx /
  // c_unattributed), then finish_client_reply().
  void settle_client_replies();
  void finish_client_reply(std::size_t k);
  // The evidence rules of DESIGN.md §8: what each capture can prove (docs/correlation.md).
  void check_evidence();
  void add_capture_warnings();
  void mark_outside_span(Nanos first, Nanos last);
  std::int16_t add_problem(CaptureProblem p);
  void estimate_clock();
  void release_records();
  void decide();
  void diff(std::size_t i);
  // The client kernel's RST to a SYN-ACK it has no socket for (the probe came from a raw socket):
  // same flow, seq = the probe's seq + 1. Attributed to its probe on both sides (role "probe" in the
  // bundle) instead of being counted as a packet about no probe.
  void find_follow_ups();
  void annotate_packets();

  // Per-probe passes reach packets through the probes' indexes, which the hardware prefetcher
  // cannot follow: each asks, kPrefetchAhead probes ahead, for the packets it will read there.
  enum Ahead : unsigned { kAheadCProbe = 1, kAheadSProbe = 2, kAheadSReply = 4, kAheadCReply = 8, kAheadCReplies = 16 };
  void prefetch_ahead(std::size_t k, unsigned what) const {
    if (k + kPrefetchAhead >= work_.size()) return;
    const ProbeWork& a = work_[k + kPrefetchAhead];
    if (what & kAheadCProbe) c_.prefetch(a.c_probe);
    if (what & kAheadSProbe) s_.prefetch(a.s_probe);
    if (what & kAheadSReply) s_.prefetch(a.s_reply);
    if (what & kAheadCReply) c_.prefetch(a.c_reply);
    if (what & kAheadCReplies) {
      for (const auto r : c_reply_of_.of(k + kPrefetchAhead)) c_.prefetch(r);
    }
  }

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
  std::vector<ProbeWork> work_;
  std::vector<std::uint32_t> c_shaped_;  // the client's probe-shaped records (find_endpoints -> find_client_probes)  // by probe position (corr_.probes once decide() made them)
  Discriminating disc_;
  std::optional<probe::RunKey> seq_key_;
  // Primary ids and replies are joined in batches (index.hpp); the secondary carriers, needed only
  // when the primary one was rewritten, are sorted on first use and looked up one by one.
  detail::SortedMultimap s_primary_, s_reply_idx_;
  // The radix sorts' second buffer, shared by every sort of the run (freed with the records).
  std::vector<std::uint64_t> sort_scratch_;
  // Taken by find_client_probes() while it reads each probe's record, so that no later pass reads
  // them all again: the keys pass A (primary) and the client's reply index (reply key) look up,
  // as filters of what to index and as batched queries (key << 32 | position; consumed).
  KeyFilter c_primary_keys_, c_reply_keys_;
  std::vector<std::uint64_t> q_primary_, q_reply_;
  bool q_shared_ = false;  // TCP: q_primary_ would equal q_reply_; index_client_replies() hands it over
  bool c_reply_built_ = false;
  detail::SortedMultimap::Postings c_reply_of_;  // per probe position: its client replies
  detail::SortedMultimap s_ipid_, s_sport_, s_tsval_;
  bool ipid_built_ = false, sport_built_ = false, tsval_built_ = false;
  std::vector<std::uint32_t> s_cands_;   // server probe candidates, capture order
  std::vector<std::uint32_t> s_claimed_; // per server rec: probe position that claimed it
  Nanos min_ow_ = 0, max_ow_ = 0;        // one-way delays (offset-corrected) seen in pass A
  bool have_ow_ = false;
  Correlation corr_;
  std::vector<std::pair<std::uint32_t, std::int32_t>> c_follow_, s_follow_;  // (packet, probe id)
  // Replies after the first, per probe position: (position, server packet), sorted; probe k's are
  // s_more_replies_[more_off_[k], more_off_[k + 1]).
  std::vector<std::pair<std::uint32_t, std::uint32_t>> s_more_replies_;
  std::vector<std::uint32_t> more_off_;
  // The server packets of probe k's replies after the first, in time order.
  auto more_replies(std::size_t k) const {
    const std::size_t b = k + 1 < more_off_.size() ? more_off_[k] : 0, e = k + 1 < more_off_.size() ? more_off_[k + 1] : 0;
    return std::span(s_more_replies_).subspan(b, e - b) | std::views::values;
  }
  std::vector<bool> s_src_ok_;  // per server address id: may send the client's probes (NAT proven)
  // A copy of a probe on one side: (flow key, time, position), sorted to group a flow's copies.
  struct Copy {
    std::uint64_t key;
    Nanos t;
    std::uint32_t k;
  };
  // The client's copies of one probe as chains in time order (empty with a run key): per position
  // the next copy of the same flow, and whether it is its flow's first copy.
  std::vector<std::uint32_t> c_next_copy_;
  std::vector<bool> c_group_head_;
  bool c_windows_done_ = false;  // find_copy_windows() has set c_end and the chains (client side fixed)
  // Packets the server sent / the client received (duplicates excluded), counted on the way by
  // build_server_indexes() and index_client_replies() for check_evidence().
  std::uint64_t server_sent_ = 0, client_received_ = 0;
  bool snap_cut_[2] = {false, false};  // client, server: a compared packet lacked bytes (snaplen)
  std::uint32_t snap_len_[2] = {0, 0};
};

}  // namespace tandem::correlate::detail
