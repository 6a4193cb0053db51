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
#include "tests/integration/trace/trace_lab_fixture.hpp"

#include <gtest/gtest.h>

namespace tandem::testing {
namespace {

// Removes the agents' work dirs (keys, audit logs) once the whole binary is done.
class TempRootCleanup : public ::testing::Environment {
 public:
  void TearDown() override {
    std::error_code ec;
    if (!::testing::UnitTest::GetInstance()->Failed()) fs::remove_all(temp_root(), ec);
  }
};
[[maybe_unused]] auto* const kCleanup = ::testing::AddGlobalTestEnvironment(new TempRootCleanup);

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

// report.html of a real trace bundle in a real browser (headless chromium): the verdict, and two
// ladders each for the answered and the lost probes, as laid out.
TEST_F(TraceLostForward, ReportHtmlInABrowser) {
  if (!chromium_binary()) GTEST_SKIP() << "chromium not installed";
  auto r = run(kV4);
  ASSERT_EQ(r.proc.exit_code, 4) << r.log();
  const fs::path scratch = r.dir + "-chromium";
  fs::create_directories(scratch);
  Rendered page = render(r.dir + "/report.html", 1000, scratch);
  ASSERT_TRUE(page.error.empty()) << page.error;
  EXPECT_EQ(page.probe["verdict"], r.report["verdict"]["text"]);
  std::map<std::string, int> ladders;
  for (const auto& l : page.probe["ladders"]) ladders[l["fate"].get<std::string>()]++;
  EXPECT_EQ(ladders, (std::map<std::string, int>{{"answered", 2}, {"lost_forward", 2}}));
  EXPECT_EQ(page.probe["tables"]["fates"], 8);
  if (const char* shot = std::getenv("TANDEM_SCREENSHOT_DIR")) {  // the screenshot in docs/
    screenshot(r.dir + "/report.html", fs::path(shot) / "report-trace.png", 900, 1900, scratch);
  }
  fs::remove_all(scratch);
}

// DESIGN.md §3: an ICMP trace takes --target HOST, no port.
TEST_F(TraceClean, IcmpTargetWithoutPort) {
  Family icmp = kV4;
  icmp.target = "10.77.2.2";
  auto r = run(icmp, {"--icmp"});
  EXPECT_EQ(r.proc.exit_code, 0) << r.log();
  ASSERT_TRUE(r.report.is_object()) << r.log();
  EXPECT_EQ(r.report["summary"]["fates"]["answered"], kCount) << r.report["summary"].dump();
}

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

// --- injected although the server saw the probe ----------------------------------------------
// A device forwards each SYN AND answers it in the server's name (tandem-test-injector in the
// middlebox); the server's firewall drops the SYN after its capture, so the server sees every probe
// and sends nothing. The SYN-ACK at the client is one the server never sent: `injected`, never
// `answered`. Oracles: the injector's own count of forged replies and the server firewall's nft
// counter, both independent of tandem.

std::uint64_t server_drop_counter(LabFixture& lab) {
  ProcOutput o = lab.run_in(lab::Node::server, {"nft", "list", "chain", "inet", "fw", "in"});
  EXPECT_EQ(o.exit_code, 0) << o.err;
  auto at = o.out.find("counter packets ");
  if (at == std::string::npos) return 0;
  return std::stoull(o.out.substr(at + 16));
}

void check_injected_seen(TraceLab& t, const Family& fam, const std::string& reply_kind) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const std::string ready = temp_root() + "/injector-ready-" + info->name();
  std::error_code ec;
  fs::create_directories(temp_root(), ec);
  fs::remove(ready, ec);
  const std::uint64_t dropped_before = server_drop_counter(*t.lab);
  ProcOutput injector;
  std::thread inj([&] {
    injector = t.lab->run_in(lab::Node::middlebox,
                             {std::string(TANDEM_BINARY_DIR) + "/bin/tandem-test-injector", "--iface",
                              std::string(lab::kMiddleboxClientIf), "--server", fam.server, "--port", "21",
                              "--reply", reply_kind == "syn_ack" ? "synack" : "rst", "--count",
                              std::to_string(kCount), "--ready", ready, "--timeout-ms", "30000"},
                             std::chrono::seconds(40));
  });
  for (int i = 0; i < 500 && !fs::exists(ready); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  const bool listening = fs::exists(ready);
  TraceRun r;
  if (listening) r = trace(t, fam, {});
  inj.join();
  ASSERT_TRUE(listening) << "the injector never listened: " << injector.err;
  EXPECT_EQ(injector.out, "forged " + std::to_string(kCount) + "\n") << injector.err;
  EXPECT_EQ(server_drop_counter(*t.lab) - dropped_before, static_cast<std::uint64_t>(kCount));

  expect_fates(r, {{"injected", kCount}});
  for (const auto& p : r.report["probes"]) {
    EXPECT_EQ(p["reply"], reply_kind) << p.dump();
    EXPECT_EQ(p["hop"], fam.server) << p.dump();  // the forged reply claims the server's address
    EXPECT_EQ(p["forward_hops"], 1) << p.dump();  // matched at the server, one router on the way
  }
  // The server sent nothing: it received the probes, and for a forged SYN-ACK also the client
  // kernel's RST to it (the client has no socket for a raw probe).
  EXPECT_EQ(r.report["capture"]["server"]["received"], reply_kind == "syn_ack" ? 2 * kCount : kCount);
  expect_no_findings(r);
  expect_verdict(r, "injected", 4);
}

TEST_F(TraceInjectedSeen, ForgedSynAckWhileTheServerSawTheProbeIpv4) { check_injected_seen(*lab_, kV4, "syn_ack"); }
TEST_F(TraceInjectedSeen, ForgedSynAckWhileTheServerSawTheProbeIpv6) { check_injected_seen(*lab_, kV6, "syn_ack"); }
TEST_F(TraceInjectedSeen, ForgedRstWhileTheServerSawTheProbeIpv4) { check_injected_seen(*lab_, kV4, "rst"); }

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
  // The audit log is JSON lines (docs/agent.md "Audit log").
  EXPECT_NE(as.str().find("\"event\":\"key_refused\",\"key\":\"" + stranger_pub + "\""), std::string::npos) << as.str();
}

}  // namespace
}  // namespace tandem::testing
