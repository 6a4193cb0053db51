// What each capture can prove (DESIGN.md §8 "No evidence, no blame"; docs/correlation.md
// "Evidence checks"). A capture taken by hand may come from the wrong interface, hold one
// direction only, or cover another time: the probes whose fate would rest on what it cannot show
// become `unknown` with the capture problem named, never `injected`, `answered`, `unanswered` or
// `reply_lost` by default. Captures a tandem agent took for the run (CaptureSide::vouched) covered
// the run's flows for its whole duration, so an empty one means that nothing arrived.
#include <algorithm>
#include <cmath>

#include "controller/correlate/correlator.hpp"

namespace tandem::correlate::detail {
namespace {

std::string addr_text(const AddrTable& t, std::optional<std::uint16_t> id, const char* fallback) {
  if (id) {
    if (const IpAddr* a = t.get(*id)) return a->to_string();
  }
  return fallback;
}

// Slack on top of the turnaround / round trip seen before a missing reply counts as overdue.
constexpr Nanos kDueSlackNs = 10'000'000;


}  // namespace

std::int16_t Correlator::add_problem(CaptureProblem p) {
  for (std::size_t i = 0; i < corr_.capture_problems.size(); ++i) {
    if (corr_.capture_problems[i].code == p.code && corr_.capture_problems[i].side == p.side) {
      return static_cast<std::int16_t>(i);
    }
  }
  corr_.capture_problems.push_back(std::move(p));
  return static_cast<std::int16_t>(corr_.capture_problems.size() - 1);
}

void Correlator::check_evidence() {
  if (!c_.cap->present || !s_.cap->present) return;  // capture_missing says it already
  const std::string client = addr_text(c_.addrs, client_id_, "the client");
  const std::string server = addr_text(s_.addrs, server_id_, corr_.target ? corr_.target->to_string().c_str() : "the server");
  const std::string port = dport_ ? " and port " + std::to_string(*dport_) : std::string();
  const std::string filter = "'host " + client + port + "'";

  auto router_icmp = [&](const ProbeWork& w) {
    return w.c_reply != kNone && w.c_reply_shape.role == kRoleIcmpError && !w.real && target_id_ &&
           w.c_reply_src != *target_id_;
  };
  auto got_reply = [&](const ProbeWork& w) { return (w.c_reply != kNone && !router_icmp(w)) || w.c_received > 0; };
  std::uint64_t sightings = 0, replied = 0;
  for (const auto& w : work_) {
    if (w.c_probe == kNone) continue;
    sightings += w.match == Match::matched;
    replied += got_reply(w);
  }
  auto mark = [&](ProbeWork& w, std::int16_t problem) {
    if (w.problem < 0) {
      w.problem = problem;
      ++corr_.capture_problems[static_cast<std::size_t>(problem)].probes;
    }
  };

  if (!s_.cap->vouched) {
    const std::uint64_t s_sent = server_sent_;
    if (sightings == 0 && replied > 0) {
      // Replies came back, so probes reached something that answers; a server capture holding none
      // of them was not taken where they arrive.
      const bool empty = s_.recs.empty();
      auto id = add_problem(CaptureProblem{
          "server", empty ? "no_server_packets" : "no_probes_seen",
          empty ? "The server's capture is empty, yet " + std::to_string(replied) +
                      " probe(s) got a reply at the client: it was not taken where the probes arrive."
                : "The server's capture holds " + std::to_string(s_.recs.size()) +
                      " packet(s) but none of the client's probes, yet " + std::to_string(replied) +
                      " probe(s) got a reply at the client: it comes from another interface, host or time.",
          "Capture on the server's interface that faces the client, during the same minutes as the client's "
          "capture: tcpdump -i <interface> -w server.pcap " + filter + ".",
          0});
      for (auto& w : work_) {
        if (w.c_probe != kNone && !router_icmp(w)) mark(w, id);
      }
    } else if (s_sent == 0 && std::any_of(work_.begin(), work_.end(), [&](const ProbeWork& w) {
                 return w.c_probe != kNone && w.match == Match::matched && got_reply(w);
               })) {
      // Inbound only (tcpdump -Q in, a 'src' filter): probes the server saw were answered at the
      // client, yet the capture holds nothing the server sent. Its replies cannot be seen, so
      // neither an answer nor its absence nor a reply in the server's name can be told. (A server
      // that sends nothing and whose probes get no reply looks the same as a truly silent one:
      // unanswered stays.)
      auto id = add_problem(CaptureProblem{
          "server", "no_outbound",
          "The server's capture holds no packet sent by the server (" + server + ") although " +
              std::to_string(sightings) + " probe(s) arrived there: taken with -Q in or a source filter, it cannot "
              "show the server's replies.",
          "Capture both directions on the server: no -Q in, and a filter such as " + filter + ", not 'src host …'.",
          0});
      for (auto& w : work_) {
        if (w.c_probe == kNone || router_icmp(w)) continue;
        if (w.match == Match::matched || got_reply(w)) mark(w, id);
      }
    }
    // Time coverage: a probe that would have arrived before the server's capture began or after it
    // ended proves nothing; nor does a sighting whose reply was due after the capture's last packet.
    if (!s_.recs.empty()) {
      const Nanos first = s_.first_ts, last = s_.last_ts;
      if (time_known() && sightings > 0) mark_outside_span(first, last);
      // The server's turnaround seen on answered probes bounds when a reply was due.
      Nanos turnaround = 0;
      for (std::size_t k = 0; k < work_.size(); ++k) {
        prefetch_ahead(k, kAheadSProbe | kAheadSReply);
        const auto& w = work_[k];
        if (w.match == Match::matched && w.s_reply != kNone) turnaround = std::max(turnaround, s_.ts(w.s_reply) - s_.ts(w.s_probe));
      }
      std::int16_t early = -1;
      for (auto& w : work_) {
        if (w.match != Match::matched || w.s_reply != kNone || w.problem >= 0 || router_icmp(w)) continue;
        if (s_.ts(w.s_probe) + 2 * turnaround + kDueSlackNs <= last) continue;
        if (early < 0) {
          early = add_problem(CaptureProblem{
              "server", "ends_early",
              "The server's capture ends before the replies to its last probes were due.",
              "Let the server's capture run a few seconds past the last probe.", 0});
        }
        mark(w, early);
      }
    }
  }

  if (!c_.cap->vouched && client_id_) {
    const std::uint64_t c_recv = client_received_;
    std::uint64_t server_replied = 0;
    for (const auto& w : work_) server_replied += w.c_probe != kNone && w.s_reply != kNone;
    if (c_recv == 0 && server_replied > 0) {
      auto id = add_problem(CaptureProblem{
          "client", "no_inbound",
          "The client's capture holds no packet sent to the client (" + client + ") although the server answered " +
              std::to_string(server_replied) + " probe(s): taken with -Q out or a destination filter, it cannot show "
              "what came back.",
          "Capture both directions on the client: no -Q out, and a filter such as " + filter + ".", 0});
      for (auto& w : work_) {
        if (w.c_probe != kNone && w.s_reply != kNone && !w.real) mark(w, id);
      }
    } else if (!c_.recs.empty()) {
      const Nanos last = c_.last_ts;
      // The longest network round trip of answered probes bounds when a reply was due.
      Nanos rtt = 0;
      bool any = false;
      for (std::size_t k = 0; k < work_.size(); ++k) {
        prefetch_ahead(k, kAheadCProbe | kAheadCReply | kAheadSProbe | kAheadSReply);
        const auto& w = work_[k];
        if (!w.real || w.c_reply == kNone || w.s_reply == kNone) continue;
        rtt = std::max(rtt, (c_.ts(w.c_reply) - c_.ts(w.c_probe)) - (s_.ts(w.s_reply) - s_.ts(w.s_probe)));
        any = true;
      }
      std::int16_t early = -1;
      for (auto& w : work_) {
        if (w.c_probe == kNone || w.s_reply == kNone || w.real || w.c_received > 0 || w.problem >= 0) continue;
        const Nanos due = any ? c_.ts(w.c_probe) + (s_.ts(w.s_reply) - s_.ts(w.s_probe)) + 2 * rtt + kDueSlackNs
                              : c_.ts(w.c_probe) + m_.reply_timeout_ns;
        if (due <= last) continue;
        if (early < 0) {
          early = add_problem(CaptureProblem{
              "client", "ends_early", "The client's capture ends before the replies to its last probes were due.",
              "Let the client's capture run a few seconds past the last probe.", 0});
        }
        mark(w, early);
      }
    }
  }
}

// Probes that would have arrived before the server's capture began or after it ended prove
// nothing — but a capture's span is only known from its packets, and a lost first probe precedes
// the first packet too. So a leading (or trailing) run of unseen probes outside the span is
// declared out of the capture only when so long a run is implausible at the loss rate seen inside
// the span (below one in a thousand): a capture started late, or from another time.
void Correlator::mark_outside_span(Nanos first, Nanos last) {
  const Nanos off = corr_.clock.offset_ns, err = corr_.clock.error_ns;
  const Nanos lo = have_ow_ ? min_ow_ - err - kTimeSlackNs : -err - kTimeSlackNs;
  const Nanos hi = have_ow_ ? max_ow_ + err + kTimeSlackNs : m_.reply_timeout_ns + err;
  std::uint64_t n_in = 0, lost_in = 0;
  std::vector<std::uint32_t> before, after;
  for (std::uint32_t k = 0; k < work_.size(); ++k) {
    prefetch_ahead(k, kAheadCProbe);
    const auto& w = work_[k];
    if (w.c_probe == kNone) continue;
    const Nanos t = c_.ts(w.c_probe) + off;
    const bool early = t + hi < first, late = t + lo > last;
    if (!early && !late) {
      ++n_in;
      lost_in += w.match != Match::matched;
      continue;
    }
    if (w.match == Match::matched || w.problem >= 0) continue;
    (early ? before : after).push_back(k);
  }
  const double p = (static_cast<double>(lost_in) + 1.0) / (static_cast<double>(n_in) + 2.0);
  std::int16_t id = -1;
  for (auto* run : {&before, &after}) {
    if (run->empty() || std::pow(p, static_cast<double>(run->size())) >= 1e-3) continue;
    if (id < 0) {
      id = add_problem(CaptureProblem{
          "server", "outside_time_span",
          "The server's capture does not cover all of the client's probes: " + std::to_string(before.size() + after.size()) +
              " were sent while it was not running (before its first or after its last packet).",
          "Start the server's capture before the client's probes and stop it a few seconds after the last one.",
          0});
    }
    for (auto k : *run) {
      auto& w = work_[k];
      if (w.problem < 0) {
        w.problem = id;
        ++corr_.capture_problems[static_cast<std::size_t>(id)].probes;
      }
    }
  }
}

}  // namespace tandem::correlate::detail
