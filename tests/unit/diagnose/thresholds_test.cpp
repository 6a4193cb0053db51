// Every threshold of the verdict rules (controller/diagnose/rules.cpp) from both sides: the count
// where a rule starts to apply and the one just below, the tier order, and "most probes wins" within
// tier 2. The oracle is the rules table as documented in rules.cpp and docs/correlation.md, written
// out here by hand; a one-character change to a comparison in rules.cpp fails one of these
// (tests/mutation/mutants.txt holds such changes).
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "controller/diagnose/diagnose.hpp"
#include "tests/unit/diagnose/fates.hpp"

namespace tandem::diagnose {
namespace {

using correlate::Correlation;
using correlate::Fate;

// The codes of every rule that applied, verdict first.
std::vector<std::string> codes(const Verdict& v) {
  std::vector<std::string> out{v.code};
  for (const auto& s : v.secondary) out.push_back(s.code);
  return out;
}

bool applied(const Verdict& v, const std::string& code) {
  auto c = codes(v);
  return std::find(c.begin(), c.end(), code) != c.end();
}

correlate::Finding finding(std::uint64_t probes) {
  return correlate::Finding{"modified", correlate::Direction::forward, "ip.dscp", 46, 0, probes, 1};
}

// Marks n more probes of fate `of` as arrived with a bad TCP checksum.
void bad_checksum(Correlation& c, Fate of, int n) {
  for (auto& p : c.probes) {
    if (n == 0) break;
    if (p.fate != of || !p.changes.empty()) continue;
    p.changes.push_back(correlate::FieldChange{correlate::Direction::forward, "tcp.checksum", "valid", "bad"});
    --n;
  }
}

TEST(VerdictThresholds, TiersAreAsDocumented) {
  const std::map<std::string, int> want{
      {"no_probes", 0},    {"capture_missing", 0}, {"mostly_unknown", 1}, {"lost_forward", 2},
      {"injected", 2},     {"icmp_error", 2},      {"reply_lost", 2},     {"corrupted", 2},
      {"unanswered", 2},   {"not_sent", 2},        {"path_modifies", 3},  {"some_unknown", 3},
      {"clean", 4}};
  for (const auto& r : rules()) {
    auto it = want.find(std::string(r.code));
    if (it == want.end()) continue;  // a rule added later has its own tests
    EXPECT_EQ(r.tier, it->second) << r.code;
  }
}

TEST(VerdictThresholds, NoProbesIsZeroNotOne) {
  EXPECT_EQ(diagnose(with_fates({})).code, "no_probes");
  auto one = diagnose(with_fates({{Fate::answered, 1}}));
  EXPECT_EQ(one.code, "clean");
  EXPECT_FALSE(applied(one, "no_probes"));
}

// Unknown: exactly half is "some", one more than half is "most"; for odd totals too. The same
// counts fail any other fraction (a quarter, a third) on at least one side.
TEST(VerdictThresholds, MoreThanHalfUnknownIsMostlyUnknownExactlyHalfIsSome) {
  struct Case { int unknown, answered; const char* want; };
  for (Case k : {Case{2, 2, "some_unknown"}, Case{3, 1, "mostly_unknown"}, Case{2, 3, "some_unknown"},
                 Case{3, 2, "mostly_unknown"}, Case{5, 5, "some_unknown"}, Case{6, 5, "mostly_unknown"},
                 Case{1, 3, "some_unknown"}, Case{1, 0, "mostly_unknown"}, Case{50, 50, "some_unknown"},
                 Case{51, 50, "mostly_unknown"}}) {
    auto v = diagnose(with_fates({{Fate::unknown, k.unknown}, {Fate::answered, k.answered}}));
    EXPECT_EQ(v.code, k.want) << k.unknown << " unknown of " << k.unknown + k.answered;
    // The two rules are exclusive: never both.
    EXPECT_FALSE(applied(v, "mostly_unknown") && applied(v, "some_unknown")) << k.unknown << "/" << k.answered;
  }
}

TEST(VerdictThresholds, ZeroUnknownIsNotSomeUnknownOneIs) {
  EXPECT_EQ(diagnose(with_fates({{Fate::answered, 9}})).code, "clean");
  auto v = diagnose(with_fates({{Fate::answered, 9}, {Fate::unknown, 1}}));
  EXPECT_EQ(v.code, "some_unknown");
  EXPECT_EQ(v.severity, Severity::warning);
  EXPECT_EQ(v.text, "1 of 10 probes (10 %) could not be placed on the path (evidence is missing).");
}

// Every tier-2 fate: 0 probes never applies, 1 probe always does, and outranks a clean rest.
TEST(VerdictThresholds, OneProbeOfAFailureFateIsTheVerdictZeroIsNothing) {
  const std::pair<Fate, const char*> fates[] = {
      {Fate::lost_forward, "lost_forward"}, {Fate::injected, "injected"},     {Fate::icmp_error, "icmp_error"},
      {Fate::reply_lost, "reply_lost"},     {Fate::unanswered, "unanswered"}, {Fate::not_sent, "not_sent"}};
  for (auto [fate, code] : fates) {
    auto one = diagnose(with_fates({{Fate::answered, 99}, {fate, 1}}));
    EXPECT_EQ(one.code, code);
    EXPECT_EQ(one.severity, Severity::problem) << code;
    EXPECT_TRUE(one.problem) << code;
    EXPECT_EQ(codes(one).size(), 1u) << code << ": only its own rule applies";
    auto none = diagnose(with_fates({{Fate::answered, 100}}));
    EXPECT_FALSE(applied(none, code)) << code;
  }
}

TEST(VerdictThresholds, CorruptedNeedsOneBadChecksumAndTakesItsProbesFromUnanswered) {
  auto c = with_fates({{Fate::unanswered, 3}, {Fate::answered, 7}});
  EXPECT_EQ(codes(diagnose(c)), (std::vector<std::string>{"unanswered"}));
  bad_checksum(c, Fate::unanswered, 1);
  auto v = diagnose(c);
  EXPECT_EQ(codes(v), (std::vector<std::string>{"unanswered", "corrupted"}));  // 2 unanswered beat 1 corrupted
  EXPECT_NE(v.text.find("2 of 10"), std::string::npos) << v.text;
  bad_checksum(c, Fate::unanswered, 1);  // now 2 corrupted, 1 unanswered
  v = diagnose(c);
  EXPECT_EQ(codes(v), (std::vector<std::string>{"corrupted", "unanswered"}));
  EXPECT_NE(v.secondary[0].text.find("1 of 10"), std::string::npos) << v.secondary[0].text;
  bad_checksum(c, Fate::unanswered, 1);  // every unanswered probe is corrupted: no unanswered item
  EXPECT_EQ(codes(diagnose(c)), (std::vector<std::string>{"corrupted"}));
  // A bad checksum on an answered probe is not corruption (the server took it).
  auto a = with_fates({{Fate::answered, 4}});
  bad_checksum(a, Fate::answered, 2);
  EXPECT_EQ(diagnose(a).code, "clean");
}

TEST(VerdictThresholds, OneFindingIsPathModifiesNoneIsClean) {
  auto c = with_fates({{Fate::answered, 5}});
  EXPECT_EQ(diagnose(c).code, "clean");
  c.findings = {finding(1)};
  auto v = diagnose(c);
  EXPECT_EQ(codes(v), (std::vector<std::string>{"path_modifies"}));
  EXPECT_EQ(v.severity, Severity::warning);
}

TEST(VerdictThresholds, CleanNeedsEveryProbeAnswered) {
  EXPECT_EQ(diagnose(with_fates({{Fate::answered, 1}})).code, "clean");
  for (Fate f : {Fate::lost_forward, Fate::unanswered, Fate::reply_lost, Fate::injected, Fate::icmp_error,
                 Fate::not_sent, Fate::unknown}) {
    EXPECT_FALSE(applied(diagnose(with_fates({{Fate::answered, 30}, {f, 1}})), "clean")) << fate_name(f);
  }
}

TEST(VerdictThresholds, CaptureMissingEitherSideOrBoth) {
  auto c = with_fates({{Fate::unknown, 1}, {Fate::answered, 9}});
  EXPECT_FALSE(applied(diagnose(c), "capture_missing"));
  c.server_present = false;
  EXPECT_EQ(diagnose(c).code, "capture_missing");
  c.server_present = true;
  c.client_present = false;
  EXPECT_EQ(diagnose(c).code, "capture_missing");
  c.server_present = false;
  EXPECT_EQ(diagnose(c).code, "capture_missing");
  EXPECT_EQ(diagnose(c).text.rfind("Both captures are missing", 0), 0u) << diagnose(c).text;
}

// A lower tier wins whatever the probe counts: 1 probe of a tier-2 fate over a finding on 50
// probes or 49 unknown ones; mostly_unknown over a tier-2 fate with fewer probes.
TEST(VerdictThresholds, TierBeatsProbeCount) {
  auto c = with_fates({{Fate::answered, 49}, {Fate::lost_forward, 1}});
  c.findings = {finding(49)};
  EXPECT_EQ(codes(diagnose(c)), (std::vector<std::string>{"lost_forward", "path_modifies"}));
  auto u = diagnose(with_fates({{Fate::unknown, 49}, {Fate::icmp_error, 1}, {Fate::answered, 50}}));
  EXPECT_EQ(codes(u), (std::vector<std::string>{"icmp_error", "some_unknown"}));
  auto m = diagnose(with_fates({{Fate::unknown, 6}, {Fate::reply_lost, 5}}));
  EXPECT_EQ(codes(m), (std::vector<std::string>{"mostly_unknown", "reply_lost"}));
  auto cm = with_fates({{Fate::unknown, 3}, {Fate::lost_forward, 1}});
  cm.client_present = false;
  EXPECT_EQ(codes(diagnose(cm)), (std::vector<std::string>{"capture_missing", "mostly_unknown", "lost_forward"}));
}

// Within tier 2 the fate with most probes is the verdict: n+1 beats n in both orders of every pair.
TEST(VerdictThresholds, MostProbesWinsWithinTierTwoForEveryPair) {
  const std::pair<Fate, const char*> fates[] = {
      {Fate::lost_forward, "lost_forward"}, {Fate::injected, "injected"},     {Fate::icmp_error, "icmp_error"},
      {Fate::reply_lost, "reply_lost"},     {Fate::unanswered, "unanswered"}, {Fate::not_sent, "not_sent"}};
  for (auto [a, a_code] : fates) {
    for (auto [b, b_code] : fates) {
      if (a == b) continue;
      auto v = diagnose(with_fates({{a, 2}, {b, 3}, {Fate::answered, 5}}));
      EXPECT_EQ(v.code, b_code) << "2 " << a_code << " vs 3 " << b_code;
      ASSERT_EQ(v.secondary.size(), 1u) << a_code << " " << b_code;
      EXPECT_EQ(v.secondary[0].code, a_code);
    }
  }
  // corrupted competes on its own count, not on the unanswered count it is carved from.
  auto c = with_fates({{Fate::unanswered, 3}, {Fate::lost_forward, 2}});
  bad_checksum(c, Fate::unanswered, 3);
  EXPECT_EQ(codes(diagnose(c)), (std::vector<std::string>{"corrupted", "lost_forward"}));
  c = with_fates({{Fate::unanswered, 2}, {Fate::lost_forward, 3}});
  bad_checksum(c, Fate::unanswered, 2);
  EXPECT_EQ(codes(diagnose(c)), (std::vector<std::string>{"lost_forward", "corrupted"}));
}

// Tier 3: the bigger of path_modifies (probes of its biggest finding) and some_unknown leads.
TEST(VerdictThresholds, MostProbesWinsWithinTierThree) {
  auto c = with_fates({{Fate::answered, 7}, {Fate::unknown, 3}});
  c.findings = {finding(4), finding(1)};
  EXPECT_EQ(codes(diagnose(c)), (std::vector<std::string>{"path_modifies", "some_unknown"}));
  c.findings = {finding(2), finding(1)};
  EXPECT_EQ(codes(diagnose(c)), (std::vector<std::string>{"some_unknown", "path_modifies"}));
}

}  // namespace
}  // namespace tandem::diagnose
