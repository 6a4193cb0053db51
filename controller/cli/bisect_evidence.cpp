#include "controller/cli/bisect_evidence.hpp"

#include <algorithm>
#include <cstdlib>


namespace tandem::cli {
namespace {

std::uint32_t shifted(std::uint32_t index, std::uint32_t offset) {
  return index == correlate::kNoPacket ? index : index + offset;
}

// Appends `from`'s packets to `to` (same link type); returns the index the first one got.
Result<std::uint32_t> append_side(correlate::CaptureSide& to, const correlate::CaptureSide& from, bool first) {
  const auto offset = static_cast<std::uint32_t>(to.packets.size());
  if (!from.present) return offset;
  if (!first && to.present && to.linktype != from.linktype) {
    return make_error(Errc::peer, "bisect", "an agent's capture link type changed between rounds");
  }
  if (!to.present) {
    to.present = true;
    to.linktype = from.linktype;
  }
  for (std::size_t i = 0; i < from.packets.size(); ++i) to.packets.append(from.packets[i]);
  return offset;
}

void add_stats(pcapio::CaptureStats& to, const pcapio::CaptureStats& from, bool first) {
  to.received += from.received;
  to.dropped += from.dropped;
  to.if_dropped += from.if_dropped;
  // Known only if known for every round.
  to.available = first ? from.available : to.available && from.available;
  if (!from.available && to.unavailable_reason.empty()) to.unavailable_reason = from.unavailable_reason;
}

}  // namespace

Status BisectEvidence::add_round(const correlate::Correlation& round, std::span<const std::size_t> round_variants,
                                 const correlate::CaptureSide& client, const correlate::CaptureSide& server) {
  const bool first = rounds_ == 0;
  auto client_off = append_side(client_, client, first);
  if (!client_off) return client_off.error();
  std::uint32_t server_off = static_cast<std::uint32_t>(server_.packets.size());
  if (server.present && round.server_present) {
    auto off = append_side(server_, server, first && !server_.present);
    if (!off) return off.error();
    server_off = *off;
  }

  std::uint32_t max_id = 0;
  for (const auto& p0 : round.probes) {
    correlate::ProbeRecord p = p0;
    p.id = next_id_ + p0.id;
    max_id = std::max(max_id, p0.id + 1);
    p.variant = p0.variant < round_variants.size() ? static_cast<std::uint16_t>(round_variants[p0.variant]) : p0.variant;
    p.client_probe = shifted(p.client_probe, *client_off);
    p.client_reply = shifted(p.client_reply, *client_off);
    p.server_probe = shifted(p.server_probe, server_off);
    p.server_reply = shifted(p.server_reply, server_off);
    corr_.probes.push_back(std::move(p));
  }
  for (std::int32_t owner : round.client_packet_probe) {
    corr_.client_packet_probe.push_back(owner < 0 ? owner : owner + static_cast<std::int32_t>(next_id_));
  }
  for (std::int32_t owner : round.server_packet_probe) {
    corr_.server_packet_probe.push_back(owner < 0 ? owner : owner + static_cast<std::int32_t>(next_id_));
  }
  // The per-packet owner lists must cover every packet appended (a round with no server capture
  // adds none there).
  corr_.client_packet_probe.resize(client_.packets.size(), -1);
  corr_.server_packet_probe.resize(server_.packets.size(), -1);
  next_id_ += max_id;

  // Findings: the same change seen in several rounds is one finding over all their probes.
  for (const auto& f : round.findings) {
    auto same = std::find_if(corr_.findings.begin(), corr_.findings.end(), [&](const correlate::Finding& g) {
      return g.direction == f.direction && g.field == f.field && g.sent == f.sent && g.received == f.received;
    });
    if (same == corr_.findings.end()) {
      corr_.findings.push_back(f);
    } else {
      same->probes += f.probes;
      same->distinct = std::max(same->distinct, f.distinct);
    }
  }

  if (first) {
    corr_.clock = round.clock;
  } else if (round.clock.source == corr_.clock.source && !round.clock.source.empty()) {
    const Nanos moved = std::llabs(round.clock.offset_ns - corr_.clock.offset_ns);
    corr_.clock.error_ns = std::max(corr_.clock.error_ns, moved + round.clock.error_ns);
  }
  add_stats(corr_.client_stats, round.client_stats, first);
  add_stats(corr_.server_stats, round.server_stats, first);
  client_.stats = corr_.client_stats;
  server_.stats = corr_.server_stats;
  corr_.client_present = corr_.client_present || round.client_present;
  corr_.server_present = corr_.server_present || round.server_present;
  corr_.client_packets += round.client_packets;
  corr_.server_packets += round.server_packets;
  corr_.unmatched_client += round.unmatched_client;
  corr_.unmatched_server += round.unmatched_server;
  corr_.ambiguous += round.ambiguous;
  corr_.client_duplicates += round.client_duplicates;
  corr_.server_duplicates += round.server_duplicates;
  // Capture problems: one entry per (side, code) over all rounds, their probes added up.
  for (const auto& pr : round.capture_problems) {
    auto same = std::find_if(corr_.capture_problems.begin(), corr_.capture_problems.end(),
                             [&](const correlate::CaptureProblem& q) { return q.side == pr.side && q.code == pr.code; });
    if (same == corr_.capture_problems.end()) corr_.capture_problems.push_back(pr);
    else same->probes += pr.probes;
  }
  if (first) {
    corr_.client = round.client;
    corr_.target = round.target;
    corr_.server = round.server;
    corr_.dport = round.dport;
    corr_.l4 = round.l4;
  }
  ++rounds_;
  return ok_status();
}

}  // namespace tandem::cli
