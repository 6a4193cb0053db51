// report.json / report.md / summary renderers on a hand-made Correlation with one probe per fate.
#include <gtest/gtest.h>

#include "controller/report/report.hpp"
#include "tests/unit/report/report_fixture.hpp"

namespace tandem::report {
namespace {

using test::Fixture;
using ojson = nlohmann::ordered_json;

TEST(ReportJson, TopLevelKeysInDocumentedOrder) {
  Fixture fx;
  auto j = report_json(fx.c, fx.verdict, fx.ctx);
  std::vector<std::string> keys;
  for (auto it = j.begin(); it != j.end(); ++it) keys.push_back(it.key());
  std::vector<std::string> want = {"tool",    "version", "mode",    "target",   "client",   "server",
                                   "run",     "clock",   "capture", "flows",    "summary",  "verdict",
                                   "findings", "variants", "probes"};
  EXPECT_EQ(keys, want);
  EXPECT_EQ(j["tool"], "tandem");
  EXPECT_EQ(j["mode"], "analyze");
  EXPECT_EQ(j["target"], (ojson{{"address", "10.77.2.2"}, {"port", 21}, {"protocol", "tcp"}}));
  EXPECT_EQ(j["verdict"], (ojson{{"code", "lost_forward"},
                                 {"text", "Some probes were lost before the server."},
                                 {"severity", "problem"},
                                 {"secondary", ojson::array({ojson{{"code", "modified"}, {"text", "MSS rewritten."}, {"severity", "warning"}}})}}));
  EXPECT_EQ(j["clock"], (ojson{{"offset_ns", 2'000'000}, {"error_ns", 100'000}, {"source", "probes"}}));
}

TEST(ReportJson, EveryFateCountedZerosIncluded) {
  Fixture fx;
  fx.c.probes.resize(2);  // answered + lost_forward only
  auto j = report_json(fx.c, fx.verdict, fx.ctx);
  EXPECT_EQ(j["summary"]["probes"], 2);
  const auto& fates = j["summary"]["fates"];
  ASSERT_EQ(fates.size(), correlate::kFateCount);
  std::vector<std::string> names;
  for (auto it = fates.begin(); it != fates.end(); ++it) names.push_back(it.key());
  EXPECT_EQ(names, (std::vector<std::string>{"answered", "lost_forward", "unanswered", "reply_lost", "injected",
                                             "icmp_error", "not_sent", "unknown"}));
  EXPECT_EQ(fates["answered"], 1);
  EXPECT_EQ(fates["lost_forward"], 1);
  EXPECT_EQ(fates["unknown"], 0);
}

TEST(ReportJson, UnknownDropsAreNullWithReasonNeverZero) {
  Fixture fx;
  auto j = report_json(fx.c, fx.verdict, fx.ctx);
  EXPECT_EQ(j["capture"]["client"]["dropped"], 0);
  EXPECT_FALSE(j["capture"]["client"].contains("dropped_unknown"));
  EXPECT_TRUE(j["capture"]["server"]["dropped"].is_null());
  EXPECT_EQ(j["capture"]["server"]["dropped_unknown"], "offline file: drops unknown");
  EXPECT_EQ(j["capture"]["server"]["received"], 2);
  fx.c.server_present = false;
  j = report_json(fx.c, fx.verdict, fx.ctx);
  EXPECT_TRUE(j["capture"]["server"]["received"].is_null());
  EXPECT_TRUE(j["capture"]["server"]["dropped"].is_null());
  EXPECT_EQ(j["capture"]["server"]["present"], false);
}

TEST(ReportJson, ProbesCarryOptionalKeysOnlyWhenKnown) {
  Fixture fx;
  auto j = report_json(fx.c, fx.verdict, fx.ctx);
  ASSERT_EQ(j["probes"].size(), correlate::kFateCount);
  const auto& a = j["probes"][0];
  EXPECT_EQ(a, (ojson{{"id", 0}, {"variant", "default"}, {"sport", 40000}, {"fate", "answered"}, {"reply", "syn_ack"},
                      {"rtt_us", 2100}, {"forward_hops", 1}, {"reverse_hops", 1},
                      {"frames", ojson{{"client_probe", 1}, {"server_probe", 1}, {"server_reply", 2}, {"client_reply", 2}}}}));
  const auto& lost = j["probes"][1];
  EXPECT_TRUE(lost["reply"].is_null());
  EXPECT_TRUE(lost["rtt_us"].is_null());
  EXPECT_FALSE(lost.contains("hop"));
  EXPECT_FALSE(lost.contains("note"));
  EXPECT_EQ(j["probes"][5]["hop"], "10.77.1.1");
  EXPECT_EQ(j["probes"][5]["reply"], "icmp:3/13");
  EXPECT_EQ(j["probes"][7]["note"], "server capture dropped packets");
  for (std::size_t i = 0; i < correlate::kFateCount; ++i) {
    EXPECT_EQ(j["probes"][i]["fate"], correlate::fate_name(static_cast<correlate::Fate>(i)));
  }
}

TEST(ReportJson, FindingsKeepJsonTypesAndRemovedOptionIsNull) {
  Fixture fx;
  auto j = report_json(fx.c, fx.verdict, fx.ctx);
  ASSERT_EQ(j["findings"].size(), 2u);
  EXPECT_EQ(j["findings"][0], (ojson{{"code", "modified"}, {"direction", "forward"}, {"field", "tcp.option.mss"},
                                     {"sent", 1460}, {"received", 1200}, {"probes", 3}}));
  EXPECT_TRUE(j["findings"][1]["received"].is_null());
  EXPECT_EQ(j["findings"][1]["sent"], true);
}

TEST(ReportJson, RunWindowVariantsAndBisectSection) {
  Fixture fx;
  fx.ctx.run_key = 77;
  fx.ctx.bisect = ojson{{"trigger", ojson::array({ojson{{"option", "wscale"}}})}};
  fx.c.variants = {{"baseline", "none", 0, "random"}, {"full", "mss=1460,ws=7", 0, "random"}};
  fx.c.probes[3].variant = 1;
  auto j = report_json(fx.c, fx.verdict, fx.ctx);
  EXPECT_EQ(j["run"]["first_probe_ns"], test::kT0);
  EXPECT_EQ(j["run"]["last_probe_ns"], test::kT0 + 70'000'000);
  EXPECT_EQ(j["run"]["run_key"], 77);
  EXPECT_EQ(j["run"]["count"], 8);
  ASSERT_EQ(j["variants"].size(), 2u);
  EXPECT_EQ(j["variants"][1]["name"], "full");
  EXPECT_EQ(j["variants"][1]["probes"], 1);
  EXPECT_EQ(j["variants"][1]["fates"]["reply_lost"], 1);
  EXPECT_EQ(j["probes"][3]["variant"], "full");
  EXPECT_EQ(j.back()["trigger"][0]["option"], "wscale");  // "bisect" is the last key
}

TEST(ReportJson, DumpIsStable) {
  Fixture fx;
  auto a = dump_report(report_json(fx.c, fx.verdict, fx.ctx));
  auto b = dump_report(report_json(fx.c, fx.verdict, fx.ctx));
  EXPECT_EQ(a, b);
  EXPECT_EQ(a.back(), '\n');
  EXPECT_NE(a.find("\n  \"tool\": \"tandem\",\n"), std::string::npos);
}

// What the bundle writes (write_report_json, piece by piece) is dump_report(report_json()) byte for
// byte: with probes, with none, with a "bisect" section after them, and with a note holding bytes
// that are not UTF-8 (replaced, not thrown) and characters that must be escaped.
TEST(ReportJson, StreamedEqualsDump) {
  auto streamed = [](const Fixture& fx) {
    std::string out;
    std::size_t pieces = 0;
    write_report_json(fx.c, fx.verdict, fx.ctx, [&](std::string_view s) {
      out.append(s);
      ++pieces;
    });
    EXPECT_GT(pieces, fx.c.probes.size());  // not one string rendered at once
    return out;
  };
  Fixture fx;
  fx.c.probes[6].note = "bad \xff byte, \"quoted\"\n\ttab, caf\xc3\xa9";
  fx.c.probes[2].changes.push_back({correlate::Direction::forward, "ip.dscp", 0, 46});
  EXPECT_EQ(streamed(fx), dump_report(report_json(fx.c, fx.verdict, fx.ctx)));
  fx.ctx.bisect = ojson{{"trigger", ojson::array({ojson{{"option", "wscale"}, {"p", 0.5}}})}, {"empty", ojson::object()}};
  EXPECT_EQ(streamed(fx), dump_report(report_json(fx.c, fx.verdict, fx.ctx)));
  // Two vantages: the "vantage" rows and each probe's client/src.
  fx.ctx.vantages = {{"agent-a", "10.77.1.2", "srv", "10.77.2.2:21", 5, {5}, "clean"},
                     {"agent-b", "", "", "10.77.2.2:21", 3, {1, 2}, "lost_forward"}};
  fx.ctx.probe_vantage = {0, 1, 1, 0, 1, 0, 0};  // shorter than the probes: the rest are row 0's
  EXPECT_EQ(streamed(fx), dump_report(report_json(fx.c, fx.verdict, fx.ctx)));
  EXPECT_NE(streamed(fx).find("\"client\": \"agent-b\""), std::string::npos);
  fx.c.probes.clear();
  fx.c.findings.clear();
  EXPECT_EQ(streamed(fx), dump_report(report_json(fx.c, fx.verdict, fx.ctx)));
  EXPECT_NE(streamed(fx).find("\n  \"probes\": [],\n  \"bisect\": {\n"), std::string::npos);
}

TEST(ReportText, FindingSentences) {
  correlate::Finding f;
  f.field = "tcp.option.mss";
  f.sent = 1460;
  f.received = 1200;
  f.probes = 200;
  EXPECT_EQ(finding_sentence(f, 200), "MSS option rewritten 1460 → 1200 on the way to the server (all 200 probes)");
  f.probes = 12;
  f.direction = correlate::Direction::reverse;
  EXPECT_EQ(finding_sentence(f, 200), "MSS option rewritten 1460 → 1200 on the way back to the client (12 of 200 probes)");
  correlate::Finding s;
  s.field = "tcp.option.sack_perm";
  s.sent = true;
  s.received = nullptr;
  s.probes = 5;
  EXPECT_EQ(finding_sentence(s, 5), "SACK-permitted option removed on the way to the server (all 5 probes)");
  correlate::Finding d;
  d.field = "ip.dscp";
  d.sent = 46;
  d.received = 0;
  d.probes = 5;
  EXPECT_EQ(finding_sentence(d, 5), "DSCP rewritten 46 → 0 on the way to the server (all 5 probes)");
  correlate::Finding o;
  o.field = "tcp.options.order";
  o.sent = nlohmann::json::array({"mss", "sack_perm"});
  o.received = nlohmann::json::array({"sack_perm", "mss"});
  o.probes = 1;
  EXPECT_EQ(finding_sentence(o, 1), "TCP option order rewritten mss,sack_perm → sack_perm,mss on the way to the server (all 1 probes)");
}

TEST(ReportText, FormatUtc) {
  EXPECT_EQ(format_utc(test::kT0 + 123'456'789), "2023-11-14 22:13:20.123456 UTC");
  EXPECT_EQ(format_utc(0), "1970-01-01 00:00:00.000000 UTC");
}

TEST(ReportMd, HasEverySectionAndAdvicePerFate) {
  Fixture fx;
  fx.ctx.client_capture = &fx.client;
  fx.ctx.server_capture = &fx.server;
  std::string md = report_md(fx.c, fx.verdict, fx.ctx);
  for (const char* s : {"# tandem report: 10.77.2.2 port 21/tcp from 10.77.1.2", "## Verdict",
                        "Some probes were lost before the server. (`lost_forward`)", "## What was tested",
                        "| Rate | 100 probes/s |", "2023-11-14 22:13:20.000000 UTC", "## Fates",
                        "| `lost_forward` | 1 | 12.5 % |", "## Changes made in transit",
                        "MSS option rewritten 1460 → 1200 on the way to the server (3 of 8 probes)",
                        "## Evidence quality", "server's clock is 2000.0 µs ahead of the client's",
                        "Server capture: 2 packets; drops **unknown** (offline file: drops unknown)",
                        "Client capture: 4 packets, 0 dropped", "## What to look at next", "The path before the server",
                        "The way back", "The server host itself", "The device at 10.77.1.1",
                        "The router or firewall at 10.77.1.1", "The client host", "server capture dropped packets",
                        "## Example probes", "### `answered`", "10.77.1.2:40000 → 10.77.2.2:21 seq 1000"}) {
    EXPECT_NE(md.find(s), std::string::npos) << "missing: " << s << "\n" << md;
  }
}

TEST(ReportMd, CleanRunSaysSo) {
  Fixture fx;
  fx.c.probes.resize(1);
  fx.c.findings.clear();
  fx.c.clock = {};
  std::string md = report_md(fx.c, fx.verdict, fx.ctx);
  EXPECT_NE(md.find("Nothing: every probe was answered."), std::string::npos);
  EXPECT_NE(md.find("None: every field compared arrived as it was sent"), std::string::npos);
  EXPECT_NE(md.find("Clock offset between the two ends: unknown"), std::string::npos);
}

TEST(Summary, ShortWithBundlePathAndHonestDrops) {
  Fixture fx;
  std::string s = summary_text(fx.c, fx.verdict, fx.ctx, "/tmp/out", {"report.md", "report.json"});
  EXPECT_NE(s.find("verdict: Some probes were lost before the server. [lost_forward]"), std::string::npos) << s;
  EXPECT_NE(s.find("1 answered, 1 lost_forward"), std::string::npos) << s;
  EXPECT_NE(s.find("finding: MSS option rewritten"), std::string::npos) << s;
  EXPECT_NE(s.find("capture: client 0 dropped, server drops unknown"), std::string::npos) << s;
  EXPECT_NE(s.find("bundle:  /tmp/out (report.md, report.json)\n"), std::string::npos) << s;
  EXPECT_LT(std::count(s.begin(), s.end(), '\n'), 12);
}

}  // namespace
}  // namespace tandem::report
