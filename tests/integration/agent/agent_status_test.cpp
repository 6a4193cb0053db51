// `tandem agent-status` (the real binary) against an in-process agent over CurveZMQ on loopback:
// an allowed key gets identity, state, policy and clock; a key the agent does not allow, a bad AGENT
// line and a missing key file get one line and their exit codes.
#include <sys/wait.h>

#include <array>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "common/base/clock.hpp"

#include "tests/integration/agent/fixture.hpp"

namespace tandem::agent::test {
namespace {

struct Ran {
  int code = -1;
  std::string out;
};

Ran tandem(const std::string& args) {
  Ran r;
  FILE* p = ::popen((std::string(TANDEM_BINARY_DIR) + "/bin/tandem " + args + " 2>&1").c_str(), "r");
  std::array<char, 512> buf{};
  while (std::fgets(buf.data(), buf.size(), p)) r.out += buf.data();
  int st = ::pclose(p);
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

class AgentStatus : public AgentFixture {
 protected:
  std::string line() const { return "'" + address().to_string() + "'"; }
  std::string key_of(const transport::CurveKeypair& kp, const std::string& name) {
    const auto prefix = (dir_ / name).string();
    EXPECT_TRUE(transport::save_keypair(kp, prefix, true));
    return prefix + ".key";
  }
};

TEST_F(AgentStatus, AllowedKeySeesIdentityStatePolicyAndClock) {
  auto r = tandem("agent-status " + line() + " --key " + key_of(ctl_a_, "a"));
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("reachable, our key accepted"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("test-agent"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("state:    idle"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("policy:   send: to 127.0.0.0/8"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("round trip"), std::string::npos) << r.out;
  EXPECT_TRUE(audit_has("audit hello key=" + ctl_a_.public_z85));

  auto j = tandem("agent-status " + line() + " --key " + key_of(ctl_a_, "a") + " --json");
  ASSERT_EQ(j.code, 0) << j.out;
  auto doc = nlohmann::json::parse(j.out, nullptr, false);
  ASSERT_TRUE(doc.is_array()) << j.out;
  ASSERT_EQ(doc.size(), 1u);
  EXPECT_EQ(doc[0]["ok"], true);
  EXPECT_EQ(doc[0]["agent_id"], "test-agent");
  EXPECT_EQ(doc[0]["state"], "idle");
  EXPECT_TRUE(doc[0]["clock"].is_object()) << j.out;
}

TEST_F(AgentStatus, BusyAgentSaysSo) {
  auto holder = hello_client(ctl_b_);
  proto::RunSetup setup;
  setup.run_id = "busy-test";
  setup.role = proto::Role::client;
  setup.lease_deadline_ns = realtime_ns() + 30'000'000'000;
  setup.flows = {proto::Flow{"127.0.0.1", "127.0.0.1", proto::L4::tcp, 0, 0, 9}};
  auto ok = holder->request_as<proto::RunOk>(setup);
  ASSERT_TRUE(ok) << ok.error().text();
  auto r = tandem("agent-status " + line() + " --key " + key_of(ctl_a_, "a"));
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("busy: another controller holds a run"), std::string::npos) << r.out;
}

TEST_F(AgentStatus, UnknownKeyAndBadInputAreOneLineErrors) {
  auto stranger = *transport::CurveKeypair::generate();
  auto r = tandem("agent-status " + line() + " --key " + key_of(stranger, "s") + " --timeout 1");
  EXPECT_EQ(r.code, 3) << r.out;
  EXPECT_NE(r.out.find("NOT OK"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("wrong key or agent down?"), std::string::npos) << r.out;
  EXPECT_TRUE(audit_has("audit key_refused key=" + stranger.public_z85));

  auto bad = tandem("agent-status tcp://127.0.0.1:7070 --key " + key_of(ctl_a_, "a"));  // no #KEY
  EXPECT_EQ(bad.code, 1) << bad.out;
  auto nokey = tandem("agent-status " + line() + " --key " + (dir_ / "missing.key").string());
  EXPECT_EQ(nokey.code, 1) << nokey.out;
  EXPECT_NE(nokey.out.find("missing.key"), std::string::npos) << nokey.out;
}

}  // namespace
}  // namespace tandem::agent::test
