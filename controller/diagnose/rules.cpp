// The verdict rules, one small function each, and the table that lists them (diagnose() applies
// all, orders the hits by tier then by probes affected, and takes the first as the verdict).
//
// | tier | code            | applies when                                    | severity |
// |------|-----------------|-------------------------------------------------|----------|
// | 0    | no_probes       | no probe in the run                             | problem  |
// | 0    | capture_missing | a capture is absent                             | problem  |
// | 0    | capture_incomplete | a capture cannot prove the fates (see below)  | problem  |
// | 1    | mostly_unknown  | more than half the probes are unknown           | problem  |
// | 2    | lost_forward    | any probe lost_forward                          | problem  |
// | 2    | injected        | any probe injected                              | problem  |
// | 2    | icmp_error      | any probe icmp_error                            | problem  |
// | 2    | reply_lost      | any probe reply_lost                            | problem  |
// | 2    | corrupted       | any unanswered probe arrived with a bad checksum| problem  |
// | 2    | unanswered      | any other probe unanswered                      | problem  |
// | 2    | not_sent        | any probe not_sent                              | problem  |
// | 3    | path_modifies   | any finding                                     | warning  |
// | 3    | capture_edges   | a capture's edges left a few probes unknown     | warning  |
// | 3    | some_unknown    | some (at most half) probes unknown              | warning  |
// | 4    | clean           | every probe answered, no finding                | ok       |
// Within tier 2 the fate with most probes wins: the biggest failure is what the admin should see.
#include <algorithm>
#include <cctype>
#include <map>

#include "controller/diagnose/diagnose.hpp"

namespace tandem::diagnose {
namespace {

using correlate::Fate;
using Item = std::optional<VerdictItem>;

VerdictItem item(std::string_view code, std::string text, Severity s) {
  return VerdictItem{std::string(code), std::move(text), s};
}

// The most common value of key(p) over probes of fate f ("" when none).
template <class Key>
std::string most_common(const Facts& f, Fate fate, Key key) {
  std::map<std::string, std::uint64_t> n;
  for (const auto& p : f.corr.probes) {
    if (p.fate == fate) ++n[key(p)];
  }
  auto it = std::max_element(n.begin(), n.end(), [](const auto& a, const auto& b) { return a.second < b.second; });
  return it == n.end() ? std::string() : it->first;
}

std::string hop_of(const correlate::ProbeRecord& p) { return p.hop ? p.hop->to_string() : std::string("an unknown address"); }

Item no_probes(const Facts& f, std::uint64_t&) {
  if (f.counts.total != 0) return {};
  return item("no_probes", "No probes were found in the client's capture, so the path could not be tested.",
              Severity::problem);
}

Item capture_missing(const Facts& f, std::uint64_t& w) {
  if (f.corr.client_present && f.corr.server_present) return {};
  w = f.counts.total;
  std::string which = !f.corr.client_present && !f.corr.server_present ? "Both captures are"
                      : !f.corr.client_present                       ? "The client's capture is"
                                                                     : "The server's capture is";
  return item("capture_missing", which + " missing, so " + share_text(f.counts[Fate::unknown], f.counts.total) +
                                     " could not be placed on the path.",
              Severity::problem);
}

std::string common_note(const Facts& f) {
  auto note = most_common(f, Fate::unknown, [](const correlate::ProbeRecord& p) { return p.note; });
  return note.empty() ? std::string("evidence is missing") : note;
}

// A capture taken by hand that cannot prove what happened (docs/correlation.md "Evidence checks"):
// name the problem and what to retake, rather than blame the path with what remains. A problem of
// the whole capture (empty, wrong interface, one direction) takes the verdict whatever it touched;
// one at a capture's edges (it started late, ended early) only when it left most probes unknown —
// otherwise the path's verdict stands and the edge is a warning (capture_edges).
bool edge_problem(const correlate::CaptureProblem& p) { return p.code == "ends_early" || p.code == "outside_time_span"; }

const correlate::CaptureProblem* top_problem(const Facts& f, bool edges, std::uint64_t& n) {
  const correlate::CaptureProblem* top = nullptr;
  n = 0;
  for (const auto& p : f.corr.capture_problems) {
    if (p.probes == 0 || edge_problem(p) != edges) continue;
    n += p.probes;
    if (!top || p.probes > top->probes) top = &p;
  }
  return top;
}

Item capture_incomplete(const Facts& f, std::uint64_t& w) {
  std::uint64_t whole = 0, edges = 0;
  const auto* top = top_problem(f, false, whole);
  const auto* edge = top_problem(f, true, edges);
  if (!top && edge && edges * 2 > f.counts.total) top = edge;
  if (!top) return {};
  w = whole + edges;
  return item("capture_incomplete",
              top->text + " " + share_text(w, f.counts.total) + " could not be placed on the path. " + top->retake,
              Severity::problem);
}

Item capture_edges(const Facts& f, std::uint64_t& w) {
  std::uint64_t whole = 0, edges = 0;
  top_problem(f, false, whole);
  const auto* edge = top_problem(f, true, edges);
  if (whole > 0 || !edge || edges * 2 > f.counts.total) return {};
  w = edges;
  return item("capture_edges", edge->text + " " + share_text(edges, f.counts.total) + " stay unknown. " + edge->retake,
              Severity::warning);
}

Item mostly_unknown(const Facts& f, std::uint64_t& w) {
  auto n = f.counts[Fate::unknown];
  if (n * 2 <= f.counts.total || f.counts.total == 0) return {};
  w = n;
  return item("mostly_unknown", share_text(n, f.counts.total) + " could not be placed on the path (" + common_note(f) + ").",
              Severity::problem);
}

Item some_unknown(const Facts& f, std::uint64_t& w) {
  auto n = f.counts[Fate::unknown];
  if (n == 0 || n * 2 > f.counts.total) return {};
  w = n;
  return item("some_unknown", share_text(n, f.counts.total) + " could not be placed on the path (" + common_note(f) + ").",
              Severity::warning);
}

Item lost_forward(const Facts& f, std::uint64_t& w) {
  if (!(w = f.counts[Fate::lost_forward])) return {};
  std::string text = share_text(w, f.counts.total) + " were lost between the client and the server: the server never saw them.";
  // No probe reached the server and its capture holds nothing at all: a NAT in front of the server
  // (the agent capturing the wrong flow) looks exactly like this, so say how to rule it out.
  const bool nothing_reached_server = f.counts[Fate::reply_lost] == 0 && f.counts[Fate::unanswered] == 0 &&
                               f.counts[Fate::answered] == 0;
  if (f.corr.server_present && f.corr.server_packets == 0 && nothing_reached_server) {
    text += " The server's capture is empty: make sure it was taken on the interface that faces the client; if a NAT "
            "or load balancer rewrites the target's address or port, pass --server-target with what the server sees.";
  }
  return item("lost_forward", text, Severity::problem);
}

Item injected(const Facts& f, std::uint64_t& w) {
  if (!(w = f.counts[Fate::injected])) return {};
  auto who = most_common(f, Fate::injected, hop_of);
  auto kind = most_common(f, Fate::injected, [](const correlate::ProbeRecord& p) { return p.reply; });
  return item("injected", share_text(w, f.counts.total) + " got a reply the server never sent (" + kind + " from " +
                              who + "): a device on the path answers in the server's name.",
              Severity::problem);
}

Item icmp_error(const Facts& f, std::uint64_t& w) {
  if (!(w = f.counts[Fate::icmp_error])) return {};
  auto key = most_common(f, Fate::icmp_error, [](const correlate::ProbeRecord& p) { return hop_of(p) + " " + p.reply; });
  auto sp = key.find(' ');
  auto who = key.substr(0, sp);
  auto reply = sp == std::string::npos ? std::string() : key.substr(sp + 1);
  bool v6 = who.find(':') != std::string::npos;
  return item("icmp_error", share_text(w, f.counts.total) + " were rejected by the router " + who + " with " +
                                icmp_description(reply, v6) + ".",
              Severity::problem);
}

Item reply_lost(const Facts& f, std::uint64_t& w) {
  if (!(w = f.counts[Fate::reply_lost])) return {};
  std::uint64_t retx = 0;
  for (const auto& p : f.corr.probes) retx += p.fate == Fate::reply_lost && p.replies_received > 0;
  if (retx == 0) {
    return item("reply_lost", share_text(w, f.counts.total) +
                                  " reached the server and were answered, but the answer never reached the client.",
                Severity::problem);
  }
  // Real servers retransmit: the first reply was lost on the way back, a later copy arrived.
  std::string text = share_text(w, f.counts.total) + " reached the server and were answered, but the first answer " +
                     "never reached the client";
  text += retx == w ? "; a retransmission of it arrived for each of them."
                    : "; a retransmission of it arrived for " + std::to_string(retx) + " of them.";
  return item("reply_lost", text, Severity::problem);
}

using correlate::bad_checksum_field;

std::uint64_t corrupted_count(const Facts& f) {
  std::uint64_t n = 0;
  for (const auto& p : f.corr.probes) n += p.fate == Fate::unanswered && !bad_checksum_field(p).empty();
  return n;
}

Item corrupted(const Facts& f, std::uint64_t& w) {
  if (!f.counts[Fate::unanswered] || !(w = corrupted_count(f))) return {};
  auto field = most_common(f, Fate::unanswered, bad_checksum_field);
  if (field.empty()) field = "tcp.checksum";
  const std::string layer = field.substr(0, field.find('.'));
  std::string upper = layer;
  for (auto& ch : upper) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  return item("corrupted", share_text(w, f.counts.total) + " reached the server with a bad " + upper +
                               " checksum, so its kernel discarded them: something on the way changed them without "
                               "fixing the checksum.",
              Severity::problem);
}

Item unanswered(const Facts& f, std::uint64_t& w) {
  if (!f.counts[Fate::unanswered] || !(w = f.counts[Fate::unanswered] - corrupted_count(f))) return {};
  return item("unanswered", share_text(w, f.counts.total) + " reached the server, which never answered them.",
              Severity::problem);
}

Item not_sent(const Facts& f, std::uint64_t& w) {
  if (!(w = f.counts[Fate::not_sent])) return {};
  return item("not_sent", share_text(w, f.counts.total) +
                              " never left the client: its own capture lacks them (a problem on the client host).",
              Severity::problem);
}

std::string value_text(const nlohmann::json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

Item path_modifies(const Facts& f, std::uint64_t& w) {
  const auto& fs = f.corr.findings;
  if (fs.empty()) return {};
  // The finding touching most probes leads the sentence.
  const auto& top = *std::max_element(fs.begin(), fs.end(), [](const auto& a, const auto& b) { return a.probes < b.probes; });
  w = top.probes;
  std::string where = top.direction == correlate::Direction::forward ? "on the way to the server" : "on the way back to the client";
  std::string change = top.received.is_null() ? top.field + " is removed"
                       : top.sent.is_null()   ? top.field + " is added (" + value_text(top.received) + ")"
                       : top.distinct > 1     ? top.field + " is rewritten"
                                              : top.field + " is changed from " + value_text(top.sent) + " to " +
                                                  value_text(top.received);
  std::string more = fs.size() > 1 ? " (and " + std::to_string(fs.size() - 1) + " other change" + (fs.size() > 2 ? "s" : "") + ")" : "";
  return item("path_modifies", "The path changes the probes in transit: " + change + " " + where + " for " +
                                   std::to_string(top.probes) + (top.probes == 1 ? " probe" : " probes") + more + ".",
              Severity::warning);
}

Item clean(const Facts& f, std::uint64_t& w) {
  if (f.counts.total == 0 || f.counts[Fate::answered] != f.counts.total || !f.corr.findings.empty()) return {};
  w = f.counts.total;
  return item("clean", "All " + std::to_string(f.counts.total) + (f.counts.total == 1 ? " probe was" : " probes were") +
                           " answered and arrived unchanged.",
              Severity::ok);
}

constexpr Rule kRules[] = {
    {"no_probes", 0, no_probes},
    {"capture_missing", 0, capture_missing},
    {"capture_incomplete", 0, capture_incomplete},
    {"mostly_unknown", 1, mostly_unknown},
    {"lost_forward", 2, lost_forward},
    {"injected", 2, injected},
    {"icmp_error", 2, icmp_error},
    {"reply_lost", 2, reply_lost},
    {"corrupted", 2, corrupted},
    {"unanswered", 2, unanswered},
    {"not_sent", 2, not_sent},
    {"path_modifies", 3, path_modifies},
    {"capture_edges", 3, capture_edges},
    {"some_unknown", 3, some_unknown},
    {"clean", 4, clean},
};

}  // namespace

std::span<const Rule> rules() { return kRules; }

}  // namespace tandem::diagnose
