// `tandem bisect` end to end: `tandem lab run` on the bisect scenarios of deploy/scenarios (real
// agents, real nftables middlebox, real kernel listeners), asserting report.json's bisect block:
// the trigger, the failure fate, and the exit code.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/integration/common/lab_fixture.hpp"

namespace tandem::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct Run {
  int exit_code = -1;
  json bisect;
  json variants;  // report.json's top-level variants (the final round's, as sent)
  std::string log;
};

Run lab_run(const std::string& scenario) {
  const fs::path out = fs::temp_directory_path() / ("tandem-bisect-" + std::to_string(::getpid()) + "-" + scenario);
  const fs::path log = out.string() + ".log";
  fs::remove_all(out);
  std::string cmd = "timeout 90 " + LabFixture::tandem_binary() + " lab run " + TANDEM_SCENARIO_DIR "/" + scenario +
                    ".toml --out " + out.string() + " >" + log.string() + " 2>&1";
  Run r;
  int st = std::system(cmd.c_str());
  r.exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  std::ifstream lf(log);
  r.log.assign(std::istreambuf_iterator<char>(lf), {});
  std::ifstream f(out / "report.json");
  json j = json::parse(f, nullptr, false);
  if (j.is_object() && j.contains("bisect")) {
    r.bisect = j["bisect"];
    r.variants = j.value("variants", json());
    EXPECT_EQ(j["mode"], "bisect");
  }
  fs::remove_all(out);
  fs::remove(log);
  return r;
}

TEST(BisectLab, WindowScaleDropped30PercentInFlight) {
  TANDEM_REQUIRE_LAB();
  auto r = lab_run("bisect-wscale");
  ASSERT_FALSE(r.bisect.is_null()) << r.log;
  EXPECT_EQ(r.exit_code, 4) << r.log;
  EXPECT_EQ(r.bisect["trigger"], json::parse(R"([{"option":"wscale"}])")) << r.log;
  EXPECT_EQ(r.bisect["failure_fate"], "lost_forward") << r.log;
  EXPECT_GE(r.bisect["posterior"].get<double>(), 0.95);
}

TEST(BisectLab, SackAndTimestampsTogetherDroppedOnTheReturnPath) {
  TANDEM_REQUIRE_LAB();
  auto r = lab_run("bisect-sack-ts-return");
  ASSERT_FALSE(r.bisect.is_null()) << r.log;
  EXPECT_EQ(r.exit_code, 4) << r.log;
  EXPECT_EQ(r.bisect["trigger"], json::parse(R"([{"option":"sack_perm"},{"option":"timestamp"}])")) << r.log;
  EXPECT_EQ(r.bisect["failure_fate"], "reply_lost") << r.log;
}

TEST(BisectLab, MssAbove1400Dropped) {
  TANDEM_REQUIRE_LAB();
  auto r = lab_run("bisect-mss");
  ASSERT_FALSE(r.bisect.is_null()) << r.log;
  EXPECT_EQ(r.exit_code, 4) << r.log;
  EXPECT_EQ(r.bisect["trigger"], json::parse(R"([{"option":"mss","above":1400}])")) << r.log;
  EXPECT_EQ(r.bisect["failure_fate"], "lost_forward") << r.log;
}

TEST(BisectLab, WindowScaleValue14Dropped) {
  TANDEM_REQUIRE_LAB();
  auto r = lab_run("bisect-wscale-value");
  ASSERT_FALSE(r.bisect.is_null()) << r.log;
  EXPECT_EQ(r.exit_code, 4) << r.log;
  EXPECT_EQ(r.bisect["trigger"], json::parse(R"([{"option":"wscale","value":14}])")) << r.log;
  EXPECT_EQ(r.bisect["failure_fate"], "lost_forward") << r.log;
  EXPECT_GE(r.bisect["wscale_posterior"].get<double>(), 0.95);
}

TEST(BisectLab, FirstOptionNotMssDropped) {
  TANDEM_REQUIRE_LAB();
  auto r = lab_run("bisect-option-order");
  ASSERT_FALSE(r.bisect.is_null()) << r.log;
  EXPECT_EQ(r.exit_code, 4) << r.log;
  EXPECT_EQ(r.bisect["trigger"], json::parse(R"([{"order":"mss first"}])")) << r.log;
  EXPECT_EQ(r.bisect["failure_fate"], "lost_forward") << r.log;
}

TEST(BisectLab, CleanPathNoTriggerNoBlame) {
  TANDEM_REQUIRE_LAB();
  auto r = lab_run("bisect-clean");
  ASSERT_FALSE(r.bisect.is_null()) << r.log;
  EXPECT_EQ(r.exit_code, 0) << r.log;
  EXPECT_EQ(r.bisect["result"], "clean");
  EXPECT_TRUE(r.bisect["trigger"].empty());
  EXPECT_TRUE(r.bisect["failure_fate"].is_null());
}

TEST(BisectLab, AllOrNothingSackDropClientOnly) {
  TANDEM_REQUIRE_LAB();
  auto r = lab_run("bisect-sack-drop");
  ASSERT_FALSE(r.bisect.is_null()) << r.log;
  EXPECT_EQ(r.exit_code, 4) << r.log;
  EXPECT_EQ(r.bisect["trigger"], json::parse(R"([{"option":"sack_perm"}])")) << r.log;
  EXPECT_EQ(r.bisect["failure_fate"], "no_answer") << r.log;
}

// Non-option features and an unknown option kind (DESIGN.md §6): each named as the trigger, not an
// option that happens to travel with it.
TEST(BisectLab, Ttl255DroppedByAFirewall) {
  TANDEM_REQUIRE_LAB();
  auto r = lab_run("bisect-ttl");
  ASSERT_FALSE(r.bisect.is_null()) << r.log;
  EXPECT_EQ(r.exit_code, 4) << r.log;
  EXPECT_EQ(r.bisect["trigger"], json::parse(R"([{"feature":"ttl","value":255}])")) << r.log;
  EXPECT_EQ(r.bisect["failure_fate"], "lost_forward") << r.log;
  // The variants went out with the TTL they claim: 255 where the feature is on, the base (null = 64)
  // elsewhere, and only the 255 ones failed.
  bool saw_ttl = false;
  for (const auto& v : r.bisect["variants"]) {
    const bool on = v["ttl"] == 255;
    saw_ttl = saw_ttl || on;
    if (!on) {
      EXPECT_TRUE(v["ttl"].is_null()) << v.dump();
    }
    EXPECT_EQ(v["failed"].get<int>() > 0, on) << v.dump();
  }
  EXPECT_TRUE(saw_ttl);
  ASSERT_TRUE(r.variants.is_array()) << r.log;
  for (const auto& v : r.variants) {
    EXPECT_TRUE(v["ttl"] == 255 || v["ttl"].is_null()) << v.dump();  // null: the default (64)
  }
}

TEST(BisectLab, DscpEfPoliced30Percent) {
  TANDEM_REQUIRE_LAB();
  auto r = lab_run("bisect-dscp");
  ASSERT_FALSE(r.bisect.is_null()) << r.log;
  EXPECT_EQ(r.exit_code, 4) << r.log;
  EXPECT_EQ(r.bisect["trigger"], json::parse(R"([{"feature":"dscp","value":46}])")) << r.log;
  EXPECT_EQ(r.bisect["failure_fate"], "lost_forward") << r.log;
  EXPECT_GE(r.bisect["posterior"].get<double>(), 0.95);
  // Intermittent: the failing variants fail some of the time, not always.
  EXPECT_GT(r.bisect["failing"]["rate"].get<double>(), 0.1) << r.log;
  EXPECT_LT(r.bisect["failing"]["rate"].get<double>(), 0.6) << r.log;
}

TEST(BisectLab, SourcePortBandDropped) {
  TANDEM_REQUIRE_LAB();
  auto r = lab_run("bisect-sport");
  ASSERT_FALSE(r.bisect.is_null()) << r.log;
  EXPECT_EQ(r.exit_code, 4) << r.log;
  EXPECT_EQ(r.bisect["trigger"], json::parse(R"([{"feature":"sport","value":"41000-41099"}])")) << r.log;
  EXPECT_EQ(r.bisect["failure_fate"], "lost_forward") << r.log;
}

TEST(BisectLab, UnknownOptionKind253Dropped) {
  TANDEM_REQUIRE_LAB();
  auto r = lab_run("bisect-unknown-kind");
  ASSERT_FALSE(r.bisect.is_null()) << r.log;
  EXPECT_EQ(r.exit_code, 4) << r.log;
  EXPECT_EQ(r.bisect["trigger"], json::parse(R"([{"option":"kind253"}])")) << r.log;
  EXPECT_EQ(r.bisect["failure_fate"], "lost_forward") << r.log;
}

// --seed makes an experiment against a deterministic path (numgen inc) repeat exactly: the same
// rounds, variants and counts — which is also why the intermittent scenarios above are not coin tosses.
TEST(BisectLab, FixedSeedRepeatsTheExperiment) {
  TANDEM_REQUIRE_LAB();
  auto a = lab_run("bisect-dscp");
  auto b = lab_run("bisect-dscp");
  ASSERT_FALSE(a.bisect.is_null()) << a.log;
  ASSERT_FALSE(b.bisect.is_null()) << b.log;
  EXPECT_EQ(a.bisect["variants"], b.bisect["variants"]);
  EXPECT_EQ(a.bisect["probes_used"], b.bisect["probes_used"]);
  EXPECT_EQ(a.bisect["posterior"], b.bisect["posterior"]);
}

}  // namespace
}  // namespace tandem::testing
