// An in-process tandem-agent on an ephemeral loopback port, its audit log, and controller clients.
#pragma once

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "agent/daemon.hpp"
#include "common/transport/agent_address.hpp"
#include "common/transport/controller_client.hpp"

namespace tandem::agent::test {

inline std::filesystem::path make_temp_dir(const std::string& tag) {
  std::random_device rd;
  auto p = std::filesystem::temp_directory_path() / ("tandem-agent-" + tag + "-" + std::to_string(getpid()) + "-" +
                                                     std::to_string(rd()));
  std::filesystem::create_directories(p);
  return p;
}

// The audit file rendered one line per JSON object as "audit <event> key=<key> <detail>", so the
// tests can match on what a line says; a line that is not one JSON object renders as
// "NOT-JSON <line>" (and so matches nothing the tests look for).
inline std::string render_audit(const std::string& raw) {
  std::string out;
  std::istringstream lines(raw);
  for (std::string line; std::getline(lines, line);) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("event")) {
      out += "NOT-JSON " + line + "\n";
      continue;
    }
    out += "audit " + j.value("event", std::string()) + " key=" + j.value("key", std::string("-"));
    if (j.contains("detail")) out += " " + j.value("detail", std::string());
    for (const auto& [k, v] : j.items())
      if (k != "time" && k != "event" && k != "key" && k != "detail") out += " " + k + "=" + v.dump();
    out += "\n";
  }
  return out;
}

inline bool have_raw() { return geteuid() == 0; }

class AgentFixture : public ::testing::Test {
 protected:
  // Policy for the tests: two controller keys, loopback allowed, 1000 pps.
  virtual void tune(Policy&) {}

  void SetUp() override {
    dir_ = make_temp_dir("it");
    agent_keys_ = *transport::CurveKeypair::generate();
    ctl_a_ = *transport::CurveKeypair::generate();
    ctl_b_ = *transport::CurveKeypair::generate();
    Policy p;
    p.agent_id = "test-agent";
    p.controller_keys = {ctl_a_.public_z85, ctl_b_.public_z85};
    p.send_enabled = true;
    p.destinations = {*Cidr::parse("127.0.0.0/8")};
    p.max_rate_pps = 1000;
    p.max_packets = 1000;
    p.max_duration_s = 60;
    p.idle_timeout_s = 15;
    tune(p);
    audit_path_ = dir_ / "audit.log";
    DaemonOptions o;
    o.listen = "tcp://127.0.0.1:*";
    o.keypair = agent_keys_;
    o.policy = p;
    o.data_dir = dir_ / "data";
    o.audit = *Audit::open(audit_path_.string(), false);
    o.reload_policy = [this]() -> Result<Policy> {
      std::lock_guard lock(reload_mu_);
      return next_policy_;
    };
    next_policy_ = p;
    auto d = Daemon::start(std::move(o));
    ASSERT_TRUE(d) << d.error().text();
    daemon_ = std::move(d).value();
    thread_ = std::thread([this] { status_ = daemon_->run(stop_, &reload_); });
  }

  void TearDown() override {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    daemon_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  transport::AgentAddress address() const {
    return *transport::parse_agent_address(daemon_->endpoint() + "#" + agent_keys_.public_z85);
  }

  std::unique_ptr<transport::ControllerClient> client(const transport::CurveKeypair& keys,
                                                      std::chrono::milliseconds timeout = std::chrono::milliseconds(5000)) {
    transport::ClientOptions o;
    o.agent = address();
    o.keypair = keys;
    o.timeout = timeout;
    auto c = transport::ControllerClient::connect(o);
    EXPECT_TRUE(c) << c.error().text();
    return std::move(c).value();
  }

  // A connected client that has said HELLO.
  std::unique_ptr<transport::ControllerClient> hello_client(const transport::CurveKeypair& keys) {
    auto c = client(keys);
    auto ok = c->request_as<proto::HelloOk>(proto::Hello{1, 1, "test", {}});
    EXPECT_TRUE(ok) << ok.error().text();
    return c;
  }

  // The audit file as written (JSON lines).
  std::string audit_raw() const {
    std::ifstream in(audit_path_);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  std::string audit_text() const { return render_audit(audit_raw()); }


  // Waits up to `timeout` for `needle` to appear in the audit log.
  bool audit_has(const std::string& needle, std::chrono::milliseconds timeout = std::chrono::milliseconds(3000)) const {
    auto end = std::chrono::steady_clock::now() + timeout;
    do {
      if (audit_text().find(needle) != std::string::npos) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    } while (std::chrono::steady_clock::now() < end);
    return false;
  }

  std::size_t data_files() const {
    std::size_t n = 0;
    for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir_ / "data")) ++n;
    return n;
  }

  std::filesystem::path dir_;
  std::filesystem::path audit_path_;
  transport::CurveKeypair agent_keys_, ctl_a_, ctl_b_;
  std::unique_ptr<Daemon> daemon_;
  std::thread thread_;
  // What the next reload (set reload_, as SIGHUP does) reads.
  void set_next_policy(Result<Policy> p) {
    std::lock_guard lock(reload_mu_);
    next_policy_ = std::move(p);
  }

  std::atomic<bool> stop_{false};
  std::atomic<bool> reload_{false};
  std::mutex reload_mu_;
  Result<Policy> next_policy_ = Policy{};
  Status status_ = ok_status();
};

}  // namespace tandem::agent::test
