// The tandem-agent binary's CLI contract: --print-address, exit codes, SIGTERM.
#include <signal.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>

#include "common/transport/agent_address.hpp"
#include "tests/integration/agent/fixture.hpp"

namespace tandem::agent::test {
namespace {

const std::string kAgent = std::string(TANDEM_BINARY_DIR) + "/bin/tandem-agent";

struct Ran {
  int code = -1;
  std::string out;
};

Ran run(const std::string& args) {
  Ran r;
  FILE* p = ::popen((kAgent + " " + args + " 2>&1").c_str(), "r");
  std::array<char, 512> buf{};
  while (std::fgets(buf.data(), buf.size(), p)) r.out += buf.data();
  int st = ::pclose(p);
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

class AgentCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = make_temp_dir("cli");
    auto kp = *transport::CurveKeypair::generate();
    ASSERT_TRUE(transport::save_keypair(kp, (dir_ / "agent").string(), false));
    ctl_ = *transport::CurveKeypair::generate();
    ASSERT_TRUE(transport::save_keypair(ctl_, (dir_ / "ctl").string(), false));
    agent_pub_ = kp.public_z85;
    std::ofstream(dir_ / "policy.toml") << "[controllers]\nkey_files = [\"ctl.pub\"]\n[send]\ndestinations = [\"127.0.0.0/8\"]\n";
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  std::string base() const {
    return "--key " + (dir_ / "agent.key").string() + " --policy " + (dir_ / "policy.toml").string() + " --data-dir " +
           (dir_ / "data").string();
  }
  std::filesystem::path dir_;
  transport::CurveKeypair ctl_;
  std::string agent_pub_;
};

TEST_F(AgentCli, PrintAddressGivesTheOneLineAgentAddress) {
  auto r = run("--listen tcp://192.0.2.5:7070 " + base() + " --print-address");
  EXPECT_EQ(r.code, 0) << r.out;
  // The quote-free form: no shell metacharacter, and it names the same key.
  EXPECT_EQ(r.out, "tcp://192.0.2.5:7070/" + transport::z85_key_to_base64url(agent_pub_) + "\n");
  EXPECT_EQ(r.out.find_first_of("#!$&()*<>?;|'\"`\\ {}~^"), std::string::npos) << r.out;
  auto w = run("--listen tcp://0.0.0.0:7070 " + base() + " --print-address");
  EXPECT_EQ(w.code, 1);
  EXPECT_NE(w.out.find("--advertise"), std::string::npos) << w.out;
  auto a = run("--listen tcp://0.0.0.0:7070 " + base() + " --print-address --advertise 2001:db8::5");
  EXPECT_EQ(a.code, 0);
  EXPECT_EQ(a.out, "tcp://[2001:db8::5]:7070/" + transport::z85_key_to_base64url(agent_pub_) + "\n");
}

TEST_F(AgentCli, ConfigErrorsExitOne) {
  std::ofstream(dir_ / "bad.toml") << "[send]\nmax_rate_pps = \"fast\"\n";
  auto r = run("--listen tcp://127.0.0.1:0 --key " + (dir_ / "agent.key").string() + " --policy " +
               (dir_ / "bad.toml").string());
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("send.max_rate_pps"), std::string::npos) << r.out;
  auto nokeys = dir_ / "nokeys.toml";
  std::ofstream(nokeys) << "[send]\nenabled = false\n";
  auto n = run("--listen tcp://127.0.0.1:0 --key " + (dir_ / "agent.key").string() + " --policy " + nokeys.string());
  EXPECT_EQ(n.code, 1);
  EXPECT_NE(n.out.find("no controller key allowed"), std::string::npos) << n.out;
  EXPECT_EQ(run("--listen tcp://127.0.0.1:0 --key /nonexistent.key --policy " + (dir_ / "policy.toml").string()).code, 1);
  EXPECT_EQ(run("--bogus").code, 1);
}

TEST_F(AgentCli, SigtermStopsCleanly) {
  if (!have_raw()) GTEST_SKIP() << "needs root (startup checks CAP_NET_RAW)";
  pid_t pid = ::fork();
  if (pid == 0) {
    std::string key = (dir_ / "agent.key").string(), pol = (dir_ / "policy.toml").string(),
                data = (dir_ / "data").string(), audit = (dir_ / "audit.log").string();
    ::execl(kAgent.c_str(), kAgent.c_str(), "--listen", "tcp://127.0.0.1:*", "--key", key.c_str(), "--policy", pol.c_str(),
            "--data-dir", data.c_str(), "--audit-log", audit.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  // Wait for the start line in the audit log.
  for (int i = 0; i < 200 && !std::filesystem::exists(dir_ / "audit.log"); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ::kill(pid, SIGTERM);
  int st = 0;
  ::waitpid(pid, &st, 0);
  ASSERT_TRUE(WIFEXITED(st));
  EXPECT_EQ(WEXITSTATUS(st), 0);
  std::ifstream in(dir_ / "audit.log");
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = render_audit(ss.str());
  EXPECT_NE(text.find("audit agent_started"), std::string::npos);
  EXPECT_NE(text.find("audit agent_stopped"), std::string::npos);
  EXPECT_EQ(text.find("NOT-JSON"), std::string::npos) << ss.str();
}

// SIGHUP re-reads the policy file and the allow list; a broken file keeps the old policy (audited),
// and the agent keeps serving until SIGTERM.
TEST_F(AgentCli, SighupReloadsThePolicyAndSurvivesABrokenFile) {
  if (!have_raw()) GTEST_SKIP() << "needs root (startup checks CAP_NET_RAW)";
  const auto audit_path = dir_ / "audit.log";
  pid_t pid = ::fork();
  if (pid == 0) {
    std::string key = (dir_ / "agent.key").string(), pol = (dir_ / "policy.toml").string(),
                data = (dir_ / "data").string(), audit = audit_path.string();
    ::execl(kAgent.c_str(), kAgent.c_str(), "--listen", "tcp://127.0.0.1:*", "--key", key.c_str(), "--policy", pol.c_str(),
            "--data-dir", data.c_str(), "--audit-log", audit.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  auto audit_has = [&](const std::string& needle) {
    for (int i = 0; i < 250; ++i) {
      std::ifstream in(audit_path);
      std::stringstream ss;
      ss << in.rdbuf();
      if (render_audit(ss.str()).find(needle) != std::string::npos) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  };
  ASSERT_TRUE(audit_has("audit agent_started")) << "agent did not start";
  std::ofstream(dir_ / "policy.toml") << "[controllers\nkey_files = [\"ctl.pub\"]\n";  // broken TOML
  ::kill(pid, SIGHUP);
  EXPECT_TRUE(audit_has("audit policy_reload_failed"));
  auto other = *transport::CurveKeypair::generate();
  ASSERT_TRUE(transport::save_keypair(other, (dir_ / "other").string(), false));
  std::ofstream(dir_ / "policy.toml") << "[controllers]\nkey_files = [\"ctl.pub\", \"other.pub\"]\n"
                                         "[send]\ndestinations = [\"127.0.0.0/8\"]\n";
  ::kill(pid, SIGHUP);
  EXPECT_TRUE(audit_has("audit policy_reloaded key=- keys=2"));
  ::kill(pid, SIGTERM);
  int st = 0;
  ::waitpid(pid, &st, 0);
  ASSERT_TRUE(WIFEXITED(st));
  EXPECT_EQ(WEXITSTATUS(st), 0);
}

}  // namespace
}  // namespace tandem::agent::test
