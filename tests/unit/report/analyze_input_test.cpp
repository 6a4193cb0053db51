// analyze inputs: manifest parsing (own schema and a report.json), endpoint inference, file errors.
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "controller/correlate/correlate.hpp"
#include "controller/report/analyze_input.hpp"
#include "controller/report/report.hpp"
#include "tests/unit/report/report_fixture.hpp"

namespace tandem::report {
namespace {

using nlohmann::json;

TEST(Manifest, OwnSchema) {
  auto m = parse_manifest(json::parse(R"({"run_key": 7, "count": 20, "client": "10.77.1.2", "target": "10.77.2.2",
     "dport": 21, "l4": "tcp", "variants": [{"name": "a", "tcp_options": "mss=1460", "tos": 184, "sport": "random"},
     {"name": "b", "tcp_options": "none"}], "probe_variant": [0, 1, 1], "clock": {"offset_ns": -5, "error_ns": 2},
     "reply_timeout_ms": 500, "rate_pps": 100, "future_key": 1})"), "m.json");
  ASSERT_TRUE(m.ok()) << m.error().text();
  EXPECT_EQ(m->run.run_key, 7u);
  EXPECT_EQ(m->run.count, 20u);
  EXPECT_EQ(m->run.client, test::ip("10.77.1.2"));
  EXPECT_EQ(m->run.dport, 21);
  ASSERT_EQ(m->run.variants.size(), 2u);
  EXPECT_EQ(m->run.variants[0].tos, 184);
  EXPECT_EQ(m->run.probe_variant, (std::vector<std::uint16_t>{0, 1, 1}));
  ASSERT_TRUE(m->run.clock);
  EXPECT_EQ(m->run.clock->offset_ns, -5);
  EXPECT_EQ(m->run.clock->source, "manifest");
  EXPECT_EQ(m->run.reply_timeout_ns, 500'000'000);
  EXPECT_EQ(m->rate_pps, 100.0);
}

TEST(Manifest, ErrorsNameTheFileAndKey) {
  auto bad = parse_manifest(json::parse(R"({"target": "not-an-ip"})"), "m.json");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, Errc::usage);
  EXPECT_NE(bad.error().text().find("m.json"), std::string::npos);
  EXPECT_NE(bad.error().text().find("\"target\""), std::string::npos);
  EXPECT_FALSE(parse_manifest(json::parse(R"({"dport": 70000})"), "m").ok());
  EXPECT_FALSE(parse_manifest(json::parse(R"({"l4": "sctp"})"), "m").ok());
  EXPECT_FALSE(parse_manifest(json::parse(R"({"probe_variant": [3]})"), "m").ok());
  EXPECT_FALSE(parse_manifest(json::parse("[1,2]"), "m").ok());
  auto missing = read_manifest_file("/nonexistent/manifest.json");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().text().find("/nonexistent/manifest.json"), std::string::npos);
}

TEST(Manifest, AcceptsATandemReportJson) {
  test::Fixture fx;
  fx.ctx.run_key = 99;
  fx.c.variants = {{"baseline", "none", 0, "random"}, {"full", "linux", 0, "random"}};
  for (auto& p : fx.c.probes) p.variant = static_cast<std::uint16_t>(p.id % 2);
  json report = json::parse(dump_report(report_json(fx.c, fx.verdict, fx.ctx)));
  auto m = parse_manifest(report, "report.json");
  ASSERT_TRUE(m.ok()) << m.error().text();
  EXPECT_EQ(m->run.run_key, 99u);
  EXPECT_EQ(m->run.target, test::ip("10.77.2.2"));
  EXPECT_EQ(m->run.client, test::ip("10.77.1.2"));
  EXPECT_EQ(m->run.dport, 21);
  EXPECT_EQ(m->run.count, 8u);
  ASSERT_EQ(m->run.variants.size(), 2u);
  EXPECT_EQ(m->run.probe_variant.size(), correlate::kFateCount);
  EXPECT_EQ(m->run.probe_variant[1], 1);
  ASSERT_TRUE(m->run.clock);
  EXPECT_EQ(m->run.clock->offset_ns, 2'000'000);
}

// Who is who is decided by correlate() from its per-packet records (no second decode in analyze).
TEST(Endpoints, ClientIsTheHostSendingSyns) {
  test::Fixture fx;
  fx.client.packets.clear();
  test::add(fx.client, 1, test::syn("10.77.2.2", "10.77.1.2", 40000, 5, packet::kTcpSyn | packet::kTcpAck));
  test::add(fx.client, 2, test::syn("10.77.1.2", "10.77.2.2", 40000, 5));
  correlate::CaptureSide nat;
  nat.present = true;
  nat.linktype = 101;
  test::add(nat, 3, test::syn("10.77.2.1", "10.77.2.2", 40000, 5));
  correlate::RunManifest m;
  m.l4.clear();
  auto c = correlate::correlate(fx.client, nat, m);
  ASSERT_TRUE(c.ok()) << c.error().text();
  EXPECT_EQ(c->l4, "tcp");
  EXPECT_EQ(c->client, test::ip("10.77.1.2"));
  EXPECT_EQ(c->target, test::ip("10.77.2.2"));
  EXPECT_EQ(c->dport, 21);
  EXPECT_EQ(c->server, test::ip("10.77.2.2"));
}

// Several senders or flows: the flow with the most probes is analysed (never the first one seen),
// the others are listed; a given client address or target picks another.
TEST(Endpoints, MostProbesWinsAndOthersAreListed) {
  test::Fixture fx;
  fx.client.packets.clear();
  test::add(fx.client, 1, test::syn("10.77.1.3", "10.77.2.2", 40009, 5));
  for (std::uint16_t i = 0; i < 3; ++i) test::add(fx.client, 2 + i, test::syn("10.77.1.2", "10.77.2.2", 40000 + i, 5));
  correlate::RunManifest m;
  m.l4.clear();
  auto c = correlate::correlate(fx.client, fx.server, m);
  ASSERT_TRUE(c.ok()) << c.error().text();
  EXPECT_EQ(c->client, test::ip("10.77.1.2"));
  ASSERT_EQ(c->flows.size(), 2u);
  EXPECT_TRUE(c->flows[0].analysed);
  EXPECT_EQ(c->flows[0].probes, 3u);
  EXPECT_EQ(c->flows[1].client, test::ip("10.77.1.3"));
  EXPECT_FALSE(c->flows[1].analysed);
  EXPECT_EQ(c->probes.size(), 3u);
  m.client = test::ip("10.77.1.3");
  auto given = correlate::correlate(fx.client, fx.server, m);
  ASSERT_TRUE(given.ok());
  EXPECT_EQ(given->client, test::ip("10.77.1.3"));
  EXPECT_EQ(given->probes.size(), 1u);
}

TEST(CaptureFile, MissingAndGarbageNameTheFile) {
  auto missing = read_capture_file("/nonexistent/x.pcap");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, Errc::usage);
  EXPECT_NE(missing.error().text().find("/nonexistent/x.pcap"), std::string::npos);
  auto path = std::filesystem::path(::testing::TempDir()) / ("garbage-" + std::to_string(getpid()) + ".pcap");
  std::ofstream(path) << "garbage garbage garbage";
  auto bad = read_capture_file(path.string());
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().text().find(path.string()), std::string::npos);
  std::filesystem::remove(path);
}

TEST(CaptureFile, ScenarioFileHasUnknownDrops) {
  auto side = read_capture_file(std::string(TANDEM_SOURCE_DIR) + "/tests/scenarios/clean/client.pcap");
  ASSERT_TRUE(side.ok()) << side.error().text();
  EXPECT_TRUE(side->present);
  EXPECT_EQ(side->linktype, 1);
  EXPECT_GT(side->packets.size(), 20u);
  EXPECT_FALSE(side->stats.available);
  EXPECT_EQ(side->stats.unavailable_reason, "offline file: drops unknown");
}

// docs/analyze.md "Bounds": fixed limits at parse time, the capture-derived one before correlate.
TEST(ManifestBounds, FixedLimitsNameTheKey) {
  auto big = parse_manifest(json::parse(R"({"count": 16777217})"), "m.json");
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.error().code, Errc::usage);
  EXPECT_NE(big.error().text().find("\"count\" 16777217 is above the limit 16777216"), std::string::npos)
      << big.error().text();
  EXPECT_TRUE(parse_manifest(json::parse(R"({"count": 16777216})"), "m.json").ok());
  json v = {{"variants", json::array()}};
  for (int i = 0; i < 256; ++i) v["variants"].push_back({{"name", "v" + std::to_string(i)}});
  EXPECT_TRUE(parse_manifest(v, "m.json").ok());
  v["variants"].push_back({{"name", "one too many"}});
  auto many = parse_manifest(v, "m.json");
  ASSERT_FALSE(many.ok());
  EXPECT_NE(many.error().text().find("\"variants\" has 257 entries"), std::string::npos) << many.error().text();
}

TEST(ManifestBounds, CountNeedsPacketsBehindIt) {
  EXPECT_EQ(manifest_probe_limit(0), 65536u);
  EXPECT_EQ(manifest_probe_limit(60), 65656u);
  EXPECT_EQ(manifest_probe_limit(100'000'000), 16777216u);
  test::Fixture fx;  // its client capture holds a handful of packets
  const std::uint64_t limit = manifest_probe_limit(fx.client.packets.size());
  AnalyzeManifest m;
  m.run.count = static_cast<std::uint32_t>(limit);
  EXPECT_TRUE(check_manifest_bounds(m, fx.client, "m.json").ok());
  m.run.count = static_cast<std::uint32_t>(limit + 1);
  auto st = check_manifest_bounds(m, fx.client, "m.json");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, Errc::usage);
  EXPECT_NE(st.error().text().find("\"count\" " + std::to_string(limit + 1)), std::string::npos) << st.error().text();
  EXPECT_NE(st.error().text().find("at most " + std::to_string(limit)), std::string::npos) << st.error().text();
  m.run.count.reset();
  m.run.probe_variant.assign(limit + 1, 0);
  auto pv = check_manifest_bounds(m, fx.client, "m.json");
  ASSERT_FALSE(pv.ok());
  EXPECT_NE(pv.error().text().find("\"probe_variant\""), std::string::npos) << pv.error().text();
  // An absent client capture backs no probe beyond the slack.
  correlate::CaptureSide absent;
  m.run.probe_variant.clear();
  m.run.count = 65537;
  EXPECT_FALSE(check_manifest_bounds(m, absent, "m.json").ok());
}

}  // namespace
}  // namespace tandem::report
