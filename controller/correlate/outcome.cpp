// Fates and what follows them (docs/correlation.md steps 8-9): the client's reply to each probe, the
// fate decision table, field diffs of matched pairs (and the checksum of what the server never
// answered), the client kernel's RSTs, and the per-packet probe ids of the bundle.
#include <algorithm>
#include <string>
#include <unordered_map>

#include "common/packet/build.hpp"
#include "common/packet/decode.hpp"
#include "controller/correlate/correlator.hpp"
#include "controller/correlate/field_diff.hpp"

namespace tandem::correlate::detail {

std::string drop_note(const char* side, std::uint64_t drops) {
  return std::string(side) + " capture dropped " + std::to_string(drops) + " packet(s)";
}

// What decide()/diff() need of the packets of probe k once its client reply is settled.
void Correlator::finish_client_reply(std::size_t k) {
  auto& w = work_[k];
  const Rec& c = c_.recs[w.c_probe];
  const auto cr = w.c_reply;
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

void Correlator::release_records() {
  std::vector<Rec>().swap(c_.recs);
  std::vector<Rec>().swap(s_.recs);
  std::vector<std::uint32_t>().swap(s_cands_);
  std::vector<std::uint32_t>().swap(s_claimed_);
  std::vector<std::uint64_t>().swap(sort_scratch_);
}

void Correlator::decide() {
  const bool cp = c_.cap->present, sp = s_.cap->present;
  // Each record constructed where it is filled, while its memory is in the cache (resize() would
  // first write all of them, then this loop again).
  corr_.probes.reserve(work_.size());
  for (std::size_t k = 0; k < work_.size(); ++k) {
    prefetch_ahead(k, kAheadCProbe | kAheadSProbe | kAheadSReply | kAheadCReply);
    auto& w = work_[k];
    auto& p = corr_.probes.emplace_back();
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
      else if (!c_.cap->stats.warnings.empty()) {
        // A file that says it is incomplete (cut mid-packet) cannot prove a probe was never sent.
        p.fate = Fate::unknown;
        p.note = "client capture incomplete: " + c_.cap->stats.warnings.front();
      } else {
        p.fate = Fate::not_sent;
      }
      continue;
    }
    p.sport = w.sport;
    p.client_tx_ns = c_.ts(w.c_probe);
    p.replies_sent = w.s_replies;
    p.replies_received = w.c_received;
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
    if (w.problem >= 0) {
      // A capture cannot prove this probe's fate (check_evidence): say which, never guess.
      const auto& prob = corr_.capture_problems[static_cast<std::size_t>(w.problem)];
      p.fate = Fate::unknown;
      p.note = prob.side + " capture: " + prob.code;
      continue;
    }
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
    if (w.c_received > 0 && w.s_reply != kNone) {
      // The server's first reply never arrived, a retransmission of it did (DESIGN.md §8).
      p.fate = Fate::reply_lost;
      p.reply = kind_text(w.s_reply_shape);
      p.rtt_us.reset();
      if (w.c_retx != kNone) {
        p.client_reply = w.c_retx;
        p.client_rx_ns = c_.ts(w.c_retx);
        p.note = "the first reply was lost; a retransmission arrived after " +
                 std::to_string((p.client_rx_ns - p.client_tx_ns) / 1'000'000) + " ms";
      }
      continue;
    }
    if (w.c_unattributed) {
      // A copy of the server's reply arrived, but which of its copies cannot be told: neither
      // answered nor lost is proven.
      p.fate = Fate::unknown;
      p.reply = kind_text(w.s_reply_shape);
      p.rtt_us.reset();
      p.note = "a copy of the server's reply arrived that cannot be told from its retransmissions";
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
  auto decode_at = [](const Side& side, std::uint32_t i) {
    auto pk = side.cap->packets[i];
    return packet::decode(static_cast<std::uint32_t>(side.cap->linktype), pk.data, pk.origlen);
  };
  auto note_cut = [&](int cut, const Side& from, std::uint32_t i, const Side& to, std::uint32_t j) {
    // Which capture lacked the bytes: remember it and its cut length for the report's warning.
    if (cut & kSentCut) {
      const int s = &from == &c_ ? 0 : 1;
      snap_cut_[s] = true;
      snap_len_[s] = static_cast<std::uint32_t>(from.cap->packets[i].data.size());
    }
    if (cut & kReceivedCut) {
      const int s = &to == &c_ ? 0 : 1;
      snap_cut_[s] = true;
      snap_len_[s] = static_cast<std::uint32_t>(to.cap->packets[j].data.size());
    }
  };
  auto full = [&](Direction dir, const Side& from, std::uint32_t i, const Side& to, std::uint32_t j) {
    auto da = decode_at(from, i);
    auto db = decode_at(to, j);
    note_cut(diff_packets(dir, da, db, p.changes), from, i, to, j);
  };
  if (p.client_probe != kNoPacket && p.server_probe != kNoPacket && !(same & kForwardSame)) {
    full(Direction::forward, c_, p.client_probe, s_, p.server_probe);
  }
  // Seen at the server, never answered: was it corrupted on the way (a rewrite without the checksum
  // fixed)? Then the server's kernel dropped it after the capture, and the path is to blame — but
  // only if the client's copy was right: the same offload-partial checksum at both ends (a capture
  // on the sending host sees the checksum before the NIC fills it in) is no change in transit.
  if (p.fate == Fate::unanswered && p.server_probe != kNoPacket && p.client_probe != kNoPacket) {
    auto db = decode_at(s_, p.server_probe);
    if (auto field = bad_checksum(db)) {
      auto da = decode_at(c_, p.client_probe);
      const bool client_ok = da.l3 == packet::L3::ip && !da.snap_truncated && !bad_checksum(da);
      if (client_ok) {
        p.changes.push_back(FieldChange{Direction::forward, *field, "valid", "bad"});
        if (p.note.empty()) p.note = "arrived with a bad " + field->substr(0, field->find('.')) + " checksum: the server's kernel discarded it";
      }
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
    // Without a bare RST in the capture there is nothing to attribute (counted while decoding).
    if (!side.cap->present || side.recs.empty() || side.bare_rsts == 0) return;
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
  // A second sighting of a packet belongs where its first does.
  auto copies = [](const Side& side, std::vector<std::int32_t>& ids) {
    for (std::size_t i = 0; i < side.dup_of.size() && i < ids.size(); ++i) {
      if (side.dup_of[i] != kNone) ids[i] = ids[side.dup_of[i]];
    }
  };
  copies(c_, corr_.client_packet_probe);
  copies(s_, corr_.server_packet_probe);
  corr_.unmatched_client = static_cast<std::uint64_t>(
      std::count(corr_.client_packet_probe.begin(), corr_.client_packet_probe.end(), -1));
  corr_.unmatched_server = static_cast<std::uint64_t>(
      std::count(corr_.server_packet_probe.begin(), corr_.server_packet_probe.end(), -1));
}

}  // namespace tandem::correlate::detail
