// diagnose(): turns a Correlation into one verdict a remote admin understands. The verdict rules
// are small functions listed in one table (rules.cpp, in priority order); docs/correlation.md
// "Verdicts" lists them with their texts.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "controller/correlate/model.hpp"

namespace tandem::diagnose {

enum class Severity : std::uint8_t { ok, warning, problem };
std::string_view severity_name(Severity s);

struct VerdictItem {
  std::string code;  // "lost_forward", "icmp_error", "clean", ...
  std::string text;  // one plain sentence
  Severity severity = Severity::ok;
};

struct Verdict {
  std::string code;
  std::string text;
  Severity severity = Severity::ok;
  // true when the run found something wrong (or could not tell): `tandem` exits 4 (DESIGN.md §3).
  bool problem = false;
  std::vector<VerdictItem> secondary;  // other rules that applied, in priority order
};

// Fate counts over all probes, or over one variant's.
struct FateCounts {
  std::array<std::uint64_t, correlate::kFateCount> n{};
  std::uint64_t total = 0;
  std::uint64_t operator[](correlate::Fate f) const { return n[static_cast<std::size_t>(f)]; }
  // Probes whose fate is a failure on the path: lost_forward, unanswered, reply_lost, injected,
  // icmp_error. not_sent (a local problem) and unknown (no evidence) are neither.
  std::uint64_t failed() const;
  // Probes with a decided on-path outcome: answered + failed().
  std::uint64_t decided() const;
};
FateCounts count_fates(std::span<const correlate::ProbeRecord> probes);

struct VariantSummary {
  std::uint16_t variant = 0;
  std::string name;
  FateCounts fates;
};
// One entry per variant of c.variants (in order), counting the probes that carry it.
std::vector<VariantSummary> summarize_variants(const correlate::Correlation& c);

// What the rules see: the correlation and its fate counts, computed once.
struct Facts {
  const correlate::Correlation& corr;
  FateCounts counts;
};

// One verdict rule: returns its item when it applies. `weight` orders rules of the same tier
// (more probes affected first); lower tiers win.
struct Rule {
  std::string_view code;
  int tier;
  std::optional<VerdictItem> (*apply)(const Facts&, std::uint64_t& weight);
};
std::span<const Rule> rules();

Verdict diagnose(const correlate::Correlation& c);

// "27 of 90 probes (30 %)": the counting phrase every sentence uses.
std::string share_text(std::uint64_t n, std::uint64_t total);
// "3/13" from reply "icmp:3/13" + the address family: "communication administratively prohibited".
std::string icmp_description(std::string_view reply, bool v6);

}  // namespace tandem::diagnose
