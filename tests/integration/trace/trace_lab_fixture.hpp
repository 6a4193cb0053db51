// The trace lab's fixture, shared by its test files: a lab with real agents per scenario, one
// `tandem trace` run in it, and the assertions on its report.json (see trace_lab_test.cpp).
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "controller/lab/lab.hpp"
#include "controller/lab/lab_agents.hpp"
#include "tests/integration/common/lab_fixture.hpp"
#include "tests/integration/trace/scenarios.hpp"
#include "tests/unit/report/browser.hpp"

namespace tandem::testing {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr int kCount = 30;

constexpr const char* kOptions = "mss=1460,sack,ts,nop,ws=7";

// ---------------------------------------------------------------------------------------------
// Addresses per family.

struct Family {
  bool v6;
  std::string target;            // --target
  std::string client, server;    // the two ends' addresses
  std::string router;            // the middlebox on the client side (sends the ICMP errors)
  std::string nat_source;        // the middlebox on the server side (masquerade address)
  std::string admin_prohibited;  // reply kind of an admin-prohibited ICMP error
};

const Family kV4{false, "10.77.2.2:21", "10.77.1.2", "10.77.2.2", "10.77.1.1", "10.77.2.1", "icmp:3/13"};
const Family kV6{true, "[fd77:2::2]:21", "fd77:1::2", "fd77:2::2", "fd77:1::1", "fd77:2::1", "icmp:1/1"};

// ---------------------------------------------------------------------------------------------
// A lab with agents, and one `tandem trace` run in it.

inline std::string temp_root() { return "/tmp/tandem-tracetest-" + std::to_string(::getpid()); }

struct TraceLab {
  std::unique_ptr<LabFixture> lab;
  std::unique_ptr<lab::LabAgents> agents;  // declared after lab: stopped before the lab goes down
  std::string error;

  // unprivileged: both agents run as uid 65534 with CAP_NET_RAW only (LabAgentsOptions).
  static std::unique_ptr<TraceLab> start(const char* scenario, bool unprivileged = false) {
    auto t = std::make_unique<TraceLab>();
    t->lab = std::make_unique<LabFixture>(scenario);
    if (!t->lab->ok()) {
      t->error = "lab: " + t->lab->error();
      return t;
    }
    lab::LabAgentsOptions opts;
    opts.workdir = temp_root() + "/agents-" + t->lab->client_ns();
    opts.agent_binary = std::string(TANDEM_BINARY_DIR) + "/bin/tandem-agent";
    opts.unprivileged = unprivileged;
    auto a = lab::LabAgents::start(t->lab->lab(), opts);
    if (!a) {
      t->error = "agents: " + a.error().text();
      return t;
    }
    t->agents = std::move(*a);
    return t;
  }
  bool ok() const { return agents != nullptr; }
};

struct TraceRun {
  ProcOutput proc;
  json report;
  std::string dir;
  std::string log() const { return "exit " + std::to_string(proc.exit_code) + "\n" + proc.out + proc.err; }
};

inline json read_json(const std::string& path) {
  std::ifstream f(path);
  return json::parse(f, nullptr, /*allow_exceptions=*/false);
}

inline TraceRun trace(TraceLab& t, const Family& fam, const std::vector<std::string>& extra,
               const std::string& key = {}) {
  TraceRun r;
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  r.dir = temp_root() + "/" + info->test_suite_name() + "." + info->name();
  std::error_code ec;
  fs::remove_all(r.dir, ec);
  // clang-format off
  std::vector<std::string> args = {"trace",
                                   "--client", t.agents->client_address(),
                                   "--server", t.agents->server_address(),
                                   "--key",    key.empty() ? t.agents->controller_key() : key,
                                   "--target", fam.target,
                                   "--count",  std::to_string(kCount),
                                   "--rate",   "300",
                                   "--tail",   "0.5",
                                   "--out",    r.dir,
                                   "--force",  "-q"};
  // clang-format on
  // A test's own --count, --rate or --tail replaces the default one.
  for (const char* option : {"--count", "--rate", "--tail"}) {
    if (std::find(extra.begin(), extra.end(), option) != extra.end()) {
      auto at = std::find(args.begin(), args.end(), option);
      args.erase(at, at + 2);
    }
  }
  args.insert(args.end(), extra.begin(), extra.end());
  r.proc = t.lab->run_tandem_in_client(args, std::chrono::seconds(60));
  r.report = read_json(r.dir + "/report.json");
  return r;
}

// Exactly these fates (all others zero), in the summary, the per-probe list and the capture counts.
inline void expect_fates(const TraceRun& r, const std::map<std::string, int>& want) {
  const json& j = r.report;
  ASSERT_TRUE(j.is_object()) << "no report.json\n" << r.log();
  EXPECT_EQ(j["tool"], "tandem");
  EXPECT_EQ(j["mode"], "trace");
  EXPECT_EQ(j["summary"]["probes"], kCount) << r.log();
  std::map<std::string, int> per_probe;
  ASSERT_EQ(j["probes"].size(), static_cast<std::size_t>(kCount)) << j["summary"].dump();
  for (const auto& p : j["probes"]) per_probe[p["fate"].get<std::string>()]++;
  for (const auto& [fate, n] : j["summary"]["fates"].items()) {
    int expected = want.count(fate) ? want.at(fate) : 0;
    EXPECT_EQ(n.get<int>(), expected) << "fate " << fate << "\n" << j["summary"].dump() << "\n" << r.log();
    EXPECT_EQ(per_probe[fate], expected) << "per-probe fate " << fate;
  }
  for (const auto& [fate, n] : want) EXPECT_TRUE(j["summary"]["fates"].contains(fate)) << fate;
  // Neither capture lost anything: the fates above are decided, not guessed.
  EXPECT_EQ(j["capture"]["client"]["dropped"], 0);
  EXPECT_EQ(j["capture"]["server"]["dropped"], 0);
  EXPECT_EQ(j["capture"]["ambiguous"], 0);
}

inline void expect_no_findings(const TraceRun& r) {
  EXPECT_TRUE(r.report["findings"].is_array());
  EXPECT_TRUE(r.report["findings"].empty()) << r.report["findings"].dump(2);
}

// The one finding on this (direction, field), with everything it must say.
inline void expect_finding(const TraceRun& r, const std::string& direction, const std::string& field,
                    const json& sent, const json& received) {
  const json* found = nullptr;
  for (const auto& f : r.report["findings"]) {
    if (f["direction"] == direction && f["field"] == field) {
      EXPECT_EQ(found, nullptr) << "two findings for " << direction << " " << field;
      found = &f;
    }
  }
  ASSERT_NE(found, nullptr) << direction << " " << field << " not in " << r.report["findings"].dump(2);
  EXPECT_EQ((*found)["code"], "modified");
  EXPECT_EQ((*found)["sent"], sent) << found->dump();
  EXPECT_EQ((*found)["received"], received) << found->dump();
  EXPECT_EQ((*found)["probes"], kCount) << found->dump();
}

// Every finding is one of these fields (whatever else the path does would be a false finding).
inline void expect_only_findings(const TraceRun& r, const std::set<std::pair<std::string, std::string>>& allowed) {
  for (const auto& f : r.report["findings"]) {
    EXPECT_TRUE(allowed.count({f["direction"].get<std::string>(), f["field"].get<std::string>()}))
        << "unexpected finding " << f.dump();
  }
}

inline void expect_verdict(const TraceRun& r, const std::string& code, int exit_code) {
  EXPECT_EQ(r.report["verdict"]["code"], code) << r.report["verdict"].dump();
  EXPECT_FALSE(r.report["verdict"]["text"].get<std::string>().empty());
  EXPECT_EQ(r.proc.exit_code, exit_code) << r.log();
}

// A path that answered every probe through one router, both ways.
inline void expect_all_answered_one_hop(const TraceRun& r) {
  for (const auto& p : r.report["probes"]) {
    EXPECT_EQ(p["fate"], "answered") << p.dump();
    EXPECT_EQ(p["reply"], "syn_ack") << p.dump();
    EXPECT_TRUE(p["rtt_us"].is_number()) << p.dump();
    EXPECT_EQ(p["forward_hops"], 1) << p.dump();
    EXPECT_EQ(p["reverse_hops"], 1) << p.dump();
  }
}

// ---------------------------------------------------------------------------------------------
// One suite per scenario, sharing its lab and agents.

template <const char* Scenario>
class ScenarioLab : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (lab_skip_reason()) return;
    lab_ = TraceLab::start(Scenario);
  }
  static void TearDownTestSuite() { lab_.reset(); }
  void SetUp() override {
    TANDEM_REQUIRE_LAB();
    ASSERT_TRUE(lab_ && lab_->ok()) << (lab_ ? lab_->error : "no lab");
  }
  // The bundle is evidence for a failing test; a passing one leaves nothing behind.
  void TearDown() override {
    if (!HasFailure()) {
      const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
      std::error_code ec;
      fs::remove_all(temp_root() + "/" + info->test_suite_name() + "." + info->name(), ec);
    }
  }
  TraceRun run(const Family& fam, const std::vector<std::string>& extra = {}) {
    return trace(*lab_, fam, extra);
  }
  static inline std::unique_ptr<TraceLab> lab_;
};


using TraceClean = ScenarioLab<kClean>;
using TraceLostForward = ScenarioLab<kLostForward>;
using TraceUnanswered = ScenarioLab<kUnanswered>;
using TraceReplyLost = ScenarioLab<kReplyLost>;
using TraceReplyLostRetransmitted = ScenarioLab<kReplyLostRetransmitted>;
using TraceInjected = ScenarioLab<kInjected>;
using TraceIcmpError = ScenarioLab<kIcmpError>;
using TraceDscp = ScenarioLab<kDscp>;
using TraceMss = ScenarioLab<kMss>;
using TraceSack = ScenarioLab<kSack>;
using TraceNat = ScenarioLab<kNat>;
using TraceEcn = ScenarioLab<kEcn>;
using TraceTtl = ScenarioLab<kTtl>;
using TraceIpId = ScenarioLab<kIpId>;
using TraceDf = ScenarioLab<kDf>;
using TraceWindow = ScenarioLab<kWindow>;
using TraceWscale = ScenarioLab<kWscale>;
using TraceTimestamp = ScenarioLab<kTimestamp>;
using TraceUnknownKind = ScenarioLab<kUnknownKind>;
using TraceOrder = ScenarioLab<kOrder>;
using TraceReplyMss = ScenarioLab<kReplyMss>;
using TraceCorrupt = ScenarioLab<kCorrupt>;
using TraceDnat = ScenarioLab<kDnat>;
using TraceInjectedSeen = ScenarioLab<kInjectedSeen>;

}  // namespace tandem::testing
