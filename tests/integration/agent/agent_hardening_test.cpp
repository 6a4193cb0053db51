// Issue 10 hardening, one test per attack-report row it covers (../shared/reference/
// agent-attack-report-2026-12-06.md): audit forging (M11), handshake failures before ZAP (A10),
// session eviction (L8). The oracles are the raw audit file parsed as JSON and the agent's answers
// on the victim's own connection.
#include <netinet/in.h>
#include <sys/socket.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <zmq.h>

#include <algorithm>
#include <iostream>

#include <nlohmann/json.hpp>

#include "common/packet/decode.hpp"
#include "common/pcapio/pcap_reader.hpp"

#include "common/proto/wire.hpp"
#include "tests/integration/agent/fixture.hpp"
#include "tests/integration/agent/raw_client.hpp"

namespace tandem::agent::test {
namespace {

using namespace std::chrono_literals;

// A run of `role` with these flows and a 60 s lease.
proto::RunSetup run_with(const std::string& id, proto::Role role, std::vector<proto::Flow> flows) {
  proto::RunSetup s;
  s.run_id = id;
  s.lease_deadline_ns = realtime_ns() + 60'000'000'000;
  s.role = role;
  s.flows = std::move(flows);
  return s;
}

class AgentHardening : public AgentFixture {};

// M11: a newline (and a quote) in controller_name cannot start a line of its own.
TEST_F(AgentHardening, NewlineInControllerNameCannotForgeAnAuditLine) {
  // At most proto::kMaxNameLen (64) bytes: a JSON line and an old-format line, each after a newline.
  const std::string forged = "x\"}\n{\"event\":\"agent_stopped\",\"key\":\"-\"}\naudit agent_stopped";
  auto c = client(ctl_a_);
  auto ok = c->request_as<proto::HelloOk>(proto::Hello{1, 1, forged, {}});
  ASSERT_TRUE(ok) << ok.error().text();
  ASSERT_TRUE(audit_has("audit hello key=" + ctl_a_.public_z85));
  const std::string raw = audit_raw();
  std::istringstream lines(raw);
  int hello = 0;
  for (std::string line; std::getline(lines, line);) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << "not one JSON object: " << line;
    ASSERT_TRUE(j.is_object()) << line;
    EXPECT_NE(j.value("event", std::string()), "agent_stopped") << "forged line: " << line;
    if (j.value("event", std::string()) == "hello") {
      ++hello;
      // The whole name is inside the one field, newlines included.
      EXPECT_NE(j.value("detail", std::string()).find(forged), std::string::npos) << line;
    }
  }
  EXPECT_EQ(hello, 1) << raw;
}

// M11 through a plan's tcp_options (256 bytes of controller text in a refused plan).
TEST_F(AgentHardening, NewlineInTcpOptionsCannotForgeAnAuditLine) {
  auto c = hello_client(ctl_a_);
  auto s = run_with("opts", proto::Role::client, {proto::Flow{"127.0.0.1", "127.0.0.1", proto::L4::tcp, 0, 0, 80}});
  s.plan.count = 1;
  s.plan.rate_pps = 10;
  s.plan.dport = 80;
  s.plan.dst = "127.0.0.1";
  s.plan.ip_version = 4;
  s.plan.l4 = proto::L4::tcp;
  s.plan.sport = "random";
  s.plan.tcp_options = "mss=1460\n{\"event\":\"agent_stopped\",\"key\":\"-\"}\naudit FORGED key=-";
  auto r = c->request(s);
  ASSERT_TRUE(r);
  ASSERT_TRUE(std::holds_alternative<proto::ErrorReply>(r->message));
  ASSERT_TRUE(audit_has("audit run_refused key=" + ctl_a_.public_z85));
  std::istringstream lines(audit_raw());
  for (std::string line; std::getline(lines, line);) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    ASSERT_TRUE(!j.is_discarded() && j.is_object()) << "not one JSON object: " << line;
    EXPECT_NE(j.value("event", std::string()), "agent_stopped") << line;
    EXPECT_NE(j.value("event", std::string()), "FORGED") << line;
  }
}

// A10: refusals before ZAP (plaintext client, wrong server key) leave an audit line.
TEST_F(AgentHardening, PlaintextAndWrongServerKeyClientsAreAudited) {
  const std::string endpoint = daemon_->endpoint();
  {
    RawClient plain(endpoint, std::nullopt);
    plain.send_frames({{'h', 'i'}});
    ASSERT_TRUE(audit_has("audit handshake_failed", 5000ms)) << audit_text();
  }
  // The reason depends on who notices first: the agent reads the NULL greeting ("security
  // mechanism mismatch"), or the client, which sees CURVE in the agent's greeting, hangs up before
  // the agent's write ("handshake failed: Broken pipe"). Either way the refusal is on record.
  const std::string text = audit_text();
  EXPECT_TRUE(text.find("mechanism mismatch") != std::string::npos || text.find("Broken pipe") != std::string::npos)
      << text;
  {
    auto wrong_server = *transport::CurveKeypair::generate();
    RawClient curve(endpoint, RawClient::Curve{ctl_a_, wrong_server.public_z85});
    curve.send_frames({{'h', 'i'}});
    ASSERT_TRUE(audit_has("CURVE handshake failed", 5000ms)) << audit_text();
  }
  // Both lines name the peer (loopback, the client's port).
  EXPECT_TRUE(audit_has("peer=127.0.0.1:")) << audit_text();
}

// L8: another allowed controller opening 256 connections does not evict the run holder's session.
TEST_F(AgentHardening, ManyConnectionsOfAnotherKeyDoNotEvictTheRunHolder) {
  auto a = hello_client(ctl_a_);
  auto ok = a->request_as<proto::RunOk>(
      run_with("holder", proto::Role::server, {proto::Flow{"127.0.0.1", "127.0.0.1", proto::L4::tcp, 0, 0, 80}}));
  ASSERT_TRUE(ok) << ok.error().text();

  void* ctx = zmq_ctx_new();
  {
    std::vector<std::unique_ptr<RawClient>> crowd;
    auto hello = *proto::encode(proto::Hello{1, 1, "crowd", {}}, 1);
    for (int i = 0; i < 256; ++i) {
      crowd.push_back(std::make_unique<RawClient>(daemon_->endpoint(), RawClient::Curve{ctl_b_, agent_keys_.public_z85}, ctx));
      crowd.back()->send_frames({hello});
    }
    int answered = 0;
    for (auto& c : crowd) answered += c->receive(10s) ? 1 : 0;
    EXPECT_EQ(answered, 256);
  }
  zmq_ctx_term(ctx);
  // The holder's original connection still has its session: the run is still its own.
  auto st = a->request_as<proto::StatusReply>(proto::StatusRequest{});
  ASSERT_TRUE(st) << st.error().text();
  EXPECT_EQ(st->state, proto::AgentState::armed) << st->detail;
  auto end = a->request_as<proto::RunOk>(proto::RunEnd{});
  EXPECT_TRUE(end) << end.error().text();
}

}  // namespace
}  // namespace tandem::agent::test

namespace tandem::agent::test {
namespace {

using namespace std::chrono_literals;

// The whole capture, fetched in chunks.
std::vector<std::uint8_t> fetch_all(transport::ControllerClient& c) {
  std::vector<std::uint8_t> file;
  for (;;) {
    auto ch = c.request_as<proto::CaptureChunk>(proto::FetchCapture{file.size(), 65536});
    if (!ch) {
      ADD_FAILURE() << ch.error().text();
      return file;
    }
    file.insert(file.end(), ch->bytes.begin(), ch->bytes.end());
    if (file.size() >= ch->total) return file;
  }
}

bool contains(const std::vector<std::uint8_t>& hay, const std::string& needle) {
  return std::search(hay.begin(), hay.end(), needle.begin(), needle.end()) != hay.end();
}

std::uint16_t free_udp_port() {
  int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);  // closed again: datagrams to it draw ICMP port unreachable
  return ntohs(a.sin_port);
}

void send_udp(std::uint16_t port, const std::string& payload) {
  int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  ::sendto(fd, payload.data(), payload.size(), 0, reinterpret_cast<sockaddr*>(&a), sizeof a);
  ::close(fd);
}


class AgentCaptureHardening : public AgentFixture {
 protected:
  void tune(Policy& p) override {
    p.protocols = {true, true, false};
    p.allow_filter_text = true;
  }
};

// P11: filter text that does not compile on its own is refused; text that does only narrows.
TEST_F(AgentCaptureHardening, FilterTextInjectionIsRefused) {
  auto c = hello_client(ctl_a_);
  auto s = run_with("inject", proto::Role::client, {proto::Flow{"127.0.0.1", "127.0.0.1", proto::L4::tcp, 0, 0, 8080}});
  s.capture_filter = "1=1) or (1=1";
  auto r = c->request(s);
  ASSERT_TRUE(r);
  ASSERT_TRUE(std::holds_alternative<proto::ErrorReply>(r->message));
  const auto& e = std::get<proto::ErrorReply>(r->message);
  EXPECT_EQ(e.code, proto::ErrorCode::policy_refused);
  EXPECT_NE(e.text.find("does not compile on its own"), std::string::npos) << e.text;
  s.capture_filter = "tcp[13] & 2 != 0";
  auto ok = c->request_as<proto::RunOk>(s);
  ASSERT_TRUE(ok) << ok.error().text();
  EXPECT_TRUE(audit_has(") and (tcp[13] & 2 != 0)")) << audit_text();
  ASSERT_TRUE(c->request_as<proto::RunOk>(proto::RunEnd{}));
}

// P16: a server-role flow naming a third host is refused; one naming this host is accepted.
TEST_F(AgentCaptureHardening, ServerFlowToAThirdHostIsRefused) {
  auto c = hello_client(ctl_a_);
  auto r = c->request(run_with("third", proto::Role::server, {proto::Flow{"", "192.0.2.77", proto::L4::udp, 0, 0, 9005}}));
  ASSERT_TRUE(r);
  ASSERT_TRUE(std::holds_alternative<proto::ErrorReply>(r->message));
  const auto& e = std::get<proto::ErrorReply>(r->message);
  EXPECT_EQ(e.code, proto::ErrorCode::policy_refused);
  EXPECT_NE(e.text.find("server flow 0 to 192.0.2.77"), std::string::npos) << e.text;
  auto ok = c->request_as<proto::RunOk>(run_with("own", proto::Role::server, {proto::Flow{"", "127.0.0.1", proto::L4::udp, 0, 0, 9005}}));
  ASSERT_TRUE(ok) << ok.error().text();
  ASSERT_TRUE(c->request_as<proto::RunOk>(proto::RunEnd{}));
}

// C2: an ICMP error about traffic outside the run is not captured; one quoting a flow of the run is,
// with the quoted payload scrubbed.
TEST_F(AgentCaptureHardening, UnrelatedIcmpErrorIsNotCaptured) {
  if (!have_raw()) GTEST_SKIP() << "needs root (capture)";
  const std::uint16_t related = free_udp_port(), unrelated = free_udp_port();
  ASSERT_NE(related, unrelated);
  auto c = hello_client(ctl_a_);
  ASSERT_TRUE(c->request_as<proto::RunOk>(
      run_with("icmp", proto::Role::client, {proto::Flow{"", "127.0.0.1", proto::L4::udp, 0, 0, related}})));
  ASSERT_TRUE(c->request_as<proto::CaptureStats>(proto::CaptureStart{}));
  for (int i = 0; i < 3; ++i) {
    send_udp(unrelated, "SECRET-UNRELATED-QUOTED");
    send_udp(related, "SECRET-RELATED-QUOTED");
    std::this_thread::sleep_for(50ms);
  }
  auto stats = c->request_as<proto::CaptureStats>(proto::CaptureStop{300}, 10s);
  ASSERT_TRUE(stats) << stats.error().text();
  auto file = fetch_all(*c);
  const auto path = dir_ / "icmp.pcapng";
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(file.data()), static_cast<std::streamsize>(file.size()));
  auto reader = pcapio::PcapReader::open(path.string());
  ASSERT_TRUE(reader) << reader.error().text();
  int errors_related = 0, errors_unrelated = 0;
  ASSERT_TRUE(reader->for_each([&](const pcapio::PacketView& pv) {
    auto d = packet::decode(static_cast<std::uint32_t>(reader->linktype()), pv.data, pv.origlen);
    if (d.l4 != packet::L4::icmp || !d.icmp.is_error || !d.icmp.quoted.has_ports) return;
    if (d.icmp.quoted.dport == related) ++errors_related;
    if (d.icmp.quoted.dport == unrelated) ++errors_unrelated;
  }));
  EXPECT_GE(errors_related, 1) << "the positive control: errors quoting the run's flow are kept";
  EXPECT_EQ(errors_unrelated, 0);
  EXPECT_FALSE(contains(file, "SECRET")) << "payloads (also quoted ones) are scrubbed";
  ASSERT_TRUE(c->request_as<proto::RunOk>(proto::RunEnd{}));
}

class AgentSmallQuota : public AgentFixture {
 protected:
  void tune(Policy& p) override {
    p.protocols = {true, true, false};
    p.quota_bytes = 8192;
  }
};

// P15: the quota counts every byte of the file. 64 flows: the file header alone does not fit, so
// CAPTURE_START is refused; one flow with more packets than fit: the file stays within the quota
// and the packets left out are reported as dropped.
TEST_F(AgentSmallQuota, QuotaCountsEveryByte) {
  if (!have_raw()) GTEST_SKIP() << "needs root (capture)";
  auto c = hello_client(ctl_a_);
  std::vector<proto::Flow> flows;
  for (std::uint16_t i = 0; i < 64; ++i) flows.push_back(proto::Flow{"", "127.0.0.1", proto::L4::tcp, 0, 0, static_cast<std::uint16_t>(20000 + i)});
  ASSERT_TRUE(c->request_as<proto::RunOk>(run_with("wide", proto::Role::client, flows)));
  auto start = c->request(proto::CaptureStart{});
  ASSERT_TRUE(start);
  ASSERT_TRUE(std::holds_alternative<proto::ErrorReply>(start->message));
  EXPECT_NE(std::get<proto::ErrorReply>(start->message).text.find("disk quota"), std::string::npos);
  ASSERT_TRUE(c->request_as<proto::RunOk>(proto::RunEnd{}));

  const std::uint16_t port = free_udp_port();
  ASSERT_TRUE(c->request_as<proto::RunOk>(
      run_with("narrow", proto::Role::client, {proto::Flow{"", "127.0.0.1", proto::L4::udp, 0, 0, port}})));
  ASSERT_TRUE(c->request_as<proto::CaptureStats>(proto::CaptureStart{}));
  for (int i = 0; i < 300; ++i) send_udp(port, "x");
  auto stats = c->request_as<proto::CaptureStats>(proto::CaptureStop{300}, 10s);
  ASSERT_TRUE(stats) << stats.error().text();
  EXPECT_LE(stats->available_bytes, 8192u);
  EXPECT_GT(stats->dropped, 0u) << "packets that did not fit are reported";
  std::uint64_t on_disk = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir_ / "data")) on_disk += e.file_size();
  EXPECT_LE(on_disk, 8192u);
  EXPECT_GT(on_disk, 0u);
  ASSERT_TRUE(c->request_as<proto::RunOk>(proto::RunEnd{}));
}

// R5: a shared data dir (1777) is refused at start and left exactly as it was; one of the agent's
// own keeps foreign files and loses only the agent's stale run files.
TEST(AgentDataDir, SharedDirectoryIsRefusedAndLeftAlone) {
  auto base = make_temp_dir("datadir");
  auto shared = base / "shared";
  std::filesystem::create_directories(shared);
  ::chmod(shared.c_str(), 01777);
  std::ofstream(shared / "other-user-trace.pcapng") << "foreign";
  DaemonOptions o;
  o.listen = "tcp://127.0.0.1:*";
  o.keypair = *transport::CurveKeypair::generate();
  o.policy.controller_keys = {transport::CurveKeypair::generate()->public_z85};
  o.data_dir = shared;
  o.audit = *Audit::open("", false);
  auto d = Daemon::start(o);
  ASSERT_FALSE(d);
  EXPECT_NE(d.error().text().find("writable by group or others"), std::string::npos) << d.error().text();
  struct stat st {};
  ASSERT_EQ(::stat(shared.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 01777u);
  EXPECT_TRUE(std::filesystem::exists(shared / "other-user-trace.pcapng"));

  auto own = base / "own";
  std::filesystem::create_directories(own);
  ::chmod(own.c_str(), 0700);
  std::ofstream(own / "notes.pcapng") << "keep";
  std::ofstream(own / "tandem-run-old.client.pcapng") << "stale";
  o.data_dir = own;
  auto ok = Daemon::start(o);
  ASSERT_TRUE(ok) << ok.error().text();
  EXPECT_TRUE(std::filesystem::exists(own / "notes.pcapng"));
  EXPECT_FALSE(std::filesystem::exists(own / "tandem-run-old.client.pcapng"));
  ok->reset();

  auto fresh = base / "fresh" / "data";
  o.data_dir = fresh;
  ASSERT_TRUE(Daemon::start(o));
  ASSERT_EQ(::stat(fresh.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  std::error_code ec;
  std::filesystem::remove_all(base, ec);
}

}  // namespace
}  // namespace tandem::agent::test
