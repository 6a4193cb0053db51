// Several vantage points in one run (DESIGN.md §3, issue 11): one client agent sending from two
// source addresses, interleaved in one `tandem trace`. The middlebox treats the sources
// differently; the oracle is its own nft counter (and the rule's exact `numgen inc` arithmetic),
// never tandem's earlier output.
#include "tests/integration/trace/trace_lab_fixture.hpp"

namespace tandem::testing {
namespace {

// 3 in every 10 window-scale SYNs from 10.77.1.3 / fd77:1::3 are dropped; every other source passes.
constexpr char kWscaleOneSource[] = R"(name = "trace-vantage-wscale"
[middlebox]
nft = """
table inet imp {
  chain forw {
    type filter hook forward priority 0;
    ip saddr 10.77.1.3 tcp dport 21 tcp flags syn tcp option window exists numgen inc mod 10 < 3 counter drop
    ip6 saddr fd77:1::3 tcp dport 21 tcp flags syn tcp option window exists numgen inc mod 10 < 3 counter drop
  }
}
"""
[server]
listen = [21]
)";

// The second source alone is masqueraded on its way to the server (a NAT on one site only).
constexpr char kNatOneSource[] = R"(name = "trace-vantage-nat"
[middlebox]
nft = """
table ip nat {
  chain post {
    type nat hook postrouting priority 100;
    ip saddr 10.77.1.3 oifname "eth-srv" masquerade
  }
}
"""
[server]
listen = [21]
)";

std::uint64_t forward_drops(LabFixture& lab) {
  ProcOutput o = lab.run_in(lab::Node::middlebox, {"nft", "list", "chain", "inet", "imp", "forw"});
  EXPECT_EQ(o.exit_code, 0) << o.err;
  std::uint64_t total = 0;
  for (std::size_t at = o.out.find("counter packets "); at != std::string::npos; at = o.out.find("counter packets ", at + 1))
    total += std::stoull(o.out.substr(at + 16));
  return total;
}

void add_address(LabFixture& lab, const std::string& addr, bool v6) {
  std::vector<std::string> argv = {"ip"};
  if (v6) argv.push_back("-6");
  argv.insert(argv.end(), {"addr", "add", addr + (v6 ? "/64" : "/24"), "dev", "eth0"});
  if (v6) argv.push_back("nodad");
  ProcOutput o = lab.run_in(lab::Node::client, argv);
  ASSERT_EQ(o.exit_code, 0) << o.err;
}

const json* row_of(const json& report, const std::string& src) {
  for (const auto& v : report["vantage"])
    if (v["src"] == src) return &v;
  return nullptr;
}

void check_wscale_only_from_second_source(const Family& fam, const std::string& first, const std::string& second) {
  auto t = TraceLab::start(kWscaleOneSource);
  ASSERT_TRUE(t->ok()) << t->error;
  add_address(*t->lab, second, fam.v6);
  const std::uint64_t before = forward_drops(*t->lab);
  TraceRun r = trace(*t, fam, {"--source", first, "--source", second, "--tcp-options", kOptions});
  ASSERT_TRUE(r.report.is_object()) << r.log();
  EXPECT_EQ(r.proc.exit_code, 4) << r.log();
  // The oracle: 30 probes through `numgen inc mod 10 < 3` are exactly 9 drops, all from `second`.
  EXPECT_EQ(forward_drops(*t->lab) - before, 9u);
  const json& j = r.report;
  EXPECT_EQ(j["summary"]["probes"], 2 * kCount) << r.log();
  EXPECT_EQ(j["summary"]["fates"]["lost_forward"], 9);
  EXPECT_EQ(j["summary"]["fates"]["answered"], 2 * kCount - 9);
  EXPECT_EQ(j["capture"]["ambiguous"], 0);
  ASSERT_EQ(j["vantage"].size(), 2u) << j["vantage"].dump(2);
  const json* a = row_of(j, first);
  const json* b = row_of(j, second);
  ASSERT_TRUE(a && b) << j["vantage"].dump(2);
  EXPECT_EQ((*a)["probes"], kCount);
  EXPECT_EQ((*a)["fates"]["answered"], kCount);
  EXPECT_EQ((*a)["fates"]["lost_forward"], 0);
  EXPECT_EQ((*a)["verdict"], "clean");
  EXPECT_EQ((*b)["probes"], kCount);
  EXPECT_EQ((*b)["fates"]["lost_forward"], 9);
  EXPECT_EQ((*b)["fates"]["answered"], kCount - 9);
  EXPECT_EQ((*a)["target"], fam.target);
  // Every probe says where it came from, and the lost ones are all from the second source.
  int from_second_lost = 0, lost = 0;
  for (const auto& p : j["probes"]) {
    ASSERT_TRUE(p.contains("src")) << p.dump();
    if (p["fate"] == "lost_forward") {
      ++lost;
      from_second_lost += p["src"] == second;
    }
  }
  EXPECT_EQ(lost, 9);
  EXPECT_EQ(from_second_lost, 9);
  // The verdict names the failing vantage and the clean one.
  const std::string text = j["verdict"]["text"];
  EXPECT_EQ(j["verdict"]["code"], "lost_forward") << text;
  EXPECT_NE(text.find("Only from " + second + " (9 of 30, 30 %)"), std::string::npos) << text;
  EXPECT_NE(text.find("from " + first + " all 30 probes were answered"), std::string::npos) << text;
  // report.md has the per-vantage table; the terminal one line per vantage.
  std::ifstream md(r.dir + "/report.md");
  std::string mdtext((std::istreambuf_iterator<char>(md)), {});
  EXPECT_NE(mdtext.find("## Per vantage"), std::string::npos);
  EXPECT_NE(r.proc.out.find("vantage: " + second), std::string::npos) << r.proc.out;
}

TEST(TraceVantage, WscaleLostOnlyFromOneOfTwoSourcesIpv4) {
  check_wscale_only_from_second_source(kV4, "10.77.1.2", "10.77.1.3");
}

TEST(TraceVantage, WscaleLostOnlyFromOneOfTwoSourcesIpv6) {
  check_wscale_only_from_second_source(kV6, "fd77:1::2", "fd77:1::3");
}

// NAT on one vantage only: both still match exactly (no ambiguity, every probe answered), and the
// source rewrite is a finding for that vantage's probes only.
TEST(TraceVantage, NatOnOneSourceOnlyStillMatchesExactly) {
  auto t = TraceLab::start(kNatOneSource);
  ASSERT_TRUE(t->ok()) << t->error;
  add_address(*t->lab, "10.77.1.3", false);
  TraceRun r = trace(*t, kV4, {"--source", "10.77.1.2", "--source", "10.77.1.3"});
  ASSERT_TRUE(r.report.is_object()) << r.log();
  const json& j = r.report;
  EXPECT_EQ(j["summary"]["fates"]["answered"], 2 * kCount) << j["summary"].dump() << r.log();
  EXPECT_EQ(j["capture"]["ambiguous"], 0);
  bool src_finding = false;
  for (const auto& f : j["findings"]) {
    if (f["field"] == "ip.src") {
      src_finding = true;
      EXPECT_EQ(f["sent"], "10.77.1.3");
      EXPECT_EQ(f["received"], "10.77.2.1");
      EXPECT_EQ(f["probes"], kCount);
    }
  }
  EXPECT_TRUE(src_finding) << j["findings"].dump(2);
  for (const auto& v : j["vantage"]) EXPECT_EQ(v["fates"]["answered"], kCount) << v.dump();
}

// A --source no client agent owns: refused before anything is sent, one line naming it.
TEST(TraceVantage, SourceNotOwnedByAnyAgentIsRefused) {
  auto t = TraceLab::start(kClean);
  ASSERT_TRUE(t->ok()) << t->error;
  TraceRun r = trace(*t, kV4, {"--source", "10.77.1.9"});
  EXPECT_EQ(r.proc.exit_code, 1) << r.log();
  EXPECT_NE(r.proc.err.find("--source 10.77.1.9 is not an address any client agent may send from"), std::string::npos)
      << r.proc.err;
  EXPECT_EQ(std::count(r.proc.err.begin(), r.proc.err.end(), '\n'), 1) << r.proc.err;
  EXPECT_FALSE(r.report.is_object());
}

// bisect --bisect-source: the source is a feature; the trigger is the combination "window scale
// from 10.77.1.3" (neither alone fails). Fixed seed and `numgen inc`: the experiment repeats exactly.
TEST(BisectVantage, NamesWscaleAndTheSourceTogether) {
  auto t = TraceLab::start(kWscaleOneSource);
  ASSERT_TRUE(t->ok()) << t->error;
  add_address(*t->lab, "10.77.1.3", false);
  const std::string dir = temp_root() + "/BisectVantage";
  std::error_code ec;
  fs::remove_all(dir, ec);
  // clang-format off
  ProcOutput p = t->lab->run_tandem_in_client({"bisect",
      "--client", t->agents->client_address(), "--server", t->agents->server_address(),
      "--key", t->agents->controller_key(), "--target", "10.77.2.2:21",
      "--tcp-options", kOptions, "--bisect-source", "10.77.1.3", "--seed", "4244",
      "--budget", "2000", "--count", "60", "--rate", "400", "--tail", "0.5", "--out", dir, "--force", "-q"},
      std::chrono::seconds(120));
  // clang-format on
  json j = read_json(dir + "/report.json");
  ASSERT_TRUE(j.is_object()) << p.out << p.err;
  EXPECT_EQ(p.exit_code, 4) << p.out << p.err;
  EXPECT_EQ(j["bisect"]["result"], "trigger") << j["bisect"].dump(2) << p.out;
  EXPECT_EQ(j["bisect"]["trigger"], json::parse(R"([{"option":"wscale"},{"feature":"source","value":"10.77.1.3"}])"))
      << j["bisect"].dump(2);
  EXPECT_EQ(j["bisect"]["failure_fate"], "lost_forward");
  // Every failing probe of the bundle left from 10.77.1.3; both vantages are listed.
  int failed = 0;
  for (const auto& pr : j["probes"]) {
    if (pr["fate"] != "lost_forward") continue;
    ++failed;
    EXPECT_EQ(pr["src"], "10.77.1.3") << pr.dump();
  }
  EXPECT_GT(failed, 0);
  ASSERT_EQ(j["vantage"].size(), 2u) << j["vantage"].dump(2);
  EXPECT_NE(p.out.find("source=10.77.1.3"), std::string::npos) << p.out;
}

// --- two client sites -------------------------------------------------------------------------

constexpr char kTwoSitesClean[] = R"(name = "trace-two-sites-clean"
[client2]
[server]
listen = [21]
)";

// A second server agent in the server namespace, on a second address of the server (10.77.2.3),
// with the first one's key and policy: an N x M matrix needs M server agents.
struct SecondServer {
  std::thread thread;
  ProcOutput out;
  std::string address;
  LabFixture* lab = nullptr;
  ~SecondServer() {
    if (lab) lab->run_in(lab::Node::server, {"pkill", "-f", "tcp://10.77.2.3:7071"});
    if (thread.joinable()) thread.join();
  }
};

void start_second_server(TraceLab& t, SecondServer& s) {
  ProcOutput o = t.lab->run_in(lab::Node::server, {"ip", "addr", "add", "10.77.2.3/24", "dev", "eth0"});
  ASSERT_EQ(o.exit_code, 0) << o.err;
  const std::string w = t.agents->workdir();
  s.lab = t.lab.get();
  s.thread = std::thread([&s, w] {
    s.out = s.lab->run_in(lab::Node::server,
                          {std::string(TANDEM_BINARY_DIR) + "/bin/tandem-agent", "--listen", "tcp://10.77.2.3:7071", "--key",
                           w + "/server.key", "--policy", w + "/server-policy.toml", "--audit-log", w + "/server2-audit.log",
                           "--data-dir", w + "/server2-data"},
                          std::chrono::seconds(90));
  });
  // Its address line: the first server's with the host and port replaced (same key).
  const std::string first = t.agents->server_address();
  s.address = "tcp://10.77.2.3:7071" + first.substr(first.find('#'));
  for (int i = 0; i < 100; ++i) {
    ProcOutput st = t.lab->run_tandem_in_client({"agent-status", "--key", t.agents->controller_key(), s.address},
                                                std::chrono::seconds(5));
    if (st.exit_code == 0) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  FAIL() << "the second server agent did not answer: " << s.out.err;
}

// A clean 2 x 2 matrix: two client sites, two servers (targets 10.77.2.2 and 10.77.2.3), four
// cells, every probe answered, no finding; the vantage table has every cell.
TEST(TraceVantage, CleanTwoByTwoMatrix) {
  auto t = TraceLab::start(kTwoSitesClean);
  ASSERT_TRUE(t->ok()) << t->error;
  ASSERT_EQ(t->agents->client_sites().size(), 2u);
  SecondServer second;
  ASSERT_NO_FATAL_FAILURE(start_second_server(*t, second));
  const std::string dir = temp_root() + "/TraceVantage.CleanTwoByTwoMatrix";
  // clang-format off
  ProcOutput p = t->lab->run_tandem_in_client({"trace",
      "--client", t->agents->client_sites()[0].agent_address, "--client", t->agents->client_sites()[1].agent_address,
      "--server", t->agents->server_address(), "--server", second.address,
      "--target", "10.77.2.2:21", "--target", "10.77.2.3:21", "--key", t->agents->controller_key(),
      "--count", std::to_string(kCount), "--rate", "300", "--tail", "0.5", "--out", dir, "--force", "-q"},
      std::chrono::seconds(90));
  // clang-format on
  json j = read_json(dir + "/report.json");
  ASSERT_TRUE(j.is_object()) << p.out << p.err;
  EXPECT_EQ(p.exit_code, 0) << p.out << p.err;
  EXPECT_EQ(j["verdict"]["code"], "clean") << j["verdict"].dump();
  EXPECT_EQ(j["summary"]["probes"], 4 * kCount);
  EXPECT_EQ(j["summary"]["fates"]["answered"], 4 * kCount) << j["summary"].dump();
  EXPECT_TRUE(j["findings"].empty()) << j["findings"].dump(2);
  ASSERT_EQ(j["vantage"].size(), 4u) << j["vantage"].dump(2);
  std::set<std::pair<std::string, std::string>> cells;
  for (const auto& v : j["vantage"]) {
    cells.insert({v["src"].get<std::string>(), v["target"].get<std::string>()});
    EXPECT_EQ(v["probes"], kCount) << v.dump();
    EXPECT_EQ(v["fates"]["answered"], kCount) << v.dump();
  }
  EXPECT_EQ(cells, (std::set<std::pair<std::string, std::string>>{{"10.77.1.2", "10.77.2.2:21"},
                                                                  {"10.77.1.2", "10.77.2.3:21"},
                                                                  {"10.77.3.2", "10.77.2.2:21"},
                                                                  {"10.77.3.2", "10.77.2.3:21"}}));
  // The agents' own captures are kept next to the merged ones.
  for (const char* f : {"client1.pcapng", "client2.pcapng", "server1.pcapng", "server2.pcapng", "client.pcapng", "merged.pcapng"})
    EXPECT_TRUE(fs::exists(dir + "/" + f)) << f;
}

// The built-in "only from one site" scenario through `tandem lab run` (both sites' agents, every
// address a vantage): the verdict blames 10.77.3.2 only; the middlebox counter is the oracle.
TEST(TraceVantage, OnlyOneSiteScenarioBlamesThatSite) {
  const std::string dir = temp_root() + "/only-one-site";
  lab::ExecOptions eo;
  eo.timeout = std::chrono::seconds(90);
  auto run = lab::exec_in_netns("", {LabFixture::tandem_binary(), "lab", "run", TANDEM_SCENARIO_DIR "/only-one-site.toml", "--out", dir}, eo);
  ASSERT_TRUE(run) << run.error().text();
  ProcOutput p{run->exit_code, run->timed_out, run->out, run->err};
  json j = read_json(dir + "/report.json");
  ASSERT_TRUE(j.is_object()) << p.out << p.err;
  EXPECT_EQ(p.exit_code, 4) << p.out << p.err;
  ASSERT_EQ(j["vantage"].size(), 2u) << j["vantage"].dump(2);
  const json* a = row_of(j, "10.77.1.2");
  const json* b = row_of(j, "10.77.3.2");
  ASSERT_TRUE(a && b);
  EXPECT_EQ((*a)["client"], "lab-client");
  EXPECT_EQ((*b)["client"], "lab-client2");
  EXPECT_EQ((*a)["fates"]["answered"], 100);
  // 100 window-scale SYNs from 10.77.3.2 through `numgen inc mod 10 < 3`: exactly 30 dropped.
  EXPECT_EQ((*b)["fates"]["lost_forward"], 30);
  EXPECT_EQ((*b)["fates"]["answered"], 70);
  const std::string text = j["verdict"]["text"];
  EXPECT_NE(text.find("Only from 10.77.3.2 (30 of 100, 30 %); from 10.77.1.2 all 100 probes were answered."),
            std::string::npos)
      << text;
}

}  // namespace
}  // namespace tandem::testing
