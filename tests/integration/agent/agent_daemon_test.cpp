// tandem-agent over real CURVE on loopback: the full client-role run against a real TCP listener,
// refusals, malformed input, lease expiry and a second controller.
#include <netinet/in.h>
#include <sodium.h>
#include <sys/socket.h>

#include <set>
#include <zmq.hpp>

#include "common/packet/decode.hpp"
#include "common/pcapio/pcap_reader.hpp"
#include "common/probe/probe_module.hpp"
#include "common/proto/wire.hpp"
#include "agent/send/plan_sender.hpp"
#include "tests/integration/agent/fixture.hpp"

namespace tandem::agent::test {
namespace {

using namespace std::chrono_literals;

// A real kernel TCP listener on 127.0.0.1 (SYN -> SYN-ACK from the kernel).
class Listener {
 public:
  Listener() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::listen(fd_, 128);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
  }
  ~Listener() { ::close(fd_); }
  std::uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  std::uint16_t port_ = 0;
};

proto::ProbePlan plan_for(std::uint16_t port, std::uint32_t count, std::uint32_t rate) {
  proto::ProbePlan p;
  p.count = count;
  p.rate_pps = rate;
  p.seed = 0x1122334455667788ULL;
  p.dport = port;
  p.dst = "127.0.0.1";
  p.ip_version = 4;
  p.l4 = proto::L4::tcp;
  p.tcp_options = "mss=1460,sack,ts,nop,ws=7";
  p.sport = "random";
  return p;
}

proto::RunSetup setup_for(const std::string& id, std::uint16_t port, std::chrono::milliseconds lease) {
  proto::RunSetup s;
  s.run_id = id;
  s.lease_deadline_ns = realtime_ns() + std::chrono::duration_cast<std::chrono::nanoseconds>(lease).count();
  s.role = proto::Role::client;
  s.flows = {proto::Flow{"127.0.0.1", "127.0.0.1", proto::L4::tcp, 0, 0, port}};
  return s;
}

class AgentRun : public AgentFixture {};

TEST_F(AgentRun, FullClientRunOverLoopback) {
  if (!have_raw()) GTEST_SKIP() << "needs root (raw sockets, capture)";
  Listener listener;
  auto c = hello_client(ctl_a_);
  auto clock = c->sync_clock(4);
  ASSERT_TRUE(clock) << clock.error().text();
  EXPECT_LT(std::llabs(clock->offset_ns), 5'000'000);  // same host: offset is error only

  auto setup = setup_for("full-1", listener.port(), 30s);
  setup.plan = plan_for(listener.port(), 20, 100);
  auto ok = c->request_as<proto::RunOk>(setup);
  ASSERT_TRUE(ok) << ok.error().text();
  EXPECT_EQ(ok->run_id, "full-1");
  auto started = c->request_as<proto::CaptureStats>(proto::CaptureStart{});
  ASSERT_TRUE(started) << started.error().text();

  // A second connection of the same controller polls STATUS while the plan is sent.
  auto poller = hello_client(ctl_a_);
  std::atomic<bool> done{false};
  std::atomic<int> sending_seen{0}, status_errors{0};
  std::thread poll([&] {
    while (!done) {
      auto s = poller->request_as<proto::StatusReply>(proto::StatusRequest{});
      if (!s) ++status_errors;
      else if (s->state == proto::AgentState::sending) ++sending_seen;
      std::this_thread::sleep_for(10ms);
    }
  });
  auto report = c->request_as<proto::SendReport>(proto::SendPlan{setup.plan}, 10s);
  done = true;
  poll.join();
  ASSERT_TRUE(report) << report.error().text();
  EXPECT_EQ(report->sent, 20u);
  EXPECT_EQ(report->failed, 0u);
  EXPECT_GE(report->last_ns - report->first_ns, 150'000'000);  // 19 gaps at 100 pps
  EXPECT_EQ(status_errors.load(), 0);
  EXPECT_GT(sending_seen.load(), 0);

  auto stats = c->request_as<proto::CaptureStats>(proto::CaptureStop{300}, 10s);
  ASSERT_TRUE(stats) << stats.error().text();
  EXPECT_GE(stats->received, 40u);
  EXPECT_FALSE(stats->if_dropped_known);
  ASSERT_GT(stats->available_bytes, 0u);

  // Fetch in small chunks so that several are needed; the last carries the hash.
  std::vector<std::uint8_t> file;
  std::vector<std::uint8_t> sha;
  int chunks = 0;
  while (true) {
    auto ch = c->request_as<proto::CaptureChunk>(proto::FetchCapture{file.size(), 1024});
    ASSERT_TRUE(ch) << ch.error().text();
    ASSERT_EQ(ch->offset, file.size());
    EXPECT_EQ(ch->total, stats->available_bytes);
    file.insert(file.end(), ch->bytes.begin(), ch->bytes.end());
    ++chunks;
    if (file.size() == ch->total) {
      sha = ch->sha256;
      break;
    }
    EXPECT_TRUE(ch->sha256.empty());
  }
  EXPECT_GT(chunks, 1);
  ASSERT_EQ(sha.size(), 32u);
  std::vector<std::uint8_t> mine(32);
  crypto_hash_sha256(mine.data(), file.data(), file.size());
  EXPECT_EQ(mine, sha);
  auto beyond = c->request(proto::FetchCapture{file.size() + 1, 1024});
  ASSERT_TRUE(beyond);
  ASSERT_TRUE(std::holds_alternative<proto::ErrorReply>(beyond->message));
  EXPECT_EQ(std::get<proto::ErrorReply>(beyond->message).code, proto::ErrorCode::not_found);

  // Decode the pcapng: 20 SYNs and 20 SYN-ACKs, recognised with the plan's run key.
  auto path = dir_ / "fetched.pcapng";
  {
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(file.data()), static_cast<std::streamsize>(file.size()));
  }
  auto reader = pcapio::PcapReader::open(path.string());
  ASSERT_TRUE(reader) << reader.error().text();
  auto lo = *packet::IpAddr::parse("127.0.0.1");
  auto specs = variant_specs(setup.plan);
  ASSERT_TRUE(specs);
  auto module = probe::make_probe_module((*specs)[0], probe::ProbeEndpoints{lo, lo}, run_key_for(setup.plan), 20);
  ASSERT_TRUE(module);
  std::set<std::uint32_t> syns, synacks;
  int with_options = 0;
  auto n = reader->for_each([&](const pcapio::PacketView& pv) {
    auto d = packet::decode(static_cast<std::uint32_t>(reader->linktype()), pv.data, pv.origlen);
    auto obs = (*module)->recognise(d);
    if (!obs) return;
    if (obs->what == probe::Observation::What::own_probe) {
      syns.insert(obs->index);
      if (d.tcp.options.size() == 20) ++with_options;
    } else if (obs->reply == probe::ReplyKind::syn_ack) {
      synacks.insert(obs->index);
    }
  });
  ASSERT_TRUE(n);
  EXPECT_EQ(syns.size(), 20u);
  EXPECT_EQ(synacks.size(), 20u);
  EXPECT_GE(with_options, 20);

  EXPECT_EQ(data_files(), 1u);
  auto end = c->request_as<proto::RunOk>(proto::RunEnd{});
  ASSERT_TRUE(end) << end.error().text();
  EXPECT_EQ(data_files(), 0u);
  for (const char* ev : {"audit hello", "audit run_accepted", "audit capture_started", "audit send_started",
                         "audit probes_sent", "audit capture_stopped", "audit capture_fetched", "audit files_deleted",
                         "audit run_ended"}) {
    EXPECT_TRUE(audit_has(ev)) << ev << "\n" << audit_text();
  }
  EXPECT_TRUE(audit_has("sent=20 failed=0"));
  (void)c->post(proto::Bye{});
}

TEST_F(AgentRun, UnknownControllerKeyIsRefusedAndAudited) {
  auto stranger = *transport::CurveKeypair::generate();
  auto c = client(stranger, 1500ms);
  auto r = c->request(proto::Hello{1, 1, "stranger", {}});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::peer);
  EXPECT_TRUE(audit_has("audit key_refused key=" + stranger.public_z85));
  // The agent keeps serving allowed controllers.
  auto ok = hello_client(ctl_a_);
  EXPECT_TRUE(audit_has("audit key_accepted key=" + ctl_a_.public_z85));
}

// SIGHUP (reload_): the new allow list governs new connections and the next message of existing
// ones; a reload that fails keeps the old policy and says so in the audit log.
TEST_F(AgentRun, ReloadSwapsControllerKeysAndKeepsTheOldPolicyOnError) {
  auto newcomer = *transport::CurveKeypair::generate();
  auto old_conn = hello_client(ctl_a_);
  Result<Policy> p = next_policy_;
  ASSERT_TRUE(p);
  p->controller_keys = {newcomer.public_z85};  // a and b removed
  set_next_policy(p);
  reload_ = true;
  ASSERT_TRUE(audit_has("audit policy_reloaded key=- keys=1")) << audit_text();

  auto ok = hello_client(newcomer);  // allowed now
  EXPECT_TRUE(audit_has("audit key_accepted key=" + newcomer.public_z85));
  auto fresh = client(ctl_b_, 1500ms);  // removed: ZAP refuses the new connection
  EXPECT_FALSE(fresh->request(proto::Hello{1, 1, "b", {}}));
  EXPECT_TRUE(audit_has("audit key_refused key=" + ctl_b_.public_z85));
  auto again = old_conn->request(proto::StatusRequest{});  // removed mid-connection: refused by policy
  ASSERT_TRUE(again) << again.error().text();
  const auto* err = std::get_if<proto::ErrorReply>(&again->message);
  ASSERT_NE(err, nullptr) << proto::message_name(proto::type_of(again->message));
  EXPECT_EQ(err->code, proto::ErrorCode::policy_refused);

  set_next_policy(make_error(Errc::config, "policy", "policy.toml: line 3: expected a table"));
  reload_ = true;
  ASSERT_TRUE(audit_has("audit policy_reload_failed")) << audit_text();
  EXPECT_NE(audit_text().find("kept=old"), std::string::npos);
  auto still = hello_client(newcomer);  // the reloaded policy is still in force
  ASSERT_TRUE(still);
}

TEST_F(AgentRun, MalformedMessageGetsErrorAndAgentKeepsServing) {
  zmq::context_t ctx;
  zmq::socket_t s(ctx, zmq::socket_type::dealer);
  s.set(zmq::sockopt::linger, 0);
  s.set(zmq::sockopt::curve_serverkey, agent_keys_.public_z85);
  s.set(zmq::sockopt::curve_publickey, ctl_a_.public_z85);
  s.set(zmq::sockopt::curve_secretkey, ctl_a_.secret_z85);
  s.connect(daemon_->endpoint());
  auto recv_error = [&]() -> std::optional<proto::Envelope> {
    zmq::pollitem_t item{s.handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, 5000ms);
    if (!(item.revents & ZMQ_POLLIN)) return std::nullopt;
    zmq::message_t m;
    (void)s.recv(m);
    auto d = proto::decode(std::span<const std::uint8_t>(static_cast<const std::uint8_t*>(m.data()), m.size()));
    if (!d) return std::nullopt;
    return d.value();
  };

  // A RUN_SETUP cut short, its header's body length fixed up to what is left: the run_id length
  // field now declares more bytes than arrived.
  proto::RunSetup setup = setup_for("malformed-run-with-a-long-id", 80, 10s);
  auto bytes = *proto::encode(setup, 41);
  bytes.resize(proto::kHeaderSize + 1 + 8 + 4);
  std::uint32_t body = static_cast<std::uint32_t>(bytes.size() - proto::kHeaderSize);
  bytes[14] = static_cast<std::uint8_t>(body >> 24);
  bytes[15] = static_cast<std::uint8_t>(body >> 16);
  bytes[16] = static_cast<std::uint8_t>(body >> 8);
  bytes[17] = static_cast<std::uint8_t>(body);
  (void)s.send(zmq::buffer(bytes), zmq::send_flags::none);
  auto e = recv_error();
  ASSERT_TRUE(e);
  EXPECT_EQ(e->header.request_id, 41u);
  ASSERT_TRUE(std::holds_alternative<proto::ErrorReply>(e->message));
  const auto& err = std::get<proto::ErrorReply>(e->message);
  EXPECT_EQ(err.code, proto::ErrorCode::malformed);
  EXPECT_NE(err.text.find("length_exceeds_input"), std::string::npos) << err.text;
  EXPECT_TRUE(audit_has("audit malformed key=" + ctl_a_.public_z85));

  // A header that declares a longer body than the frame holds.
  auto hello = *proto::encode(proto::Hello{1, 1, "x", {}}, 42);
  hello[17] = static_cast<std::uint8_t>(hello[17] + 10);
  (void)s.send(zmq::buffer(hello), zmq::send_flags::none);
  auto e2 = recv_error();
  ASSERT_TRUE(e2);
  EXPECT_EQ(std::get<proto::ErrorReply>(e2->message).code, proto::ErrorCode::malformed);

  // Same socket, valid HELLO: served.
  auto good = *proto::encode(proto::Hello{1, 1, "x", {}}, 43);
  (void)s.send(zmq::buffer(good), zmq::send_flags::none);
  auto r = recv_error();
  ASSERT_TRUE(r);
  EXPECT_TRUE(std::holds_alternative<proto::HelloOk>(r->message));
}

TEST_F(AgentRun, StateMachineRefusesOutOfOrderRequests) {
  auto c = client(ctl_a_);
  auto before = c->request(proto::StatusRequest{});
  ASSERT_TRUE(before);
  ASSERT_TRUE(std::holds_alternative<proto::ErrorReply>(before->message));
  EXPECT_EQ(std::get<proto::ErrorReply>(before->message).code, proto::ErrorCode::unexpected_message);
  ASSERT_TRUE(c->request_as<proto::HelloOk>(proto::Hello{1, 1, "t", {}}));
  auto start = c->request(proto::CaptureStart{});
  ASSERT_TRUE(start);
  EXPECT_EQ(std::get<proto::ErrorReply>(start->message).code, proto::ErrorCode::unexpected_message);
  auto v2 = client(ctl_a_)->request(proto::Hello{2, 3, "future", {}});
  ASSERT_TRUE(v2);
  EXPECT_EQ(std::get<proto::ErrorReply>(v2->message).code, proto::ErrorCode::unsupported_version);
}

TEST_F(AgentRun, PolicyRefusesDestinationOutsidePolicy) {
  auto c = hello_client(ctl_a_);
  auto s = setup_for("outside", 80, 10s);
  s.flows[0].dst = "10.99.0.1";
  auto r = c->request(s);
  ASSERT_TRUE(r);
  ASSERT_TRUE(std::holds_alternative<proto::ErrorReply>(r->message));
  const auto& e = std::get<proto::ErrorReply>(r->message);
  EXPECT_EQ(e.code, proto::ErrorCode::policy_refused);
  EXPECT_EQ(e.text, "policy: destination 10.99.0.1 not allowed (destinations: 127.0.0.0/8)");
  EXPECT_TRUE(audit_has("audit run_refused key=" + ctl_a_.public_z85 + " run=outside"));
  // Filter text from the controller is refused by default (T13).
  auto f = setup_for("filtertext", 80, 10s);
  f.capture_filter = "tcp";
  auto rf = c->request(f);
  ASSERT_TRUE(rf);
  EXPECT_EQ(std::get<proto::ErrorReply>(rf->message).code, proto::ErrorCode::policy_refused);
}

TEST_F(AgentRun, PolicyRefusesRateAboveCap) {
  auto c = hello_client(ctl_a_);
  auto s = setup_for("fast", 80, 10s);
  s.plan = plan_for(80, 100, 5000);
  auto r = c->request(s);
  ASSERT_TRUE(r);
  const auto& e = std::get<proto::ErrorReply>(r->message);
  EXPECT_EQ(e.code, proto::ErrorCode::policy_refused);
  EXPECT_EQ(e.text, "policy: rate 5000 pps not allowed (max 1000 pps)");
  // The same through SEND_PLAN after an accepted RUN_SETUP without a plan.
  if (!have_raw()) return;
  auto ok = c->request_as<proto::RunOk>(setup_for("fast2", 80, 10s));
  ASSERT_TRUE(ok) << ok.error().text();
  ASSERT_TRUE(c->request_as<proto::CaptureStats>(proto::CaptureStart{}));
  auto sp = c->request(proto::SendPlan{plan_for(80, 100, 5000)});
  ASSERT_TRUE(sp);
  EXPECT_EQ(std::get<proto::ErrorReply>(sp->message).text, "policy: rate 5000 pps not allowed (max 1000 pps)");
  EXPECT_TRUE(audit_has("audit send_refused"));
  ASSERT_TRUE(c->request_as<proto::RunOk>(proto::RunEnd{}));
}

TEST_F(AgentRun, SecondControllerGetsBusy) {
  auto a = hello_client(ctl_a_);
  auto b = hello_client(ctl_b_);
  ASSERT_TRUE(a->request_as<proto::RunOk>(setup_for("a-run", 80, 20s)));
  auto r = b->request(setup_for("b-run", 80, 20s));
  ASSERT_TRUE(r);
  EXPECT_EQ(std::get<proto::ErrorReply>(r->message).code, proto::ErrorCode::busy);
  auto st = b->request_as<proto::StatusReply>(proto::StatusRequest{});
  ASSERT_TRUE(st);
  EXPECT_EQ(st->state, proto::AgentState::idle);
  EXPECT_NE(st->detail.find("busy"), std::string::npos);
  ASSERT_TRUE(a->request_as<proto::RunOk>(proto::RunEnd{}));
  EXPECT_TRUE(b->request_as<proto::RunOk>(setup_for("b-run", 80, 20s)));
}

TEST_F(AgentRun, LeaseDeadlineEndsRunAndDeletesFiles) {
  if (!have_raw()) GTEST_SKIP() << "needs root (capture)";
  auto c = hello_client(ctl_a_);
  ASSERT_TRUE(c->request_as<proto::RunOk>(setup_for("short", 80, 1500ms)));
  ASSERT_TRUE(c->request_as<proto::CaptureStats>(proto::CaptureStart{}));
  auto stats = c->request_as<proto::CaptureStats>(proto::CaptureStop{0});
  ASSERT_TRUE(stats) << stats.error().text();
  EXPECT_EQ(data_files(), 1u);
  EXPECT_TRUE(audit_has("audit lease_expired key=" + ctl_a_.public_z85 + " run=short reason=\"lease deadline reached\"",
                        5000ms));
  EXPECT_EQ(data_files(), 0u);
  EXPECT_TRUE(audit_has("audit files_deleted"));
  auto f = c->request(proto::FetchCapture{0, 1024});
  ASSERT_TRUE(f);
  EXPECT_EQ(std::get<proto::ErrorReply>(f->message).code, proto::ErrorCode::not_found);
  auto e = c->request(proto::RunEnd{});
  ASSERT_TRUE(e);
  EXPECT_EQ(std::get<proto::ErrorReply>(e->message).code, proto::ErrorCode::lease_expired);
  // The agent is free again.
  EXPECT_TRUE(c->request_as<proto::RunOk>(setup_for("next", 80, 10s)));
}

class AgentSilence : public AgentFixture {
  void tune(Policy& p) override { p.idle_timeout_s = 1; }
};

TEST_F(AgentSilence, SilentControllerLosesItsRun) {
  if (!have_raw()) GTEST_SKIP() << "needs root (capture)";
  auto c = hello_client(ctl_a_);
  ASSERT_TRUE(c->request_as<proto::RunOk>(setup_for("quiet", 80, 30s)));
  ASSERT_TRUE(c->request_as<proto::CaptureStats>(proto::CaptureStart{}));
  EXPECT_TRUE(audit_has("reason=\"controller silent for 1 s\"", 4000ms)) << audit_text();
  EXPECT_TRUE(audit_has("audit capture_stopped key=" + ctl_a_.public_z85 + " run=quiet"));
  auto b = hello_client(ctl_b_);
  EXPECT_TRUE(b->request_as<proto::RunOk>(setup_for("other", 80, 10s)));
}

}  // namespace
}  // namespace tandem::agent::test
