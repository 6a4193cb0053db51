// Real ZeroMQ over loopback: CURVE handshake with an allowed key, refusal of an unknown key and of
// a plaintext client (with the ZAP audit line naming the refused key), oversized and multi-frame
// messages, late replies, clock sync, and `tandem keygen` as a process.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <mutex>
#include <thread>

#include <zmq.hpp>

#include "common/base/clock.hpp"
#include "common/transport/agent_server.hpp"
#include "common/transport/controller_client.hpp"

namespace tandem::transport {
namespace {

using namespace std::chrono_literals;

// A minimal agent: answers HELLO, CLOCK_PROBE and STATUS; everything else gets ERROR{unexpected}.
class LoopbackAgent {
 public:
  explicit LoopbackAgent(std::vector<std::string> allowed, std::chrono::milliseconds reply_delay = 0ms)
      : delay_(reply_delay) {
    keys_ = *CurveKeypair::generate();
    ServerOptions opt;
    opt.bind_endpoint = "tcp://127.0.0.1:*";
    opt.keypair = keys_;
    opt.allowed_keys = std::move(allowed);
    opt.audit = [this](const AuthDecision& d) {
      std::lock_guard lock(mu_);
      audit_.push_back(d);
    };
    auto s = AgentServer::start(std::move(opt));
    EXPECT_TRUE(s.ok()) << (s.ok() ? "" : s.error().text());
    server_ = std::move(*s);
    thread_ = std::thread([this] { loop(); });
  }
  ~LoopbackAgent() {
    stop_ = true;
    thread_.join();
    server_.reset();  // stops the ZAP thread, whose audit callback uses mu_/audit_ below
  }

  AgentAddress address() const {
    auto a = parse_agent_address(server_->endpoint() + "#" + keys_.public_z85);
    EXPECT_TRUE(a.ok());
    return *a;
  }
  std::vector<AuthDecision> audit() {
    std::lock_guard lock(mu_);
    return audit_;
  }
  std::vector<Incoming> received() {
    std::lock_guard lock(mu_);
    return received_;
  }

 private:
  void loop() {
    while (!stop_) {
      auto in = server_->receive(50ms);
      ASSERT_TRUE(in.ok());
      if (!in->has_value()) continue;
      Incoming msg = std::move(**in);
      const Nanos t2 = realtime_ns();
      {
        std::lock_guard lock(mu_);
        received_.push_back(msg);
      }
      auto d = proto::decode(msg.bytes);
      if (!d.ok()) {
        (void)server_->reply(msg, 0, proto::ErrorReply{proto::ErrorCode::malformed, std::string(to_string(d.error().code))});
        continue;
      }
      if (delay_ > 0ms) std::this_thread::sleep_for(delay_);
      const std::uint32_t id = d.value().header.request_id;
      proto::Message reply = proto::ErrorReply{proto::ErrorCode::unexpected_message, "not in this test agent"};
      if (std::holds_alternative<proto::Hello>(d.value().message)) {
        reply = proto::HelloOk{1, "loopback", "0.1.0", {"clock"}, "test agent", {}};
      } else if (auto* p = std::get_if<proto::ClockProbe>(&d.value().message)) {
        reply = proto::ClockReply{p->t1, t2, realtime_ns()};
      } else if (std::holds_alternative<proto::StatusRequest>(d.value().message)) {
        reply = proto::StatusReply{proto::AgentState::idle, 0, msg.user_id};
      }
      (void)server_->reply(msg, id, reply);
    }
  }

  CurveKeypair keys_;
  std::unique_ptr<AgentServer> server_;
  std::chrono::milliseconds delay_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<AuthDecision> audit_;
  std::vector<Incoming> received_;
};

std::unique_ptr<ControllerClient> client_for(const AgentAddress& agent, const CurveKeypair& keys,
                                             std::chrono::milliseconds timeout = 3000ms) {
  ClientOptions opt;
  opt.agent = agent;
  opt.keypair = keys;
  opt.timeout = timeout;
  auto c = ControllerClient::connect(std::move(opt));
  EXPECT_TRUE(c.ok()) << (c.ok() ? "" : c.error().text());
  return std::move(*c);
}

TEST(CurveTransport, AllowedKeyHandshakesAndRoundTrips) {
  auto ctl = *CurveKeypair::generate();
  LoopbackAgent agent({ctl.public_z85});
  auto client = client_for(agent.address(), ctl);
  auto hello = client->request_as<proto::HelloOk>(proto::Hello{1, 1, "test-controller", {"clock"}});
  ASSERT_TRUE(hello.ok()) << hello.error().text();
  EXPECT_EQ(hello->agent_id, "loopback");
  // The agent sees who sent it: the ZAP User-Id is the controller's public key.
  auto status = client->request_as<proto::StatusReply>(proto::StatusRequest{});
  ASSERT_TRUE(status.ok()) << status.error().text();
  EXPECT_EQ(status->detail, ctl.public_z85);
  auto audit = agent.audit();
  ASSERT_FALSE(audit.empty());
  EXPECT_TRUE(audit.front().accepted);
  EXPECT_EQ(audit.front().client_key, ctl.public_z85);
  EXPECT_EQ(audit.front().peer_address, "127.0.0.1");
  // An ERROR reply surfaces as Errc::peer through request_as.
  auto refused = client->request_as<proto::RunOk>(proto::RunEnd{});
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, Errc::peer);
  EXPECT_NE(refused.error().message.find("refused"), std::string::npos);
}

TEST(CurveTransport, UnknownControllerKeyIsRefusedAndAudited) {
  auto allowed = *CurveKeypair::generate();
  auto stranger = *CurveKeypair::generate();
  LoopbackAgent agent({allowed.public_z85});
  auto client = client_for(agent.address(), stranger, 1500ms);
  auto r = client->request(proto::Hello{1, 1, "stranger", {}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::peer);
  EXPECT_NE(r.error().message.find("agent " + agent.address().endpoint + ": no reply within 1.5 s (wrong key or agent down?)"),
            std::string::npos)
      << r.error().message;
  EXPECT_TRUE(agent.received().empty()) << "a refused client's message reached the agent";
  bool named = false;
  for (const auto& d : agent.audit())
    if (!d.accepted && d.client_key == stranger.public_z85 && d.reason == "key not in allow list") named = true;
  EXPECT_TRUE(named) << "the audit log must name the refused key";
}

TEST(CurveTransport, WrongAgentKeyTimesOut) {
  auto ctl = *CurveKeypair::generate();
  LoopbackAgent agent({ctl.public_z85});
  AgentAddress wrong = agent.address();
  wrong.server_key = CurveKeypair::generate()->public_z85;  // not the agent's key
  auto client = client_for(wrong, ctl, 1000ms);
  auto r = client->request(proto::Hello{1, 1, "c", {}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::peer);
  EXPECT_TRUE(agent.received().empty());
}

TEST(CurveTransport, PlaintextClientIsRefused) {
  auto ctl = *CurveKeypair::generate();
  LoopbackAgent agent({ctl.public_z85});
  zmq::context_t ctx;
  zmq::socket_t plain(ctx, zmq::socket_type::dealer);
  plain.set(zmq::sockopt::linger, 0);
  plain.connect(agent.address().endpoint);
  auto hello = proto::encode(proto::Hello{1, 1, "plain", {}}, 1);
  ASSERT_TRUE(hello.ok());
  (void)plain.send(zmq::buffer(*hello), zmq::send_flags::dontwait);
  std::this_thread::sleep_for(700ms);
  EXPECT_TRUE(agent.received().empty());
  zmq::pollitem_t item{plain.handle(), 0, ZMQ_POLLIN, 0};
  zmq::poll(&item, 1, 100ms);
  EXPECT_FALSE(item.revents & ZMQ_POLLIN);
}

// A raw CURVE client (allowed key) that breaks the framing rules.
zmq::socket_t raw_curve_client(zmq::context_t& ctx, const AgentAddress& agent, const CurveKeypair& keys) {
  zmq::socket_t s(ctx, zmq::socket_type::dealer);
  s.set(zmq::sockopt::linger, 0);
  s.set(zmq::sockopt::curve_serverkey, agent.server_key);
  s.set(zmq::sockopt::curve_publickey, keys.public_z85);
  s.set(zmq::sockopt::curve_secretkey, keys.secret_z85);
  s.connect(agent.endpoint);
  return s;
}

TEST(CurveTransport, OversizedFrameDisconnectsWithoutDelivery) {
  auto ctl = *CurveKeypair::generate();
  LoopbackAgent agent({ctl.public_z85});
  zmq::context_t ctx;
  auto s = raw_curve_client(ctx, agent.address(), ctl);
  std::vector<std::uint8_t> big(1 << 20, 0x41);  // 1 MiB > ZMQ_MAXMSGSIZE
  (void)s.send(zmq::buffer(big), zmq::send_flags::none);
  std::this_thread::sleep_for(700ms);
  for (const auto& in : agent.received()) EXPECT_LT(in.bytes.size(), big.size());
  // The agent still serves a well-behaved controller.
  auto client = client_for(agent.address(), ctl);
  EXPECT_TRUE(client->request_as<proto::HelloOk>(proto::Hello{1, 1, "c", {}}).ok());
}

TEST(CurveTransport, MultiFrameMessageIsDrainedAndFlagged) {
  auto ctl = *CurveKeypair::generate();
  LoopbackAgent agent({ctl.public_z85});
  zmq::context_t ctx;
  auto s = raw_curve_client(ctx, agent.address(), ctl);
  auto status = proto::encode(proto::StatusRequest{}, 5);
  ASSERT_TRUE(status.ok());
  (void)s.send(zmq::buffer(*status), zmq::send_flags::sndmore);
  (void)s.send(zmq::str_buffer("extra"), zmq::send_flags::sndmore);
  (void)s.send(zmq::str_buffer("extra"), zmq::send_flags::none);
  for (int i = 0; i < 40 && agent.received().empty(); ++i) std::this_thread::sleep_for(50ms);
  auto got = agent.received();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].frames, 3u);
  EXPECT_EQ(got[0].bytes, *status);
  EXPECT_EQ(got[0].user_id, ctl.public_z85);
}

TEST(CurveTransport, LateReplyToATimedOutRequestIsDropped) {
  auto ctl = *CurveKeypair::generate();
  LoopbackAgent agent({ctl.public_z85}, 600ms);
  auto client = client_for(agent.address(), ctl);
  // Handshake first, with a generous timeout.
  ASSERT_TRUE(client->request_as<proto::HelloOk>(proto::Hello{1, 1, "c", {}}, 5000ms).ok());
  auto first = client->request(proto::StatusRequest{}, 200ms);  // its reply arrives ~400 ms too late
  ASSERT_FALSE(first.ok());
  auto second = client->request_as<proto::ClockReply>(proto::ClockProbe{42}, 3000ms);
  ASSERT_TRUE(second.ok()) << second.error().text();  // not the STATUS_REPLY that came first
  EXPECT_EQ(second->t1, 42);
}

TEST(CurveTransport, ClockSyncAgainstLoopbackAgent) {
  auto ctl = *CurveKeypair::generate();
  LoopbackAgent agent({ctl.public_z85});
  auto client = client_for(agent.address(), ctl);
  ASSERT_TRUE(client->request_as<proto::HelloOk>(proto::Hello{1, 1, "c", {}}).ok());
  auto est = client->sync_clock(16);
  ASSERT_TRUE(est.ok()) << est.error().text();
  // Same host, same clock: the offset is only measurement noise.
  EXPECT_LT(std::llabs(est->offset_ns), 1'000'000) << est->offset_ns;
  EXPECT_LT(est->error_ns, 1'000'000) << est->error_ns;
  EXPECT_EQ(est->samples, 16u);
  EXPECT_LE(std::llabs(est->offset_ns), est->error_ns + 1'000);
}

TEST(CurveTransport, RevokedKeyRefusesNewConnections) {
  auto ctl = *CurveKeypair::generate();
  ServerOptions opt;
  opt.bind_endpoint = "tcp://127.0.0.1:*";
  opt.keypair = *CurveKeypair::generate();
  opt.allowed_keys = {ctl.public_z85};
  auto server = AgentServer::start(opt);
  ASSERT_TRUE(server.ok());
  EXPECT_TRUE((*server)->zap_healthy());
  (*server)->set_allowed_keys({});
  auto agent = *parse_agent_address((*server)->endpoint() + "#" + opt.keypair.public_z85);
  auto client = client_for(agent, ctl, 800ms);
  EXPECT_FALSE(client->post(proto::Bye{}).ok());  // never connects: the handshake is refused
  auto in = (*server)->receive(300ms);
  ASSERT_TRUE(in.ok());
  EXPECT_FALSE(in->has_value());
}

// --- tandem keygen as a process ---

std::string tandem_exe() {
  if (const char* e = std::getenv("TANDEM_EXE")) return e;
  return std::string(TANDEM_BINARY_DIR) + "/bin/tandem";
}

int run(const std::vector<std::string>& args) {
  pid_t pid = ::fork();
  if (pid == 0) {
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(KeygenCommand, WritesModesAndRefusesOverwrite) {
  const std::string exe = tandem_exe();
  if (::access(exe.c_str(), X_OK) != 0) GTEST_SKIP() << "tandem executable not built at " << exe;
  namespace fs = std::filesystem;
  std::string tmpl = (fs::temp_directory_path() / "tandem-keygen-XXXXXX").string();
  const fs::path dir = ::mkdtemp(tmpl.data());
  const std::string prefix = (dir / "ctl").string();
  ASSERT_EQ(run({exe, "keygen", "--out", prefix}), 0);
  struct stat st {};
  ASSERT_EQ(::stat((prefix + ".key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  ASSERT_EQ(::stat((prefix + ".pub").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0644u);
  auto kp = CurveKeypair::load_secret_file(prefix + ".key");
  ASSERT_TRUE(kp.ok()) << kp.error().text();
  EXPECT_EQ(*load_public_key_file(prefix + ".pub"), kp->public_z85);
  EXPECT_EQ(run({exe, "keygen", "--out", prefix}), 1);  // refuses to overwrite
  EXPECT_EQ(CurveKeypair::load_secret_file(prefix + ".key")->secret_z85, kp->secret_z85);
  EXPECT_EQ(run({exe, "keygen", "--out", prefix, "--force"}), 0);
  EXPECT_NE(CurveKeypair::load_secret_file(prefix + ".key")->secret_z85, kp->secret_z85);
  EXPECT_EQ(run({exe, "keygen"}), 1);  // --out is required
  fs::remove_all(dir);
}

}  // namespace
}  // namespace tandem::transport
