// The agent's side of runs of any length and of liveness (issue 10): the capture streams to disk
// while it runs (bounded memory), 3 s of controller silence while a plan sends ends the run whatever
// idle_timeout_s says, and removing the run holder's key (SIGHUP reload) ends its run at once.
// In-process agent over real CurveZMQ on loopback, real raw sockets and libpcap (root only).
#include <chrono>
#include <filesystem>
#include <thread>

#include <gtest/gtest.h>

#include "agent/storage/data_dir.hpp"
#include "tests/integration/agent/fixture.hpp"

namespace tandem::agent::test {
namespace {

using namespace std::chrono_literals;

// Probes to a closed loopback port: the kernel answers each with a RST, so every probe is two
// captured packets.
proto::RunSetup closed_port_run(const std::string& id, std::uint32_t count, std::uint32_t rate) {
  proto::RunSetup s;
  s.run_id = id;
  s.lease_deadline_ns = realtime_ns() + 50'000'000'000;
  s.role = proto::Role::client;
  s.flows = {proto::Flow{"127.0.0.1", "127.0.0.1", proto::L4::tcp, 0, 0, 9}};
  s.plan.count = count;
  s.plan.rate_pps = rate;
  s.plan.seed = 0x5eed;
  s.plan.dport = 9;
  s.plan.dst = "127.0.0.1";
  s.plan.ip_version = 4;
  s.plan.l4 = proto::L4::tcp;
  s.plan.tcp_options = "mss=1460,sack,ts,nop,ws=7";
  s.plan.sport = "random";
  return s;
}

class AgentLease : public AgentFixture {};

TEST_F(AgentLease, CaptureIsWrittenToDiskWhileCapturing) {
  if (!have_raw()) GTEST_SKIP() << "needs root (raw sockets, capture)";
  auto c = hello_client(ctl_a_);
  auto setup = closed_port_run("stream", 1000, 1000);
  ASSERT_TRUE(c->request_as<proto::RunOk>(setup));
  ASSERT_TRUE(c->request_as<proto::CaptureStats>(proto::CaptureStart{}));
  auto report = c->request_as<proto::SendReport>(proto::SendPlan{setup.plan}, 10s);
  ASSERT_TRUE(report) << report.error().text();
  ASSERT_EQ(report->sent, 1000u);
  // 2000 packets of ~100 bytes each: far more than the 64 KiB write buffer, so most of them must
  // already be in the file before CAPTURE_STOP (an in-memory capture would have no file yet).
  auto path = agent::run_file(dir_ / "data", "stream", "client");  // the agent names its own files
  std::uintmax_t size = 0;
  for (int i = 0; i < 50 && size < 128 * 1024; ++i) {
    std::error_code ec;
    size = std::filesystem::file_size(path, ec);
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_GE(size, 128u * 1024) << "capture not streamed to " << path;
  auto stats = c->request_as<proto::CaptureStats>(proto::CaptureStop{200}, 10s);
  ASSERT_TRUE(stats) << stats.error().text();
  EXPECT_GE(stats->received, 2000u);
  EXPECT_EQ(stats->dropped, 0u);
  EXPECT_GT(stats->available_bytes, size);
  EXPECT_EQ(std::filesystem::file_size(path), stats->available_bytes);
  ASSERT_TRUE(c->request_as<proto::RunOk>(proto::RunEnd{}));
  EXPECT_EQ(data_files(), 0u);
}

// The fixture's idle_timeout_s is 15 s; while sending, 3 s of silence is enough to end the run.
TEST_F(AgentLease, SilenceWhileSendingStopsTheProbesWithinThreeSeconds) {
  if (!have_raw()) GTEST_SKIP() << "needs root (raw sockets, capture)";
  auto c = hello_client(ctl_a_);
  auto setup = closed_port_run("silent", 1000, 100);  // 10 s of sending
  ASSERT_TRUE(c->request_as<proto::RunOk>(setup));
  ASSERT_TRUE(c->request_as<proto::CaptureStats>(proto::CaptureStart{}));
  auto t0 = std::chrono::steady_clock::now();
  // The requester waits silently for SEND_REPORT: the lease ends and the report says how far it got.
  auto report = c->request_as<proto::SendReport>(proto::SendPlan{setup.plan}, 12s);
  double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_TRUE(report) << report.error().text();
  EXPECT_LT(waited, 3.5);
  EXPECT_GE(waited, 2.9);
  EXPECT_LT(report->sent, 360u);
  EXPECT_TRUE(audit_has("reason=\"controller silent for 3 s while sending\"")) << audit_text();
  EXPECT_TRUE(audit_has("audit run_ended key=" + ctl_a_.public_z85 + " run=silent")) << audit_text();
  EXPECT_EQ(data_files(), 0u);  // the capture streamed so far is deleted with the run
}

TEST_F(AgentLease, RemovingTheRunHoldersKeyEndsItsRunAtOnce) {
  if (!have_raw()) GTEST_SKIP() << "needs root (raw sockets, capture)";
  auto c = hello_client(ctl_a_);
  auto setup = closed_port_run("removed", 1000, 100);
  ASSERT_TRUE(c->request_as<proto::RunOk>(setup));
  ASSERT_TRUE(c->request_as<proto::CaptureStats>(proto::CaptureStart{}));
  std::thread hup([&] {
    std::this_thread::sleep_for(1s);
    Policy p;
    {
      std::lock_guard lock(reload_mu_);
      p = *next_policy_;
    }
    p.controller_keys = {ctl_b_.public_z85};
    set_next_policy(p);
    reload_ = true;
  });
  auto t0 = std::chrono::steady_clock::now();
  auto report = c->request_as<proto::SendReport>(proto::SendPlan{setup.plan}, 12s);
  double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  hup.join();
  ASSERT_TRUE(report) << report.error().text();
  EXPECT_LT(waited, 1.8);  // 1 s until the reload, then at once
  EXPECT_LT(report->sent, 180u);
  EXPECT_TRUE(audit_has("reason=\"controller key removed from the allow list\"")) << audit_text();
  // The other key can start a run right away.
  auto b = hello_client(ctl_b_);
  EXPECT_TRUE(b->request_as<proto::RunOk>(closed_port_run("next", 10, 100)));
}

}  // namespace
}  // namespace tandem::agent::test
