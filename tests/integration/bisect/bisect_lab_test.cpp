// `tandem bisect` end to end: `tandem lab run` on the bisect scenarios of deploy/scenarios (real
// agents, real nftables middlebox, real kernel listeners), asserting report.json's bisect block:
// the trigger, the failure fate, and the exit code — one table row per trigger kind.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <ostream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/integration/common/lab_fixture.hpp"
#include "tests/unit/report/browser.hpp"

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

// Every trigger kind of DESIGN.md §6 against a real middlebox: the scenario, the trigger report.json
// must name, and the failure fate (whose network to look at). Exit code 4: a trigger was found.
struct Expect {
  const char* scenario;
  const char* trigger;  // the "trigger" array, JSON
  const char* fate;
};

std::ostream& operator<<(std::ostream& os, const Expect& e) { return os << e.scenario; }

class BisectLabTrigger : public ::testing::TestWithParam<Expect> {};

TEST_P(BisectLabTrigger, NamesTheTriggerAndTheFate) {
  TANDEM_REQUIRE_LAB();
  const Expect& e = GetParam();
  auto r = lab_run(e.scenario);
  ASSERT_FALSE(r.bisect.is_null()) << r.log;
  EXPECT_EQ(r.exit_code, 4) << r.log;
  EXPECT_EQ(r.bisect["result"], "trigger") << r.log;
  EXPECT_EQ(r.bisect["trigger"], json::parse(e.trigger)) << r.log;
  EXPECT_EQ(r.bisect["failure_fate"], e.fate) << r.log;
  EXPECT_GE(r.bisect["posterior"].get<double>(), 0.95) << r.log;
  for (const char* stage : {"wscale_posterior", "threshold_posterior"}) {
    if (r.bisect.contains(stage)) {
      EXPECT_GE(r.bisect[stage].get<double>(), 0.95) << stage;
    }
  }
}

std::string scenario_name(const ::testing::TestParamInfo<Expect>& info) {
  std::string n = info.param.scenario;
  for (auto& c : n) c = c == '-' ? '_' : c;
  return n;
}

INSTANTIATE_TEST_SUITE_P(
    BisectLab, BisectLabTrigger,
    ::testing::Values(
        // window scale dropped 30 % in flight (numgen inc: exactly 3 in 10, fixed seed)
        Expect{"bisect-wscale", R"([{"option":"wscale"}])", "lost_forward"},
        // SACK-permitted + timestamps together (neither alone); the SYN-ACK is dropped on the way back
        Expect{"bisect-sack-ts-return", R"([{"option":"sack_perm"},{"option":"timestamp"}])", "reply_lost"},
        // an option value: MSS above 1400
        Expect{"bisect-mss", R"([{"option":"mss","above":1400}])", "lost_forward"},
        // an option value: window scale shift count 14 only (--wscale-values)
        Expect{"bisect-wscale-value", R"([{"option":"wscale","value":14}])", "lost_forward"},
        // the option order: the first option must be MSS (--option-order)
        Expect{"bisect-option-order", R"([{"order":"mss first"}])", "lost_forward"},
        // all or nothing, client only: coarser fate
        Expect{"bisect-sack-drop", R"([{"option":"sack_perm"}])", "no_answer"},
        // an unknown option kind
        Expect{"bisect-unknown-kind", R"([{"option":"kind253"}])", "lost_forward"},
        // non-option features: TTL, DSCP (30 %, intermittent), source-port band
        Expect{"bisect-ttl", R"([{"feature":"ttl","value":255}])", "lost_forward"},
        Expect{"bisect-hoplimit-v6", R"([{"feature":"ttl","value":255}])", "lost_forward"},  // over IPv6
        Expect{"bisect-dscp", R"([{"feature":"dscp","value":46}])", "lost_forward"},
        Expect{"bisect-sport", R"([{"feature":"sport","value":"41000-41099"}])", "lost_forward"},
        // the source as a feature, on a second client site: wscale only from 10.77.3.2
        Expect{"bisect-source", R"([{"option":"wscale"},{"feature":"source","value":"10.77.3.2"}])", "lost_forward"}),
    scenario_name);

TEST(BisectLab, CleanPathNoTriggerNoBlame) {
  TANDEM_REQUIRE_LAB();
  auto r = lab_run("bisect-clean");
  ASSERT_FALSE(r.bisect.is_null()) << r.log;
  EXPECT_EQ(r.exit_code, 0) << r.log;
  EXPECT_EQ(r.bisect["result"], "clean");
  EXPECT_TRUE(r.bisect["trigger"].empty());
  EXPECT_TRUE(r.bisect["failure_fate"].is_null());
}

// The TTL feature really changes the TTL on the wire, and only those probes fail.
TEST(BisectLab, TtlVariantsCarryTheirTtl) {
  TANDEM_REQUIRE_LAB();
  auto r = lab_run("bisect-ttl");
  ASSERT_FALSE(r.bisect.is_null()) << r.log;
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

// --seed makes an experiment against a deterministic path (numgen inc) repeat exactly: the same
// rounds, variants and counts — which is also why the intermittent scenarios above are not coin tosses.
TEST(BisectLab, FixedSeedRepeatsTheExperiment) {
  TANDEM_REQUIRE_LAB();
  auto a = lab_run("bisect-dscp");
  auto b = lab_run("bisect-dscp");
  ASSERT_FALSE(a.bisect.is_null()) << a.log;
  ASSERT_FALSE(b.bisect.is_null()) << b.log;
  // Intermittent: the failing variants fail some of the time, not always.
  EXPECT_GT(a.bisect["failing"]["rate"].get<double>(), 0.1) << a.log;
  EXPECT_LT(a.bisect["failing"]["rate"].get<double>(), 0.6) << a.log;
  EXPECT_EQ(a.bisect["variants"], b.bisect["variants"]);
  EXPECT_EQ(a.bisect["probes_used"], b.bisect["probes_used"]);
  EXPECT_EQ(a.bisect["posterior"], b.bisect["posterior"]);
}

// DESIGN.md §5: a bisect bundle keeps every round, failing probes included — the far admin must
// find a failing probe of the trigger variant in it. Oracles: the experiment's own per-variant
// counts (report.json "bisect", summed over its rounds as they ran) and tshark's count of the SYNs
// in client.pcapng.
TEST(BisectLab, BundleKeepsEveryRoundWithFailingProbesOfTheTrigger) {
  TANDEM_REQUIRE_LAB();
  const fs::path out = fs::temp_directory_path() / ("tandem-bisect-bundle-" + std::to_string(::getpid()));
  fs::remove_all(out);
  std::string cmd = "timeout 90 " + LabFixture::tandem_binary() + " lab run " TANDEM_SCENARIO_DIR
                    "/bisect-wscale.toml --out " + out.string() + " > " + out.string() + ".log 2>&1";
  int st = std::system(cmd.c_str());
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 4) << st;
  std::ifstream f(out / "report.json");
  json j = json::parse(f, nullptr, false);
  ASSERT_TRUE(j.is_object());
  const json& b = j["bisect"];
  ASSERT_GT(b["rounds"].get<int>(), 1) << "one round proves nothing about keeping every round";

  // Every probe of every round, each with its variant.
  EXPECT_EQ(j["probes"].size(), b["probes_used"].get<std::size_t>());
  std::map<std::string, std::pair<std::uint64_t, std::uint64_t>> seen;  // variant -> (probes, failed)
  for (const auto& p : j["probes"]) {
    auto& c = seen[p["variant"].get<std::string>()];
    ++c.first;
    const std::string fate = p["fate"];
    if (fate != "answered" && fate != "not_sent" && fate != "unknown") ++c.second;
  }
  std::uint64_t trigger_failures = 0;
  for (const auto& v : b["variants"]) {
    const std::string name = v["name"];
    EXPECT_EQ(seen[name].first, v["sent"].get<std::uint64_t>() + v.value("excluded", std::uint64_t{0})) << name;
    EXPECT_EQ(seen[name].second, v["failed"].get<std::uint64_t>()) << name;
    if (name.find("wscale") != std::string::npos && name[0] != '-') trigger_failures += seen[name].second;
  }
  EXPECT_GT(trigger_failures, 0u) << "no failing probe of a variant carrying the trigger";

  // All rounds' packets: every SYN the client sent is in client.pcapng.
  auto syns = std::system(("test $(tshark -r " + (out / "client.pcapng").string() +
                           " -Y 'tcp.flags.syn==1 && tcp.flags.ack==0' 2>/dev/null | wc -l) -eq " +
                           std::to_string(b["probes_used"].get<std::uint64_t>()))
                              .c_str());
  EXPECT_EQ(syns, 0) << "client.pcapng does not hold every round's probes";

  // report.md: the per-variant table, with failing probe ids of the trigger variant.
  std::ifstream md(out / "report.md");
  std::string text((std::istreambuf_iterator<char>(md)), {});
  EXPECT_NE(text.find("## Per variant"), std::string::npos);
  EXPECT_NE(text.find("\n| wscale | "), std::string::npos) << text;

  // report.html in a real browser: both variant tables, and ladders of the failing fate.
  if (chromium_binary()) {
    const fs::path scratch = out.string() + "-chromium";
    fs::create_directories(scratch);
    Rendered r = render(out / "report.html", 1000, scratch);
    ASSERT_TRUE(r.error.empty()) << r.error;
    EXPECT_EQ(r.probe["verdict"], j["verdict"]["text"]);
    EXPECT_EQ(r.probe["tables"]["variants"].get<std::size_t>(), j["variants"].size());
    EXPECT_EQ(r.probe["tables"]["bisect-variants"].get<std::size_t>(), b["variants"].size());
    std::size_t lost = 0;
    for (const auto& l : r.probe["ladders"]) lost += l["fate"] == "lost_forward" ? 1 : 0;
    EXPECT_EQ(lost, 2u);
    if (const char* shot = std::getenv("TANDEM_SCREENSHOT_DIR")) {  // docs/ screenshots
      screenshot(out / "report.html", fs::path(shot) / "report-bisect.png", 900, 2000, scratch);
    }
    fs::remove_all(scratch);
  }
  fs::remove_all(out);
  fs::remove(out.string() + ".log");
}

}  // namespace
}  // namespace tandem::testing
