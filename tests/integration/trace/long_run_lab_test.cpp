// Runs of any length and liveness (issue 10, DESIGN.md §7 and §8 "Time is not a limit"), end to end
// in the namespace lab: `tandem trace` in the client namespace, real tandem-agent daemons over
// CurveZMQ, real kernel listeners. The oracle is tcpdump in the server namespace (the probes that
// actually arrived, with their times), the agents' audit logs and the controller's exit code, never
// tandem's own report alone.
//
//   NinetySeconds       a 90 s trace at 10 probes/s: 900 probes, all answered, progress each second
//   ControllerKilled    SIGKILL at 5 s of a 60 s run: the probes stop within 3 s, a new run starts
//   KeyRemoved          the controller's key removed by SIGHUP mid-send: probes stop within 3 s
//   Partition           nft drop of the controller <-> server agent traffic: both sides end, exit 3
//   CtrlC               SIGINT mid-send: sending stops, the bundle covers the probes sent, exit 130
//   Soak                TANDEM_SOAK=1 only: an hour (TANDEM_SOAK_MINUTES) at 5 probes/s, agent RSS flat
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/base/clock.hpp"
#include "controller/lab/lab_agents.hpp"
#include "tests/integration/common/lab_fixture.hpp"
#include "tests/integration/ping/tcpdump_capture.hpp"
#include "tests/integration/trace/scenarios.hpp"

namespace tandem::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using nlohmann::json;

constexpr const char* kTarget = "10.77.2.2:21";
// The probes as they arrive at the server (SYN only, not the SYN-ACKs going back).
constexpr const char* kProbeSyns = "tcp dst port 21 and tcp[tcpflags] == tcp-syn";
constexpr const char* kSynAcks = "tcp src port 21 and tcp[tcpflags] == (tcp-syn|tcp-ack)";

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// One lab with its agents per test: a test that ends a run abnormally must not leave state behind.
class LongRun : public ::testing::Test {
 protected:
  void SetUp() override {
    TANDEM_REQUIRE_LAB();
    root_ = "/tmp/tandem-longrun-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name();
    lab_ = std::make_unique<LabFixture>(kClean);
    ASSERT_TRUE(lab_->ok()) << lab_->error();
    lab::LabAgentsOptions o;
    o.workdir = root_ + "/agents";
    o.agent_binary = std::string(TANDEM_BINARY_DIR) + "/bin/tandem-agent";
    auto a = lab::LabAgents::start(lab_->lab(), o);
    ASSERT_TRUE(a) << a.error().text();
    agents_ = std::move(*a);
  }
  void TearDown() override {
    agents_.reset();
    lab_.reset();
    std::error_code ec;
    if (!HasFailure()) fs::remove_all(root_, ec);
  }

  std::vector<std::string> trace_args(int count, int rate, const std::string& out) const {
    return {"trace",   "--client", agents_->client_address(), "--server", agents_->server_address(),
            "--key",   agents_->controller_key(), "--target", kTarget, "--count", std::to_string(count),
            "--rate",  std::to_string(rate), "--tail", "1", "--out", out, "--force"};
  }

  // `tandem trace` started in the background in the client namespace; its pid once it runs.
  struct Background {
    std::future<Result<lab::ExecResult>> done;
    pid_t pid = 0;
  };
  Background start_trace(const std::vector<std::string>& args, std::chrono::seconds limit = 300s) {
    Background b;
    std::promise<pid_t> started;
    auto pid = started.get_future();
    std::vector<std::string> argv = {LabFixture::tandem_binary()};
    argv.insert(argv.end(), args.begin(), args.end());
    b.done = std::async(std::launch::async, [this, argv, limit, p = std::move(started)]() mutable {
      lab::ExecOptions eo;
      eo.timeout = limit;
      eo.on_start = [&](pid_t child) { p.set_value(child); };
      return lab_->lab().exec_in(lab::Node::client, argv, eo);
    });
    b.pid = pid.get();
    return b;
  }

  // Nanoseconds from `since` to the last frame, or a large negative value with no frames.
  static double last_after_s(const std::vector<TcpdumpCapture::Frame>& frames, Nanos since) {
    Nanos last = 0;
    for (const auto& f : frames) last = std::max(last, f.ts_ns);
    return static_cast<double>(last - since) / 1e9;
  }

  std::string root_;
  std::unique_ptr<LabFixture> lab_;
  std::unique_ptr<lab::LabAgents> agents_;
};

// --- a 90 s trace at 10 probes/s ---------------------------------------------------------------

TEST_F(LongRun, NinetySecondsAtTenPerSecondCompletesWithBothCaptures) {
  TcpdumpCapture syns(lab_->server_ns(), root_ + "/syn.pcap", kProbeSyns);
  TcpdumpCapture synacks(lab_->server_ns(), root_ + "/synack.pcap", kSynAcks);
  ASSERT_TRUE(syns.ok() && synacks.ok()) << "tcpdump did not start";
  std::string out = root_ + "/bundle";
  auto r = lab_->run_tandem_in_client(trace_args(900, 10, out), 180s);
  auto in = syns.stop_and_read();
  auto back = synacks.stop_and_read();
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;

  // The oracle: 900 probes reached the server and it answered each one.
  EXPECT_EQ(in.size(), 900u);
  EXPECT_EQ(back.size(), 900u);
  json j = json::parse(read_text(out + "/report.json"), nullptr, false);
  ASSERT_TRUE(j.is_object()) << r.err;
  EXPECT_EQ(j["summary"]["probes"], 900);
  EXPECT_EQ(j["summary"]["fates"]["answered"], 900) << j["summary"].dump();
  EXPECT_EQ(j["verdict"]["code"], "clean");
  for (const char* f : {"client.pcapng", "server.pcapng"}) {
    std::error_code ec;
    EXPECT_GT(fs::file_size(out + "/" + f, ec), 900u * 3 * 32) << f;  // SYN, SYN-ACK, RST per probe
  }
  // Progress at least once a second while sending: count, rate, what each end captured, ETA.
  int lines = 0;
  std::istringstream err(r.err);
  for (std::string line; std::getline(err, line);) {
    if (line.find("[trace] send ") == 0 && line.find("/s, captured client ") != std::string::npos &&
        line.find(" server ") != std::string::npos && line.find("ETA") != std::string::npos)
      ++lines;
  }
  EXPECT_GE(lines, 85) << r.err;
}

// --- the controller dies -----------------------------------------------------------------------

TEST_F(LongRun, ControllerKilledStopsSendingWithinThreeSecondsAndFreesTheAgents) {
  TcpdumpCapture syns(lab_->server_ns(), root_ + "/syn.pcap", kProbeSyns);
  ASSERT_TRUE(syns.ok());
  auto bg = start_trace(trace_args(600, 10, root_ + "/killed"));
  ASSERT_GT(bg.pid, 0);
  std::this_thread::sleep_for(5s);
  Nanos killed = realtime_ns();
  ASSERT_EQ(::kill(bg.pid, SIGKILL), 0);
  auto res = bg.done.get();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->exit_code, 128 + SIGKILL);
  // Watch past the 3 s limit before judging.
  std::this_thread::sleep_for(3500ms);
  auto frames = syns.stop_and_read();
  EXPECT_GE(frames.size(), 40u) << "the run was not sending before the kill";
  double after = last_after_s(frames, killed);
  EXPECT_LE(after, 3.0) << "probes kept arriving " << after << " s after the controller died";
  std::cout << "[ measured ] last probe " << after << " s after SIGKILL, " << frames.size() << " probes\n";
  EXPECT_NE(read_text(agents_->client_audit_log()).find("while sending"), std::string::npos);

  // Both leases are gone: a new controller run starts at once and completes.
  auto again = lab_->run_tandem_in_client(trace_args(20, 100, root_ + "/again"), 60s);
  EXPECT_EQ(again.exit_code, 0) << again.out << again.err;
}

// --- the operator removes the controller's key ---------------------------------------------------

TEST_F(LongRun, KeyRemovedBySighupStopsSendingWithinThreeSeconds) {
  TcpdumpCapture syns(lab_->server_ns(), root_ + "/syn.pcap", kProbeSyns);
  ASSERT_TRUE(syns.ok());
  auto bg = start_trace(trace_args(600, 10, root_ + "/removed"));
  std::this_thread::sleep_for(4s);
  // Another key instead of the controller's (a policy with no key at all is refused on reload).
  std::string policy_path = agents_->workdir() + "/client-policy.toml";
  std::string policy = read_text(policy_path);
  std::string agent_pub = agents_->client_address().substr(agents_->client_address().find('#') + 1);
  const std::string keys = "keys = [\"";  // the lab policy lists exactly the controller's key
  auto at = policy.find(keys);
  ASSERT_NE(at, std::string::npos) << policy;
  at += keys.size();
  policy.replace(at, policy.find('"', at) - at, agent_pub);
  {
    std::ofstream f(policy_path, std::ios::trunc);
    f << policy;
  }
  Nanos hup = realtime_ns();
  ASSERT_EQ(::kill(agents_->client_pid(), SIGHUP), 0);
  auto res = bg.done.get();
  ASSERT_TRUE(res);
  double exited = static_cast<double>(realtime_ns() - hup) / 1e9;
  EXPECT_EQ(res->exit_code, 3) << res->err;
  EXPECT_NE(res->err.find("client agent"), std::string::npos) << res->err;
  EXPECT_LE(exited, 10.0) << res->err;
  std::this_thread::sleep_for(3500ms - std::chrono::milliseconds(static_cast<int>(std::min(exited, 3.5) * 1000)));
  auto frames = syns.stop_and_read();
  EXPECT_GE(frames.size(), 30u);
  double after = last_after_s(frames, hup);
  EXPECT_LE(after, 3.0) << "probes kept arriving " << after << " s after the key was removed";
  std::cout << "[ measured ] last probe " << after << " s after SIGHUP; controller exit after " << exited << " s\n";
  EXPECT_NE(read_text(agents_->client_audit_log()).find("controller key removed from the allow list"), std::string::npos);
}

// --- a partition between the controller and the server agent -------------------------------------

TEST_F(LongRun, PartitionEndsTheRunOnBothSidesAndNamesTheAgent) {
  auto bg = start_trace(trace_args(600, 10, root_ + "/partition"));
  std::this_thread::sleep_for(4s);
  std::string rules = root_ + "/partition.nft";
  {
    std::ofstream f(rules);
    f << "table inet tdpartition {\n  chain forw {\n    type filter hook forward priority -10;\n"
         "    tcp dport 7070 drop\n    tcp sport 7070 drop\n  }\n}\n";
  }
  auto nft = lab_->run_in(lab::Node::middlebox, {"nft", "-f", rules});
  ASSERT_EQ(nft.exit_code, 0) << nft.err;
  Nanos cut = realtime_ns();
  auto res = bg.done.get();
  ASSERT_TRUE(res);
  double exited = static_cast<double>(realtime_ns() - cut) / 1e9;
  EXPECT_EQ(res->exit_code, 3) << res->err;
  EXPECT_NE(res->err.find("server agent"), std::string::npos) << res->err;
  EXPECT_NE(res->err.find("10.77.2.2:7070"), std::string::npos) << res->err;
  EXPECT_LE(exited, 10.0) << res->err;
  std::cout << "[ measured ] controller exit 3 after " << exited << " s of partition\n";
  // The client agent's run was ended by the controller, the server agent's by its own lease.
  std::this_thread::sleep_for(4s);
  std::string client_audit = read_text(agents_->client_audit_log());
  std::string server_audit = read_text(agents_->server_audit_log());
  EXPECT_NE(client_audit.find("run_ended"), std::string::npos) << client_audit;
  EXPECT_NE(server_audit.find("lease_expired"), std::string::npos) << server_audit;
  EXPECT_NE(server_audit.find("controller silent"), std::string::npos) << server_audit;
}

// --- Ctrl-C -------------------------------------------------------------------------------------

TEST_F(LongRun, CtrlCStopsSendingAndWritesTheBundleOfWhatWasSent) {
  TcpdumpCapture syns(lab_->server_ns(), root_ + "/syn.pcap", kProbeSyns);
  ASSERT_TRUE(syns.ok());
  std::string out = root_ + "/interrupted";
  auto bg = start_trace(trace_args(600, 10, out));
  std::this_thread::sleep_for(4s);
  Nanos sigint = realtime_ns();
  ASSERT_EQ(::kill(bg.pid, SIGINT), 0);
  auto res = bg.done.get();
  ASSERT_TRUE(res);
  double exited = static_cast<double>(realtime_ns() - sigint) / 1e9;
  EXPECT_EQ(res->exit_code, 130) << res->err;
  EXPECT_LE(exited, 10.0) << res->err;
  auto frames = syns.stop_and_read();
  EXPECT_LE(last_after_s(frames, sigint), 1.0);
  // The bundle covers exactly the probes that went out, all answered (the path is clean).
  json j = json::parse(read_text(out + "/report.json"), nullptr, false);
  ASSERT_TRUE(j.is_object()) << res->err;
  EXPECT_EQ(j["summary"]["probes"].get<std::size_t>(), frames.size()) << j["summary"].dump();
  EXPECT_EQ(j["summary"]["fates"]["answered"].get<std::size_t>(), frames.size()) << j["summary"].dump();
  EXPECT_GE(frames.size(), 30u);
  EXPECT_LT(frames.size(), 100u);
  std::cout << "[ measured ] Ctrl-C: " << frames.size() << " probes in the bundle, exit after " << exited << " s\n";
}

// --- soak (TANDEM_SOAK=1) ------------------------------------------------------------------------

std::uint64_t rss_kib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtoull(line.c_str() + 6, nullptr, 10);
  }
  return 0;
}

TEST_F(LongRun, SoakFivePerSecondRssFlat) {
  const char* soak = std::getenv("TANDEM_SOAK");
  if (!soak || std::string(soak) != "1") GTEST_SKIP() << "set TANDEM_SOAK=1 to run the soak (TANDEM_SOAK_MINUTES, default 60)";
  int minutes = 60;
  if (const char* m = std::getenv("TANDEM_SOAK_MINUTES")) minutes = std::max(1, std::atoi(m));
  const int count = minutes * 60 * 5;
  std::string out = root_ + "/soak";
  auto bg = start_trace(trace_args(count, 5, out), std::chrono::seconds(minutes * 60 + 180));
  std::vector<std::pair<std::uint64_t, std::uint64_t>> samples;  // client, server KiB
  while (bg.done.wait_for(10s) != std::future_status::ready) {
    samples.emplace_back(rss_kib(agents_->client_pid()), rss_kib(agents_->server_pid()));
  }
  auto res = bg.done.get();
  ASSERT_TRUE(res);
  ASSERT_EQ(res->exit_code, 0) << res->err.substr(res->err.size() > 4000 ? res->err.size() - 4000 : 0);
  json j = json::parse(read_text(out + "/report.json"), nullptr, false);
  ASSERT_TRUE(j.is_object());
  EXPECT_EQ(j["summary"]["fates"]["answered"], count) << j["summary"].dump();
  ASSERT_GE(samples.size(), 6u);
  // Flat: after the first minute (libpcap ring, sockets), no growth beyond 4 MiB on either agent.
  std::size_t warm = std::min<std::size_t>(6, samples.size() - 1);
  std::uint64_t c0 = samples[warm].first, s0 = samples[warm].second, cmax = 0, smax = 0;
  for (std::size_t i = warm; i < samples.size(); ++i) {
    cmax = std::max(cmax, samples[i].first);
    smax = std::max(smax, samples[i].second);
  }
  std::cout << "[ measured ] soak " << minutes << " min, " << count << " probes at 5/s: client agent RSS "
            << samples.front().first << " -> " << c0 << " (1 min) -> max " << cmax << " -> last " << samples.back().first
            << " KiB; server agent RSS " << samples.front().second << " -> " << s0 << " -> max " << smax << " -> last "
            << samples.back().second << " KiB; client.pcapng " << fs::file_size(out + "/client.pcapng") << " bytes\n";
  EXPECT_LE(cmax, c0 + 4096);
  EXPECT_LE(smax, s0 + 4096);
}

}  // namespace
}  // namespace tandem::testing
