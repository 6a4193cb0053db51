// `tandem trace` end to end in the namespace lab: the controller runs in the client namespace and
// talks CurveZMQ to real tandem-agent daemons in the client and server namespaces; the probes cross
// a real nftables middlebox to real kernel listeners. One scenario per fate and per finding of
// DESIGN.md §5, over IPv4 and IPv6 (ip.id, ip.df: IPv4 only), asserting on the bundle's report.json.
// Not here: tcp.seq (nftables can set a sequence number but not fix the ack on the way back, so
// the run would not be about that finding; tests/unit/correlate covers seq rewriting with NAT).
//
// Impairments are deterministic (drop every probe, or `numgen inc mod 10 < 3` for exactly 30 %),
// so every count below is exact. Each scenario's lab and agents are shared by its tests (one
// suite); under ctest every test is its own process and brings its own lab up (~0.2 s more).
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "controller/lab/lab.hpp"
#include "controller/lab/lab_agents.hpp"
#include "tests/integration/common/lab_fixture.hpp"
#include "tests/integration/trace/scenarios.hpp"

namespace tandem::testing {
namespace {

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

std::string temp_root() { return "/tmp/tandem-tracetest-" + std::to_string(::getpid()); }

struct TraceLab {
  std::unique_ptr<LabFixture> lab;
  std::unique_ptr<lab::LabAgents> agents;  // declared after lab: stopped before the lab goes down
  std::string error;

  static std::unique_ptr<TraceLab> start(const char* scenario) {
    auto t = std::make_unique<TraceLab>();
    t->lab = std::make_unique<LabFixture>(scenario);
    if (!t->lab->ok()) {
      t->error = "lab: " + t->lab->error();
      return t;
    }
    lab::LabAgentsOptions opts;
    opts.workdir = temp_root() + "/agents-" + t->lab->client_ns();
    opts.agent_binary = std::string(TANDEM_BINARY_DIR) + "/bin/tandem-agent";
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

json read_json(const std::string& path) {
  std::ifstream f(path);
  return json::parse(f, nullptr, /*allow_exceptions=*/false);
}

TraceRun trace(TraceLab& t, const Family& fam, const std::vector<std::string>& extra,
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
  // A test's own --tail replaces the default one.
  if (std::find(extra.begin(), extra.end(), "--tail") != extra.end()) {
    auto at = std::find(args.begin(), args.end(), "--tail");
    args.erase(at, at + 2);
  }
  args.insert(args.end(), extra.begin(), extra.end());
  r.proc = t.lab->run_tandem_in_client(args, std::chrono::seconds(60));
  r.report = read_json(r.dir + "/report.json");
  return r;
}

// Exactly these fates (all others zero), in the summary, the per-probe list and the capture counts.
void expect_fates(const TraceRun& r, const std::map<std::string, int>& want) {
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

void expect_no_findings(const TraceRun& r) {
  EXPECT_TRUE(r.report["findings"].is_array());
  EXPECT_TRUE(r.report["findings"].empty()) << r.report["findings"].dump(2);
}

// The one finding on this (direction, field), with everything it must say.
void expect_finding(const TraceRun& r, const std::string& direction, const std::string& field,
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
void expect_only_findings(const TraceRun& r, const std::set<std::pair<std::string, std::string>>& allowed) {
  for (const auto& f : r.report["findings"]) {
    EXPECT_TRUE(allowed.count({f["direction"].get<std::string>(), f["field"].get<std::string>()}))
        << "unexpected finding " << f.dump();
  }
}

void expect_verdict(const TraceRun& r, const std::string& code, int exit_code) {
  EXPECT_EQ(r.report["verdict"]["code"], code) << r.report["verdict"].dump();
  EXPECT_FALSE(r.report["verdict"]["text"].get<std::string>().empty());
  EXPECT_EQ(r.proc.exit_code, exit_code) << r.log();
}

// A path that answered every probe through one router, both ways.
void expect_all_answered_one_hop(const TraceRun& r) {
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

// Removes the agents' work dirs (keys, audit logs) once the whole binary is done.
class TempRootCleanup : public ::testing::Environment {
 public:
  void TearDown() override {
    std::error_code ec;
    if (!::testing::UnitTest::GetInstance()->Failed()) fs::remove_all(temp_root(), ec);
  }
};
[[maybe_unused]] auto* const kCleanup = ::testing::AddGlobalTestEnvironment(new TempRootCleanup);

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

// --- answered: a clean path ------------------------------------------------------------------

void check_clean(const TraceRun& r) {
  expect_fates(r, {{"answered", kCount}});
  expect_all_answered_one_hop(r);
  expect_no_findings(r);
  expect_verdict(r, "clean", 0);
}

TEST_F(TraceClean, AnsweredIpv4) { check_clean(run(kV4, {"--tcp-options", kOptions})); }
TEST_F(TraceClean, AnsweredIpv6) { check_clean(run(kV6, {"--tcp-options", kOptions})); }

// The bundle of DESIGN.md §5, and merged.pcapng as another tool reads it.
TEST_F(TraceClean, BundleFilesAndMergedPcapngReadableByTshark) {
  auto r = run(kV4);
  ASSERT_EQ(r.proc.exit_code, 0) << r.log();
  for (const char* f : {"report.json", "report.md", "client.pcapng", "server.pcapng", "merged.pcapng"}) {
    std::error_code ec;
    EXPECT_TRUE(fs::is_regular_file(r.dir + "/" + f)) << f;
    EXPECT_GT(fs::file_size(r.dir + "/" + f, ec), 0u) << f;
  }
  std::ifstream md(r.dir + "/report.md");
  std::stringstream mds;
  mds << md.rdbuf();
  EXPECT_NE(mds.str().find("10.77.2.2"), std::string::npos) << mds.str();
  EXPECT_NE(mds.str().find("`clean`"), std::string::npos) << mds.str();

  ProcOutput ts = lab_->lab->run_in(
      lab::Node::client, {"tshark", "-r", r.dir + "/merged.pcapng", "-T", "fields", "-e", "frame.comment"});
  ASSERT_EQ(ts.exit_code, 0) << ts.err;
  // Both ends' copy of each SYN, of each SYN-ACK and of the client kernel's RST to it, commented
  // with its probe and fate (the RST, from the client on the probe's flow, has role "probe");
  // nothing is unmatched on a clean path.
  std::map<std::string, int> comments;
  std::istringstream lines(ts.out);
  int packets = 0, commented = 0;
  for (std::string line; std::getline(lines, line);) {
    ++packets;
    if (line.rfind("probe ", 0) == 0) {
      ++commented;
      comments[line]++;
    } else {
      EXPECT_EQ(line, "unmatched");
    }
  }
  EXPECT_EQ(packets, 6 * kCount) << ts.out;
  EXPECT_EQ(commented, 6 * kCount) << ts.out;
  for (int id = 0; id < kCount; ++id) {
    EXPECT_EQ(comments["probe " + std::to_string(id) + " answered probe"], 4) << id << "\n" << ts.out;
    EXPECT_EQ(comments["probe " + std::to_string(id) + " answered reply"], 2) << id << "\n" << ts.out;
  }
}

// --- lost_forward: exactly 30 % of the SYNs dropped in the middlebox -------------------------

void check_lost_forward(const TraceRun& r) {
  expect_fates(r, {{"answered", 21}, {"lost_forward", 9}});
  // Probes leave in id order and the counter advances only on probes, 30 per run: the loss must be
  // attributed to exactly the probes the middlebox dropped, not just counted right.
  std::set<int> lost;
  for (const auto& p : r.report["probes"]) {
    if (p["fate"] == "lost_forward") lost.insert(p["id"].get<int>());
  }
  EXPECT_EQ(lost, (std::set<int>{0, 1, 2, 10, 11, 12, 20, 21, 22}));
  for (const auto& p : r.report["probes"]) {
    if (p["fate"] == "lost_forward") {
      EXPECT_TRUE(p["reply"].is_null()) << p.dump();
      EXPECT_TRUE(p["rtt_us"].is_null()) << p.dump();
      EXPECT_FALSE(p.contains("forward_hops") && !p["forward_hops"].is_null()) << p.dump();
    } else {
      EXPECT_EQ(p["reply"], "syn_ack") << p.dump();
      EXPECT_EQ(p["forward_hops"], 1) << p.dump();
    }
  }
  // The loss is not a change in transit: the surviving probes arrived as sent.
  expect_no_findings(r);
  expect_verdict(r, "lost_forward", 4);
  EXPECT_NE(r.report["verdict"]["text"].get<std::string>().find("9 of 30"), std::string::npos)
      << r.report["verdict"].dump();
}

TEST_F(TraceLostForward, ExactlyNineOfThirtyIpv4) { check_lost_forward(run(kV4)); }
TEST_F(TraceLostForward, ExactlyNineOfThirtyIpv6) { check_lost_forward(run(kV6)); }

// --- unanswered: the server's input hook drops the SYNs after its capture ----------------------

void check_unanswered(const TraceRun& r) {
  expect_fates(r, {{"unanswered", kCount}});
  for (const auto& p : r.report["probes"]) {
    EXPECT_TRUE(p["reply"].is_null()) << p.dump();
    EXPECT_TRUE(p["rtt_us"].is_null()) << p.dump();
    EXPECT_EQ(p["forward_hops"], 1) << p.dump();
  }
  expect_no_findings(r);
  expect_verdict(r, "unanswered", 4);
}

TEST_F(TraceUnanswered, ServerFirewallIpv4) { check_unanswered(run(kV4)); }
TEST_F(TraceUnanswered, ServerFirewallIpv6) { check_unanswered(run(kV6)); }

// --- reply_lost: the middlebox drops the SYN-ACKs on the way back ------------------------------

void check_reply_lost(const TraceRun& r) {
  expect_fates(r, {{"reply_lost", kCount}});
  for (const auto& p : r.report["probes"]) {
    EXPECT_EQ(p["reply"], "syn_ack") << p.dump();  // what the server sent
    EXPECT_TRUE(p["rtt_us"].is_null()) << p.dump();
    EXPECT_EQ(p["forward_hops"], 1) << p.dump();
  }
  expect_no_findings(r);
  expect_verdict(r, "reply_lost", 4);
}

TEST_F(TraceReplyLost, SynAckDroppedIpv4) { check_reply_lost(run(kV4)); }
TEST_F(TraceReplyLost, SynAckDroppedIpv6) { check_reply_lost(run(kV6)); }

// --- reply_lost with the real server's retransmissions (DESIGN.md §8) --------------------------
// A tail long enough for the first SYN-ACK retransmission (Linux: 1 s): a retransmitted reply is
// counted for its probe, never taken for the answer (no RTT of a second), and the text says so.
void check_reply_lost_retransmitted(const TraceRun& r) {
  expect_fates(r, {{"answered", 21}, {"reply_lost", 9}});
  int with_retx = 0;
  for (const auto& p : r.report["probes"]) {
    if (p["fate"] == "answered") {
      EXPECT_LT(p["rtt_us"].get<std::int64_t>(), 500'000) << p.dump();
      continue;
    }
    ASSERT_TRUE(p.contains("replies")) << p.dump();
    EXPECT_GE(p["replies"]["sent"].get<int>(), 2) << p.dump();
    EXPECT_TRUE(p["rtt_us"].is_null()) << p.dump();
    if (p["replies"]["received"].get<int>() > 0) {
      ++with_retx;
      EXPECT_NE(p["note"].get<std::string>().find("retransmission arrived"), std::string::npos) << p.dump();
    }
  }
  EXPECT_EQ(with_retx, 6) << r.report["probes"].dump();
  expect_verdict(r, "reply_lost", 4);
  EXPECT_NE(r.report["verdict"]["text"].get<std::string>().find("a retransmission of it arrived for 6 of them"),
            std::string::npos)
      << r.report["verdict"].dump();
}

TEST_F(TraceReplyLostRetransmitted, FirstSynAckLostRetransmissionCountedIpv4) {
  check_reply_lost_retransmitted(run(kV4, {"--tail", "2"}));
}
TEST_F(TraceReplyLostRetransmitted, FirstSynAckLostRetransmissionCountedIpv6) {
  check_reply_lost_retransmitted(run(kV6, {"--tail", "2"}));
}

// --- injected: the middlebox answers in the server's name ------------------------------------

void check_injected(const TraceRun& r, const Family& fam) {
  expect_fates(r, {{"injected", kCount}});
  for (const auto& p : r.report["probes"]) {
    EXPECT_EQ(p["reply"], "rst") << p.dump();
    EXPECT_TRUE(p["rtt_us"].is_number()) << p.dump();
    EXPECT_EQ(p["hop"], fam.server) << p.dump();  // the forged RST claims the server's address
  }
  EXPECT_EQ(r.report["capture"]["server"]["received"], 0);  // the server never saw a probe
  expect_no_findings(r);
  expect_verdict(r, "injected", 4);
}

TEST_F(TraceInjected, ForgedRstIpv4) { check_injected(run(kV4), kV4); }
TEST_F(TraceInjected, ForgedRstIpv6) { check_injected(run(kV6), kV6); }

// --- icmp_error: the middlebox rejects with admin-prohibited ----------------------------------

void check_icmp_error(const TraceRun& r, const Family& fam) {
  expect_fates(r, {{"icmp_error", kCount}});
  for (const auto& p : r.report["probes"]) {
    EXPECT_EQ(p["reply"], fam.admin_prohibited) << p.dump();
    EXPECT_EQ(p["hop"], fam.router) << p.dump();
    EXPECT_TRUE(p["rtt_us"].is_number()) << p.dump();
  }
  expect_no_findings(r);
  expect_verdict(r, "icmp_error", 4);
  EXPECT_NE(r.report["verdict"]["text"].get<std::string>().find(fam.router), std::string::npos)
      << r.report["verdict"].dump();
}

TEST_F(TraceIcmpError, AdminProhibitedNamesTheRouterIpv4) { check_icmp_error(run(kV4), kV4); }
TEST_F(TraceIcmpError, AdminProhibitedNamesTheRouterIpv6) { check_icmp_error(run(kV6), kV6); }

// --- findings: fields changed in transit, every probe still answered --------------------------

void check_modified(const TraceRun& r, const std::string& field, const json& sent, const json& received) {
  expect_fates(r, {{"answered", kCount}});
  expect_all_answered_one_hop(r);
  expect_finding(r, "forward", field, sent, received);
  expect_only_findings(r, {{"forward", field}});
  expect_verdict(r, "path_modifies", 4);
}

TEST_F(TraceDscp, EfRewrittenToCs1Ipv4) { check_modified(run(kV4, {"--dscp", "ef"}), "ip.dscp", 46, 8); }
TEST_F(TraceDscp, EfRewrittenToCs1Ipv6) { check_modified(run(kV6, {"--dscp", "ef"}), "ip.dscp", 46, 8); }

TEST_F(TraceMss, ClampedTo1200Ipv4) {
  check_modified(run(kV4, {"--tcp-options", kOptions}), "tcp.option.mss", 1460, 1200);
}
TEST_F(TraceMss, ClampedTo1200Ipv6) {
  check_modified(run(kV6, {"--tcp-options", kOptions}), "tcp.option.mss", 1460, 1200);
}

TEST_F(TraceSack, SackPermittedStrippedIpv4) {
  check_modified(run(kV4, {"--tcp-options", kOptions}), "tcp.option.sack_perm", true, nullptr);
}
TEST_F(TraceSack, SackPermittedStrippedIpv6) {
  check_modified(run(kV6, {"--tcp-options", kOptions}), "tcp.option.sack_perm", true, nullptr);
}

TEST_F(TraceEcn, NotEctRewrittenToCeIpv4) { check_modified(run(kV4), "ip.ecn", 0, 3); }
TEST_F(TraceEcn, NotEctRewrittenToCeIpv6) { check_modified(run(kV6), "ip.ecn", 0, 3); }

// The TTL went up: a finding, and no (negative) hop count.
void check_ttl(const TraceRun& r) {
  expect_fates(r, {{"answered", kCount}});
  expect_finding(r, "forward", "ip.ttl", 64, 200);
  expect_only_findings(r, {{"forward", "ip.ttl"}});
  for (const auto& p : r.report["probes"]) {
    EXPECT_FALSE(p.contains("forward_hops")) << p.dump();
    EXPECT_EQ(p["reverse_hops"], 1) << p.dump();
  }
  expect_verdict(r, "path_modifies", 4);
}
TEST_F(TraceTtl, RaisedTo200Ipv4) { check_ttl(run(kV4)); }
TEST_F(TraceTtl, HopLimitRaisedTo200Ipv6) { check_ttl(run(kV6)); }

// Per-probe values rewritten to one: a single merged finding (`distinct` pairs, one example).
void check_merged(const TraceRun& r, const std::string& field, const json& received) {
  expect_fates(r, {{"answered", kCount}});
  expect_all_answered_one_hop(r);
  expect_only_findings(r, {{"forward", field}});
  ASSERT_EQ(r.report["findings"].size(), 1u) << r.report["findings"].dump(2);
  const auto& f = r.report["findings"][0];
  EXPECT_EQ(f["field"], field);
  EXPECT_EQ(f["received"], received) << f.dump();
  EXPECT_EQ(f["probes"], kCount) << f.dump();
  EXPECT_EQ(f["distinct"], kCount) << f.dump();
  expect_verdict(r, "path_modifies", 4);
}
TEST_F(TraceIpId, RewrittenTo4242Ipv4) { check_merged(run(kV4), "ip.id", 4242); }
TEST_F(TraceTimestamp, TsvalRewrittenIpv4) {
  check_modified(run(kV4, {"--tcp-options", "mss=1460,sack,ts=1000:0,nop,ws=7"}), "tcp.option.timestamp",
                 json{{"tsval", 1000}, {"tsecr", 0}}, json{{"tsval", 7}, {"tsecr", 0}});
}
TEST_F(TraceTimestamp, TsvalRewrittenIpv6) {
  check_modified(run(kV6, {"--tcp-options", "mss=1460,sack,ts=1000:0,nop,ws=7"}), "tcp.option.timestamp",
                 json{{"tsval", 1000}, {"tsecr", 0}}, json{{"tsval", 7}, {"tsecr", 0}});
}

TEST_F(TraceDf, DfClearedIpv4) { check_modified(run(kV4, {"--df"}), "ip.df", true, false); }

TEST_F(TraceWindow, Rewritten1024Ipv4) { check_modified(run(kV4), "tcp.window", 64240, 1024); }
TEST_F(TraceWindow, Rewritten1024Ipv6) { check_modified(run(kV6), "tcp.window", 64240, 1024); }

TEST_F(TraceWscale, ShiftCount7To14Ipv4) {
  check_modified(run(kV4, {"--tcp-options", kOptions}), "tcp.option.wscale", 7, 14);
}
TEST_F(TraceWscale, ShiftCount7To14Ipv6) {
  check_modified(run(kV6, {"--tcp-options", kOptions}), "tcp.option.wscale", 7, 14);
}

TEST_F(TraceUnknownKind, Kind253StrippedIpv4) {
  check_modified(run(kV4, {"--tcp-options", "mss=1460,kind=253:4e46"}), "tcp.option.kind253", "4e46", nullptr);
}
TEST_F(TraceUnknownKind, Kind253StrippedIpv6) {
  check_modified(run(kV6, {"--tcp-options", "mss=1460,kind=253:4e46"}), "tcp.option.kind253", "4e46", nullptr);
}

TEST_F(TraceOrder, MssMovedBehindSackIpv4) {
  check_modified(run(kV4, {"--tcp-options", "mss=1460,sack,nop,nop"}), "tcp.options.order",
                 json::array({"mss", "sack_perm"}), json::array({"sack_perm", "mss"}));
}

void check_corrupt(const TraceRun& r) {
  expect_fates(r, {{"unanswered", kCount}});
  expect_finding(r, "forward", "tcp.option.wscale", 7, 14);
  expect_finding(r, "forward", "tcp.checksum", "valid", "bad");
  expect_only_findings(r, {{"forward", "tcp.option.wscale"}, {"forward", "tcp.checksum"}});
  for (const auto& p : r.report["probes"]) {
    EXPECT_NE(p.value("note", "").find("bad tcp checksum"), std::string::npos) << p.dump();
  }
  expect_verdict(r, "corrupted", 4);
}
TEST_F(TraceCorrupt, RewriteWithoutChecksumFixIsBlamedOnThePathIpv4) {
  check_corrupt(run(kV4, {"--tcp-options", kOptions}));
}
TEST_F(TraceCorrupt, RewriteWithoutChecksumFixIsBlamedOnThePathIpv6) {
  check_corrupt(run(kV6, {"--tcp-options", kOptions}));
}

// Behind a port forward: every probe matched across the DNAT, the rewrite named both ways.
void check_dnat(const TraceRun& r, const std::string& front, const std::string& server) {
  expect_fates(r, {{"answered", kCount}});
  expect_all_answered_one_hop(r);
  expect_finding(r, "forward", "ip.dst", front, server);
  expect_finding(r, "forward", "tcp.dport", 21, 2121);
  expect_finding(r, "reverse", "ip.src", server, front);
  expect_finding(r, "reverse", "tcp.sport", 2121, 21);
  expect_only_findings(r, {{"forward", "ip.dst"}, {"forward", "tcp.dport"}, {"reverse", "ip.src"}, {"reverse", "tcp.sport"}});
  expect_verdict(r, "path_modifies", 4);
}
TEST_F(TraceDnat, PortForwardWithServerTargetIpv4) {
  Family front = kV4;
  front.target = "10.77.1.1:21";
  check_dnat(run(front, {"--server-target", "10.77.2.2:2121"}), "10.77.1.1", "10.77.2.2");
}
TEST_F(TraceDnat, PortForwardWithServerTargetIpv6) {
  Family front = kV6;
  front.target = "[fd77:1::1]:21";
  check_dnat(run(front, {"--server-target", "[fd77:2::2]:2121"}), "fd77:1::1", "fd77:2::2");
}

// The reverse direction: the server's SYN-ACK as sent vs as the client got it.
void check_reply_mss(const TraceRun& r, int server_mss) {
  expect_fates(r, {{"answered", kCount}});
  expect_all_answered_one_hop(r);
  expect_finding(r, "reverse", "tcp.option.mss", server_mss, 1000);
  expect_only_findings(r, {{"reverse", "tcp.option.mss"}});
  expect_verdict(r, "path_modifies", 4);
}
TEST_F(TraceReplyMss, SynAckClampedTo1000Ipv4) { check_reply_mss(run(kV4, {"--tcp-options", kOptions}), 1460); }
TEST_F(TraceReplyMss, SynAckClampedTo1000Ipv6) { check_reply_mss(run(kV6, {"--tcp-options", kOptions}), 1440); }

// --- NAT: matching survives the address rewrite ----------------------------------------------

void check_nat(const TraceRun& r, const Family& fam) {
  // Every probe matched to its own packet at the server: nothing unknown, nothing ambiguous.
  expect_fates(r, {{"answered", kCount}});
  expect_all_answered_one_hop(r);
  expect_finding(r, "forward", "ip.src", fam.client, fam.nat_source);
  expect_finding(r, "reverse", "ip.dst", fam.nat_source, fam.client);
  // Masquerade may also move source ports; nothing else may be reported.
  expect_only_findings(
      r, {{"forward", "ip.src"}, {"reverse", "ip.dst"}, {"forward", "tcp.sport"}, {"reverse", "tcp.dport"}});
  expect_verdict(r, "path_modifies", 4);
}

TEST_F(TraceNat, MasqueradeMatchedExactlyIpv4) { check_nat(run(kV4, {"--tcp-options", kOptions}), kV4); }
TEST_F(TraceNat, MasqueradeMatchedExactlyIpv6) { check_nat(run(kV6, {"--tcp-options", kOptions}), kV6); }

// --- the agent refuses a controller it does not know ------------------------------------------
// (the protocol-level refusal is tested in tests/integration/agent/; this is what `tandem trace`
// makes of it.)

TEST_F(TraceClean, UnknownControllerKeyIsRefused) {
  std::string prefix = temp_root() + "/stranger-" + lab_->lab->client_ns();
  ProcOutput kg = lab_->lab->run_tandem_in(lab::Node::client, {"keygen", "-o", prefix, "--force"});
  ASSERT_EQ(kg.exit_code, 0) << kg.out << kg.err;
  std::ifstream pubf(prefix + ".pub");
  std::string stranger_pub;
  for (std::string line; std::getline(pubf, line);) {
    if (!line.empty() && line[0] != '#') stranger_pub = line;
  }
  ASSERT_FALSE(stranger_pub.empty());

  auto r = trace(*lab_, kV4, {}, prefix + ".key");
  EXPECT_EQ(r.proc.exit_code, 3) << r.log();
  std::string msg = r.proc.out + r.proc.err;
  EXPECT_NE(msg.find("client agent"), std::string::npos) << msg;
  EXPECT_NE(msg.find("tcp://10.77.1.2:7070"), std::string::npos) << msg;
  EXPECT_NE(msg.find("no reply"), std::string::npos) << msg;
  EXPECT_NE(msg.find("wrong key"), std::string::npos) << msg;
  EXPECT_FALSE(fs::exists(r.dir + "/report.json"));

  std::ifstream audit(lab_->agents->workdir() + "/client-audit.log");
  std::stringstream as;
  as << audit.rdbuf();
  EXPECT_NE(as.str().find("key_refused key=" + stranger_pub), std::string::npos) << as.str();
}

}  // namespace
}  // namespace tandem::testing
