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

}  // namespace
}  // namespace tandem::testing
