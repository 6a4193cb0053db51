// The real tandem-agent binary as a separate process, for what an in-process agent cannot show:
// its own memory (VmHWM) under a multipart attack (attack-report row M10, threat T6), and a run
// as an unprivileged user with CAP_NET_RAW only (issue 10 item 7, threat T24).
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <iostream>

#include "common/proto/wire.hpp"
#include "tests/integration/agent/fixture.hpp"
#include "tests/integration/agent/raw_client.hpp"

namespace tandem::agent::test {
namespace {

using namespace std::chrono_literals;

// A field of /proc/<pid>/status without its tab ("VmHWM" -> "11324 kB"); empty if absent.
std::string proc_status(pid_t pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind(field + ":", 0) == 0) return line.substr(line.find_first_not_of(" \t", field.size() + 1));
  return {};
}

// tandem-agent started with fork/exec on an ephemeral loopback port, in a directory of its own
// (keys, policy, audit log, data dir), optionally through `setpriv` as uid/gid 65534.
class SpawnedAgent {
 public:
  explicit SpawnedAgent(const std::string& tag, bool unprivileged = false) : dir_(make_temp_dir(tag)) {
    agent_ = *transport::CurveKeypair::generate();
    ctl_ = *transport::CurveKeypair::generate();
    EXPECT_TRUE(transport::save_keypair(agent_, (dir_ / "agent").string(), false));
    EXPECT_TRUE(transport::save_keypair(ctl_, (dir_ / "ctl").string(), false));
    std::ofstream(dir_ / "policy.toml") << "[controllers]\nkey_files = [\"ctl.pub\"]\n[send]\ndestinations = [\"127.0.0.0/8\"]\n";
    if (unprivileged) {
      for (const auto& e : std::filesystem::directory_iterator(dir_)) EXPECT_EQ(::chown(e.path().c_str(), 65534, 65534), 0);
      EXPECT_EQ(::chown(dir_.c_str(), 65534, 65534), 0);
      ::chmod(dir_.c_str(), 0700);
    }
    const std::string bin = std::string(TANDEM_BINARY_DIR) + "/bin/tandem-agent";
    std::vector<std::string> args;
    if (unprivileged)
      args = {"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all,+net_raw",
              "--ambient-caps=-all,+net_raw", "--bounding-set=-all,+net_raw", "--no-new-privs"};
    for (const std::string& a : {bin, std::string("--listen"), std::string("tcp://127.0.0.1:*"), std::string("--key"),
                                 (dir_ / "agent.key").string(), std::string("--policy"), (dir_ / "policy.toml").string(),
                                 std::string("--data-dir"), (dir_ / "data").string(), std::string("--audit-log"),
                                 (dir_ / "audit.log").string()})
      args.push_back(a);
    pid_ = ::fork();
    if (pid_ == 0) {
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
  }
  ~SpawnedAgent() {
    if (pid_ > 0 && !stopped_) (void)stop();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  std::string audit() const {
    std::ifstream in(dir_ / "audit.log");
    std::stringstream ss;
    ss << in.rdbuf();
    return render_audit(ss.str());
  }
  bool wait_for(const std::string& needle, std::chrono::milliseconds limit) const {
    for (auto end = std::chrono::steady_clock::now() + limit; std::chrono::steady_clock::now() < end;) {
      if (audit().find(needle) != std::string::npos) return true;
      std::this_thread::sleep_for(20ms);
    }
    return false;
  }
  // The bound endpoint, from the agent_started audit line (empty until then).
  std::string endpoint() const {
    const std::string text = audit();
    const auto at = text.find("endpoint=");
    return at == std::string::npos ? std::string() : text.substr(at + 9, text.find(' ', at) - at - 9);
  }
  std::unique_ptr<transport::ControllerClient> controller() const {
    transport::ClientOptions co;
    co.agent = *transport::parse_agent_address(endpoint() + "#" + agent_.public_z85);
    co.keypair = ctl_;
    co.timeout = 5000ms;
    return std::move(transport::ControllerClient::connect(co)).value();
  }
  // SIGTERM and wait: true if the agent exited 0.
  bool stop() {
    stopped_ = true;
    ::kill(pid_, SIGTERM);
    int st = 0;
    ::waitpid(pid_, &st, 0);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0;
  }
  pid_t pid() const { return pid_; }
  const transport::CurveKeypair& agent_keys() const { return agent_; }
  const transport::CurveKeypair& controller_keys() const { return ctl_; }

 private:
  std::filesystem::path dir_;
  transport::CurveKeypair agent_, ctl_;
  pid_t pid_ = -1;
  bool stopped_ = false;
};

// M10: one multipart message of 2,400 frames (each under the frame limit) from an allowed key does
// not make the agent hold it: the connection is dropped once it holds more than the bound, the
// agent's peak RSS (VmHWM) stays flat, and it keeps serving.
TEST(AgentProcess, MultipartMessageDoesNotGrowTheAgent) {
  if (!have_raw()) GTEST_SKIP() << "needs root (the agent checks CAP_NET_RAW at start)";
  SpawnedAgent agent("mem");
  ASSERT_TRUE(agent.wait_for("audit agent_started", 10s)) << agent.audit();
  ASSERT_TRUE(agent.controller()->request_as<proto::HelloOk>(proto::Hello{1, 1, "before", {}}));
  const long hwm_before = std::stol(proc_status(agent.pid(), "VmHWM"));
  {
    RawClient attacker(agent.endpoint(), RawClient::Curve{agent.controller_keys(), agent.agent_keys().public_z85});
    attacker.send_many(2399, 131072, *proto::encode(proto::StatusRequest{}, 7));  // 2,400 frames, 300 MiB
    EXPECT_TRUE(agent.wait_for("audit connection_dropped", 60s)) << agent.audit();
  }
  const long hwm_after = std::stol(proc_status(agent.pid(), "VmHWM"));
  std::cout << "[ measured ] agent VmHWM before " << hwm_before << " kB, after 2400 x 128 KiB frames " << hwm_after
            << " kB\n";
  EXPECT_LT(hwm_after - hwm_before, 64 * 1024) << "the agent held the message";
  EXPECT_TRUE(agent.controller()->request_as<proto::HelloOk>(proto::Hello{1, 1, "after", {}})) << "keeps serving";
  EXPECT_TRUE(agent.stop());
}

// T24: the agent as uid 65534 with CAP_NET_RAW only (ambient, bounding set reduced to it,
// no_new_privs: what the systemd unit does) completes a client run over loopback: probes sent, the
// SYNs and the kernel's SYN-ACKs captured, the capture fetched.
TEST(AgentProcess, UnprivilegedUserWithOnlyNetRawCompletesARun) {
  if (!have_raw()) GTEST_SKIP() << "needs root (to drop to another user)";
  if (::access("/usr/bin/setpriv", X_OK) != 0) GTEST_SKIP() << "setpriv (util-linux) not installed";
  int lfd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in la{};
  la.sin_family = AF_INET;
  la.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(lfd, reinterpret_cast<sockaddr*>(&la), sizeof la), 0);
  ::listen(lfd, 128);
  socklen_t llen = sizeof la;
  ::getsockname(lfd, reinterpret_cast<sockaddr*>(&la), &llen);
  const std::uint16_t port = ntohs(la.sin_port);

  SpawnedAgent agent("priv", /*unprivileged=*/true);
  ASSERT_TRUE(agent.wait_for("audit agent_started", 10s)) << "the unprivileged agent did not start";
  EXPECT_EQ(proc_status(agent.pid(), "CapEff"), "0000000000002000");  // CAP_NET_RAW (13) only
  EXPECT_EQ(proc_status(agent.pid(), "Uid").substr(0, 5), "65534");
  auto c = agent.controller();
  ASSERT_TRUE(c->request_as<proto::HelloOk>(proto::Hello{1, 1, "unprivileged", {}}));
  proto::RunSetup s;
  s.run_id = "nobody";
  s.lease_deadline_ns = realtime_ns() + 30'000'000'000;
  s.role = proto::Role::client;
  s.flows = {proto::Flow{"127.0.0.1", "127.0.0.1", proto::L4::tcp, 0, 0, port}};
  auto ok = c->request_as<proto::RunOk>(s);
  ASSERT_TRUE(ok) << ok.error().text();
  auto started = c->request_as<proto::CaptureStats>(proto::CaptureStart{});
  ASSERT_TRUE(started) << started.error().text();
  proto::ProbePlan plan;
  plan.count = 10;
  plan.rate_pps = 100;
  plan.seed = 42;
  plan.dport = port;
  plan.dst = "127.0.0.1";
  plan.l4 = proto::L4::tcp;
  plan.sport = "random";
  auto report = c->request_as<proto::SendReport>(proto::SendPlan{plan}, 10s);
  ASSERT_TRUE(report) << report.error().text();
  EXPECT_EQ(report->sent, 10u);
  auto stats = c->request_as<proto::CaptureStats>(proto::CaptureStop{300}, 10s);
  ASSERT_TRUE(stats) << stats.error().text();
  EXPECT_GE(stats->received, 20u) << "10 SYNs and the kernel's 10 SYN-ACKs";
  auto chunk = c->request_as<proto::CaptureChunk>(proto::FetchCapture{0, 65536});
  ASSERT_TRUE(chunk) << chunk.error().text();
  EXPECT_EQ(chunk->bytes.size(), stats->available_bytes);
  EXPECT_TRUE(c->request_as<proto::RunOk>(proto::RunEnd{}));
  ::close(lfd);
  EXPECT_TRUE(agent.stop());
}

}  // namespace
}  // namespace tandem::agent::test
