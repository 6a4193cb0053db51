// The verdict rules one by one, their priority, the texts, and per-variant summaries.
#include "controller/diagnose/diagnose.hpp"

#include <gtest/gtest.h>

#include "controller/correlate/correlate.hpp"
#include "tests/unit/correlate/synth_capture.hpp"

namespace tandem::diagnose {
namespace {

using correlate::Correlation;
using correlate::Fate;

// n probes of each listed fate, both captures present.
Correlation with_fates(std::initializer_list<std::pair<Fate, int>> fates) {
  Correlation c;
  c.client_present = c.server_present = true;
  c.variants = {correlate::Variant{"default", "", 0, ""}};
  std::uint32_t id = 0;
  for (auto [f, n] : fates) {
    for (int i = 0; i < n; ++i) {
      correlate::ProbeRecord p;
      p.id = id++;
      p.fate = f;
      c.probes.push_back(p);
    }
  }
  return c;
}

TEST(Diagnose, RuleTableHasEveryCodeOnce) {
  std::vector<std::string> codes;
  for (const auto& r : rules()) codes.emplace_back(r.code);
  EXPECT_EQ(codes, (std::vector<std::string>{"no_probes", "capture_missing", "capture_incomplete", "mostly_unknown",
                                             "lost_forward", "injected", "icmp_error", "reply_lost", "corrupted",
                                             "unanswered", "not_sent", "path_modifies", "capture_edges", "some_unknown",
                                             "clean"}));
}

// Unanswered probes that arrived with a bad checksum were corrupted on the way: the path, not the
// server, is to blame; the rest stay unanswered (a secondary item).
TEST(Diagnose, BadChecksumOnArrivalIsCorruptionNotUnanswered) {
  auto c = with_fates({{Fate::unanswered, 4}, {Fate::answered, 6}});
  for (int i = 0; i < 3; ++i) {
    c.probes[static_cast<std::size_t>(i)].changes.push_back(
        correlate::FieldChange{correlate::Direction::forward, "tcp.checksum", "valid", "bad"});
  }
  auto v = diagnose(c);
  EXPECT_EQ(v.code, "corrupted");
  EXPECT_EQ(v.text, "3 of 10 probes (30 %) reached the server with a bad TCP checksum, so its kernel discarded them: "
                    "something on the way changed them without fixing the checksum.");
  ASSERT_FALSE(v.secondary.empty());
  EXPECT_EQ(v.secondary[0].code, "unanswered");
  EXPECT_NE(v.secondary[0].text.find("1 of 10"), std::string::npos) << v.secondary[0].text;
}

TEST(Diagnose, EmptyServerCaptureSuggestsServerTarget) {
  auto c = with_fates({{Fate::lost_forward, 5}});
  c.server_packets = 0;
  auto v = diagnose(c);
  EXPECT_EQ(v.code, "lost_forward");
  EXPECT_NE(v.text.find("--server-target"), std::string::npos) << v.text;
  c.server_packets = 3;  // the server saw something: no NAT hint
  EXPECT_EQ(diagnose(c).text.find("--server-target"), std::string::npos);
}

TEST(Diagnose, Clean) {
  auto v = diagnose(with_fates({{Fate::answered, 20}}));
  EXPECT_EQ(v.code, "clean");
  EXPECT_EQ(v.text, "All 20 probes were answered and arrived unchanged.");
  EXPECT_FALSE(v.problem);
  EXPECT_EQ(v.severity, Severity::ok);
  EXPECT_TRUE(v.secondary.empty());
}

TEST(Diagnose, NoProbes) {
  auto v = diagnose(with_fates({}));
  EXPECT_EQ(v.code, "no_probes");
  EXPECT_TRUE(v.problem);
}

TEST(Diagnose, LostForwardText) {
  auto v = diagnose(with_fates({{Fate::answered, 63}, {Fate::lost_forward, 27}}));
  EXPECT_EQ(v.code, "lost_forward");
  EXPECT_EQ(v.text, "27 of 90 probes (30 %) were lost between the client and the server: the server never saw them.");
  EXPECT_TRUE(v.problem);
}

TEST(Diagnose, ReplyLostAndUnanswered) {
  EXPECT_EQ(diagnose(with_fates({{Fate::reply_lost, 1}, {Fate::answered, 2}})).text,
            "1 of 3 probes (33 %) reached the server and were answered, but the answer never reached the client.");
  EXPECT_EQ(diagnose(with_fates({{Fate::unanswered, 4}})).text,
            "4 of 4 probes (100 %) reached the server, which never answered them.");
}

TEST(Diagnose, InjectedNamesTheInjector) {
  auto c = with_fates({{Fate::injected, 3}, {Fate::answered, 7}});
  for (auto& p : c.probes) {
    if (p.fate == Fate::injected) {
      p.hop = *packet::IpAddr::parse("10.77.2.2");
      p.reply = "rst";
    }
  }
  auto v = diagnose(c);
  EXPECT_EQ(v.code, "injected");
  EXPECT_EQ(v.text, "3 of 10 probes (30 %) got a reply the server never sent (rst from 10.77.2.2): a device on the "
                    "path answers in the server's name.");
}

TEST(Diagnose, IcmpErrorNamesRouterAndType) {
  auto c = with_fates({{Fate::icmp_error, 2}});
  for (auto& p : c.probes) {
    p.hop = *packet::IpAddr::parse("10.77.1.1");
    p.reply = "icmp:3/13";
  }
  EXPECT_EQ(diagnose(c).text, "2 of 2 probes (100 %) were rejected by the router 10.77.1.1 with ICMP type 3 code 13 "
                              "(communication administratively prohibited).");
  for (auto& p : c.probes) {
    p.hop = *packet::IpAddr::parse("fd77:1::1");
    p.reply = "icmp:1/1";
  }
  EXPECT_EQ(diagnose(c).text, "2 of 2 probes (100 %) were rejected by the router fd77:1::1 with ICMPv6 type 1 code 1 "
                              "(communication administratively prohibited).");
}

TEST(Diagnose, NotSent) {
  auto v = diagnose(with_fates({{Fate::not_sent, 1}, {Fate::answered, 299}}));
  EXPECT_EQ(v.code, "not_sent");
  EXPECT_EQ(v.text, "1 of 300 probes (<1 %) never left the client: its own capture lacks them (a problem on the client host).");
}

TEST(Diagnose, CaptureMissingComesFirst) {
  auto c = with_fates({{Fate::unknown, 5}, {Fate::icmp_error, 1}});
  c.server_present = false;
  auto v = diagnose(c);
  EXPECT_EQ(v.code, "capture_missing");
  EXPECT_EQ(v.text, "The server's capture is missing, so 5 of 6 probes (83 %) could not be placed on the path.");
  ASSERT_FALSE(v.secondary.empty());
  EXPECT_EQ(v.secondary[0].code, "mostly_unknown");
}

TEST(Diagnose, MostlyAndSomeUnknown) {
  auto c = with_fates({{Fate::unknown, 3}, {Fate::answered, 1}});
  for (auto& p : c.probes) p.note = p.fate == Fate::unknown ? "server capture dropped 4 packet(s)" : "";
  auto v = diagnose(c);
  EXPECT_EQ(v.code, "mostly_unknown");
  EXPECT_EQ(v.text, "3 of 4 probes (75 %) could not be placed on the path (server capture dropped 4 packet(s)).");
  auto w = diagnose(with_fates({{Fate::unknown, 1}, {Fate::answered, 9}}));
  EXPECT_EQ(w.code, "some_unknown");
  EXPECT_EQ(w.severity, Severity::warning);
  EXPECT_TRUE(w.problem);
}

TEST(Diagnose, BiggestFailureWinsOthersAreSecondary) {
  auto v = diagnose(with_fates({{Fate::lost_forward, 2}, {Fate::reply_lost, 5}, {Fate::answered, 3}}));
  EXPECT_EQ(v.code, "reply_lost");
  ASSERT_EQ(v.secondary.size(), 1u);
  EXPECT_EQ(v.secondary[0].code, "lost_forward");
}

TEST(Diagnose, PathModifies) {
  auto c = with_fates({{Fate::answered, 10}});
  c.findings = {correlate::Finding{"modified", correlate::Direction::forward, "tcp.option.mss", 1460, 1200, 10, 1},
                correlate::Finding{"modified", correlate::Direction::forward, "tcp.option.sack_perm", true, nullptr, 4, 1}};
  auto v = diagnose(c);
  EXPECT_EQ(v.code, "path_modifies");
  EXPECT_EQ(v.text, "The path changes the probes in transit: tcp.option.mss is changed from 1460 to 1200 on the way "
                    "to the server for 10 probes (and 1 other change).");
  EXPECT_EQ(v.severity, Severity::warning);
  // A failure outranks a modification, which is then secondary.
  c.probes[0].fate = Fate::lost_forward;
  v = diagnose(c);
  EXPECT_EQ(v.code, "lost_forward");
  ASSERT_EQ(v.secondary.size(), 1u);
  EXPECT_EQ(v.secondary[0].code, "path_modifies");
}

TEST(Diagnose, VariantSummaries) {
  auto c = with_fates({{Fate::answered, 2}, {Fate::lost_forward, 3}, {Fate::unknown, 1}});
  c.variants = {correlate::Variant{"baseline", "none", 0, ""}, correlate::Variant{"ws", "ws=7", 0, ""}};
  for (std::size_t i = 0; i < c.probes.size(); ++i) c.probes[i].variant = i % 2 ? 1 : 0;
  auto s = summarize_variants(c);
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(s[0].name, "baseline");
  EXPECT_EQ(s[0].fates.total, 3u);
  EXPECT_EQ(s[1].fates.total, 3u);
  EXPECT_EQ(s[0].fates[Fate::answered], 1u);
  EXPECT_EQ(s[0].fates.failed(), 2u);
  EXPECT_EQ(s[1].fates.failed(), 1u);
  EXPECT_EQ(s[1].fates.decided(), 2u);
}

TEST(Diagnose, EndToEndFromSyntheticCaptures) {
  using synth::Outcome;
  std::vector<Outcome> oc(10, Outcome::answered);
  oc[2] = oc[5] = oc[7] = Outcome::lost_forward;
  synth::Path path;
  path.clamp_mss = 1200;
  auto pair = synth::synthesize(path, synth::Plan{}, oc);
  auto c = correlate::correlate(pair.client, pair.server, pair.manifest);
  ASSERT_TRUE(c.ok());
  auto v = diagnose(*c);
  EXPECT_EQ(v.code, "lost_forward");
  EXPECT_EQ(v.text, "3 of 10 probes (30 %) were lost between the client and the server: the server never saw them.");
  ASSERT_EQ(v.secondary.size(), 1u);
  EXPECT_EQ(v.secondary[0].text, "The path changes the probes in transit: tcp.option.mss is changed from 1460 to 1200 "
                                 "on the way to the server for 7 probes.");
}

}  // namespace
}  // namespace tandem::diagnose
