#include "controller/diagnose/diagnose.hpp"

#include <algorithm>
#include <cmath>

namespace tandem::diagnose {

using correlate::Fate;

std::string_view severity_name(Severity s) {
  switch (s) {
    case Severity::ok: return "ok";
    case Severity::warning: return "warning";
    case Severity::problem: return "problem";
  }
  return "problem";
}

std::uint64_t FateCounts::failed() const {
  return (*this)[Fate::lost_forward] + (*this)[Fate::unanswered] + (*this)[Fate::reply_lost] +
         (*this)[Fate::injected] + (*this)[Fate::icmp_error];
}
std::uint64_t FateCounts::decided() const { return (*this)[Fate::answered] + failed(); }

FateCounts count_fates(std::span<const correlate::ProbeRecord> probes) {
  FateCounts c;
  for (const auto& p : probes) ++c.n[static_cast<std::size_t>(p.fate)];
  c.total = probes.size();
  return c;
}

std::vector<VariantSummary> summarize_variants(const correlate::Correlation& c) {
  std::vector<VariantSummary> out(std::max<std::size_t>(c.variants.size(), 1));
  for (std::size_t i = 0; i < out.size(); ++i) {
    out[i].variant = static_cast<std::uint16_t>(i);
    out[i].name = i < c.variants.size() ? c.variants[i].name : "default";
  }
  for (const auto& p : c.probes) {
    // A variant index the manifest did not list would be a correlate bug; count it in the last.
    auto& s = out[std::min<std::size_t>(p.variant, out.size() - 1)];
    ++s.fates.n[static_cast<std::size_t>(p.fate)];
    ++s.fates.total;
  }
  return out;
}

std::string share_text(std::uint64_t n, std::uint64_t total) {
  std::string pct;
  if (total == 0) {
    pct = "0 %";
  } else {
    auto v = std::llround(100.0 * static_cast<double>(n) / static_cast<double>(total));
    pct = (v == 0 && n > 0) ? "<1 %" : (v == 100 && n < total) ? ">99 %" : std::to_string(v) + " %";
  }
  return std::to_string(n) + " of " + std::to_string(total) + (total == 1 ? " probe (" : " probes (") + pct + ")";
}

std::string icmp_description(std::string_view reply, bool v6) {
  struct Name { bool v6; int type, code; const char* text; };
  static constexpr Name kNames[] = {
      {false, 3, 0, "network unreachable"}, {false, 3, 1, "host unreachable"},
      {false, 3, 2, "protocol unreachable"}, {false, 3, 3, "port unreachable"},
      {false, 3, 4, "fragmentation needed"}, {false, 3, 9, "network administratively prohibited"},
      {false, 3, 10, "host administratively prohibited"}, {false, 3, 13, "communication administratively prohibited"},
      {false, 11, 0, "time to live exceeded"}, {false, 0, 0, "echo reply"},
      {true, 1, 0, "no route to destination"}, {true, 1, 1, "communication administratively prohibited"},
      {true, 1, 3, "address unreachable"}, {true, 1, 4, "port unreachable"}, {true, 1, 5, "source address failed policy"},
      {true, 1, 6, "reject route to destination"}, {true, 2, 0, "packet too big"}, {true, 3, 0, "hop limit exceeded"},
      {true, 129, 0, "echo reply"},
  };
  int type = -1, code = -1;
  if (reply.starts_with("icmp:")) {
    auto rest = reply.substr(5);
    auto slash = rest.find('/');
    if (slash != std::string_view::npos) {
      try {
        type = std::stoi(std::string(rest.substr(0, slash)));
        code = std::stoi(std::string(rest.substr(slash + 1)));
      } catch (...) {
        // Not our format: described generically below.
      }
    }
  }
  std::string head = std::string(v6 ? "ICMPv6" : "ICMP") + " type " + std::to_string(type) + " code " + std::to_string(code);
  for (const auto& n : kNames) {
    if (n.v6 == v6 && n.type == type && n.code == code) return head + " (" + n.text + ")";
  }
  return head;
}

Verdict diagnose(const correlate::Correlation& c) {
  Facts facts{c, count_fates(c.probes)};
  struct Hit { const Rule* rule; std::uint64_t weight; VerdictItem item; };
  std::vector<Hit> hits;
  for (const auto& r : rules()) {
    std::uint64_t weight = 0;
    if (auto item = r.apply(facts, weight)) hits.push_back({&r, weight, std::move(*item)});
  }
  std::stable_sort(hits.begin(), hits.end(), [](const Hit& a, const Hit& b) {
    return a.rule->tier != b.rule->tier ? a.rule->tier < b.rule->tier : a.weight > b.weight;
  });
  Verdict v;
  if (hits.empty()) {
    // rules() ends with a catch-all, so this is unreachable; keep the verdict honest anyway.
    v.code = "undetermined";
    v.text = "The run's outcome could not be classified.";
    v.severity = Severity::warning;
    v.problem = true;
    return v;
  }
  v.code = hits.front().item.code;
  v.text = hits.front().item.text;
  v.severity = hits.front().item.severity;
  for (std::size_t i = 1; i < hits.size(); ++i) v.secondary.push_back(std::move(hits[i].item));
  v.problem = v.severity != Severity::ok;
  return v;
}

}  // namespace tandem::diagnose
