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
#include "controller/correlate/phases.hpp"

namespace tandem::correlate {
namespace detail {

Status Correlator::validate() {
  if (m_.l4 == "tcp") l4_ = L4Kind::tcp;
  else if (m_.l4 == "udp") l4_ = L4Kind::udp;
  else if (m_.l4 == "icmp") l4_ = L4Kind::icmp;
  else if (m_.l4.empty()) l4_ = L4Kind::tcp;  // inferred from the client capture (find_endpoints)
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

void Correlator::find_client_probes() {
  std::uint64_t count_limit = m_.count ? *m_.count : (m_.run_key ? (1u << 24) : ~std::uint64_t{0});
  std::vector<std::pair<std::uint32_t, std::uint32_t>> found;  // (id, client rec)
  if (c_.cap->present && client_id_ && target_id_) {
    std::optional<probe::RunKey> key;
    if (m_.run_key) key = probe::RunKey{*m_.run_key};
    std::uint32_t ordinal = 0;
    found.reserve(c_shaped_.size());
    for (const std::uint32_t i : c_shaped_) {
      const Rec& r = c_.recs[i];
      if (r.src != *client_id_ || r.dst != *target_id_) continue;
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
    // One write per probe (resize() would write each twice).
    work_.reserve(found.size());
    for (const auto& [id, rec] : found) {
      ProbeWork w;
      w.id = id;
      w.c_probe = rec;
      work_.push_back(w);
    }
  }
  std::vector<std::pair<std::uint32_t, std::uint32_t>>().swap(found);
  std::vector<std::uint32_t>().swap(c_shaped_);
  VaryTracker<std::uint32_t> v_ipid, v_ts;
  VaryTracker<std::uint16_t> v_sport;
  std::size_t n = 0;
  c_primary_keys_ = KeyFilter(work_.size());
  c_reply_keys_ = KeyFilter(work_.size());
  q_primary_.reserve(work_.size());
  q_reply_.reserve(work_.size());
  for (std::uint32_t k = 0; k < work_.size(); ++k) {
    prefetch_ahead(k, kAheadCProbe);
    auto& w = work_[k];
    auto ci = w.c_probe;
    if (ci == kNone) continue;
    const Rec& r = c_.recs[ci];
    w.sport = l4_ == L4Kind::icmp ? 0 : r.sport;
    ++n;
    v_ipid.add(r.ipid);
    v_sport.add(r.sport);
    if (r.bits & kHasTs) v_ts.add(r.tsval);
    if (r.bits & kHasPrimary) {
      c_primary_keys_.add(join_key(r.primary));
      q_primary_.push_back(std::uint64_t{join_key(r.primary)} << 32 | k);
    }
    const std::uint32_t rk = join_key(probe_reply_key(r, l4_));
    c_reply_keys_.add(rk);
    q_reply_.push_back(std::uint64_t{rk} << 32 | k);
  }
  // TCP with every probe carrying its sequence number: a probe's reply key is its primary value, so
  // both query lists are the same and pass A reuses the one index_client_replies() sorted.
  if (l4_ == L4Kind::tcp && q_primary_.size() == q_reply_.size()) {
    std::vector<std::uint64_t>().swap(q_primary_);
    q_shared_ = true;
  }
  // A lone probe is told apart by anything; otherwise an invariant must vary to identify.
  disc_.ipid = v_ipid.varies || (n == 1 && v_ipid.first != 0);
  disc_.sport = l4_ != L4Kind::icmp && (v_sport.varies || n == 1);
  disc_.tsval = v_ts.varies || (n == 1 && v_ts.seen);
}

void Correlator::build_server_indexes() {
  if (!s_.cap->present || !server_id_) return;
  auto sid = *server_id_;
  // One pass over the server's packets: the probe-shaped ones it received (candidates), and the
  // replies it sent, keyed as answers() checks them per probe (filtered below).
  std::vector<std::uint64_t> replies;
  replies.reserve(s_.role_n[kRoleTcpReply] + s_.role_n[kRoleDatagram] + s_.role_n[kRoleEchoReply] +
                  s_.role_n[kRoleIcmpError]);
  for (std::uint32_t i = 0; i < s_.recs.size(); ++i) {
    const Rec& r = s_.recs[i];
    if (r.src == sid) {
      server_sent_ += r.role != kRoleNone;
      if (auto k = reply_key(r, l4_)) replies.push_back(std::uint64_t{join_key(*k)} << 32 | i);
    } else if (r.dst == sid && is_probe_shape(r, l4_)) {
      s_cands_.push_back(i);
    }
  }
  // Captures are written in time order; a file merged by hand may not be, and pass B's time
  // windows need it.
  if (!std::is_sorted(s_cands_.begin(), s_cands_.end(), [&](auto a, auto b) { return s_.ts(a) < s_.ts(b); })) {
    std::stable_sort(s_cands_.begin(), s_cands_.end(), [&](auto a, auto b) { return s_.ts(a) < s_.ts(b); });
  }
  // Pass A asks s_primary_ only for the client probes' primary values, find_server_replies()
  // s_reply_idx_ only for what a server candidate's replies carry: entries no such key can find
  // (other flows' SYNs, every later packet of a connection) are left out of both.
  KeyFilter cand_keys(s_cands_.size());
  s_primary_.reserve(s_cands_.size());
  for (auto i : s_cands_) {
    const Rec& r = s_.recs[i];
    cand_keys.add(join_key(probe_reply_key(r, l4_)));
    if ((r.bits & kHasPrimary) && c_primary_keys_.maybe(join_key(r.primary))) s_primary_.add(join_key(r.primary), i);
  }
  s_primary_.seal(&sort_scratch_);
  s_claimed_.assign(s_.recs.size(), kNone);
  std::erase_if(replies, [&](std::uint64_t e) { return !cand_keys.maybe(static_cast<std::uint32_t>(e >> 32)); });
  s_reply_idx_.assign(std::move(replies), &sort_scratch_);
}

// Capture problems that change no fate but limit what was compared.
void Correlator::add_capture_warnings() {
  const char* names[2] = {"client", "server"};
  for (int i = 0; i < 2; ++i) {
    if (!snap_cut_[i]) continue;
    add_problem(CaptureProblem{names[i], "snaplen",
                               std::string("The ") + names[i] + "'s capture cut packets at " + std::to_string(snap_len_[i]) +
                                   " bytes: TCP options past that were not compared (unknown, not removed).",
                               "Capture whole packets: tcpdump -s 0.", 0});
  }
  const Side* sides[2] = {&c_, &s_};
  for (int i = 0; i < 2; ++i) {
    if (sides[i]->duplicates == 0) continue;
    add_problem(CaptureProblem{names[i], "duplicates",
                               std::to_string(sides[i]->duplicates) + " packet(s) of the " + names[i] +
                                   "'s capture were captured twice within 1 ms (tcpdump -i any on a bridge, VLAN, bond "
                                   "or container host): each was counted once.",
                               "Capture on the one interface that faces the path: tcpdump -i <interface>.", 0});
  }
  corr_.client_duplicates = c_.duplicates;
  corr_.server_duplicates = s_.duplicates;
}

Result<Correlation> Correlator::run() {
  PhaseClock phase;  // TANDEM_CORRELATE_PHASES=1: CPU per pass on stderr (bench/correlate)
  if (auto st = validate(); !st) return st.error();
  std::optional<std::uint32_t> key = m_.run_key;
  decode_sides(c_, s_, key);
  phase("decode");
  find_endpoints();
  if (l4_ == L4Kind::tcp && m_.run_key) seq_key_ = probe::RunKey{*m_.run_key};
  find_client_probes();
  phase("endpoints+client_probes");
  build_server_indexes();
  restrict_sources();  // the client's own address, when the server sees it
  phase("server_indexes");
  index_client_replies();
  phase("index_client_replies");
  if (m_.clock) corr_.clock = *m_.clock;
  else corr_.clock = ClockEstimate{0, 0, "none"};
  pass_a();
  phase("pass_a");
  restrict_sources();  // behind a NAT: the addresses pass A proved it maps the client to
  phase("restrict_sources");
  find_copy_windows();
  phase("copy_windows");
  find_server_replies();
  phase("server_replies");
  estimate_clock();
  phase("estimate_clock");
  const std::size_t late = pass_b();
  phase("pass_b");
  // The sighting indexes are done with: give their memory back before the output grows.
  for (auto* idx : {&s_ipid_, &s_sport_, &s_tsval_}) idx->clear();
  // Sightings pass B matched change the server-side copy windows and have replies to find; without
  // any, both would come out as they are.
  if (late > 0) {
    find_copy_windows();
    find_server_replies();
  }
  s_reply_idx_.clear();
  phase("copy_windows+replies 2");
  settle_client_replies();
  phase("settle_client_replies");
  check_evidence();
  c_reply_of_.clear();
  find_follow_ups();
  phase("evidence+follow_ups");
  // From here on the probes' work state says all: the output replaces the per-packet records.
  release_records();
  decide();
  phase("decide");
  for (std::size_t k = 0; k < corr_.probes.size(); ++k) {
    if (work_[k].match == Match::ambiguous) ++corr_.ambiguous;
    diff(k);
  }
  add_capture_warnings();
  std::vector<ProbeWork>().swap(work_);
  corr_.findings = aggregate_findings(corr_.probes);
  phase("diff+findings");
  annotate_packets();
  phase("annotate_packets");
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
