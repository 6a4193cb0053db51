// The lab's client sites (DESIGN.md §4): [client2] behind its own middlebox interface, extra
// `addresses` on a client namespace, and an agent in every client namespace. The oracles are the
// real kernel (connect() results) and nftables counters in the server and client2 namespaces,
// never tandem's own output. Needs root (skips otherwise).
#include <sys/stat.h>

#include <cerrno>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "controller/lab/lab.hpp"
#include "controller/lab/lab_agents.hpp"
#include "tests/integration/common/lab_fixture.hpp"
#include "tests/integration/common/netns_socket.hpp"

namespace tandem::testing {
namespace {

using lab::Node;
using namespace std::chrono_literals;
using Counts = std::map<std::string, std::int64_t>;

// Every address a client site can send from in the scenario below.
const std::vector<std::string> kSources = {"10.77.1.2", "10.77.1.3", "10.77.3.2", "10.77.3.3",
                                           "fd77:1::2", "fd77:1::3", "fd77:3::2", "fd77:3::3"};

// nft counter name for a TCP SYN (or UDP datagram) from `src`: "syn_10_77_3_2", "udp_fd77_3__2".
std::string counter(const std::string& kind, std::string src) {
  for (char& c : src)
    if (c == '.' || c == ':') c = '_';
  return kind + "_" + src;
}

// The server counts, per source address, the SYNs to port 21 and the datagrams to port 53 that
// reach it, plus every SYN to 21 whatever its source (so an unexpected source shows up as a total
// that the per-source counters do not explain). client2 drops its own datagrams to port 53, and
// counts them.
std::string two_sites_scenario() {
  std::string counters = "  counter syn_all { }\n";
  std::string rules;
  for (const auto& src : kSources) {
    const std::string family = src.find(':') == std::string::npos ? "ip" : "ip6";
    counters += "  counter " + counter("syn", src) + " { }\n  counter " + counter("udp", src) + " { }\n";
    rules += "    " + family + " saddr " + src + " tcp dport 21 tcp flags & (syn | ack) == syn counter name \"" +
             counter("syn", src) + "\"\n";
    rules += "    " + family + " saddr " + src + " udp dport 53 counter name \"" + counter("udp", src) + "\"\n";
  }
  return R"(name = "two-sites"
[client]
addresses = ["10.77.1.3", "fd77:1::3"]
[client2]
addresses = ["10.77.3.3", "fd77:3::3"]
nft = """
table inet c2 {
  counter dropped_udp { }
  chain out {
    type filter hook output priority 0;
    udp dport 53 counter name "dropped_udp" drop
  }
}
"""
[server]
listen = [21]
listen_udp = [53]
nft = """
table inet seen {
)" + counters + R"(  chain in {
    type filter hook input priority 0;
    tcp dport 21 tcp flags & (syn | ack) == syn counter name "syn_all"
)" + rules + R"(  }
}
"""
)";
}

// Packet counts of the named counters of `table` in a namespace (`nft -j list counters`).
Counts nft_counters(LabFixture& lab, Node node, const std::string& table) {
  Counts out;
  auto r = lab.run_in(node, {"nft", "-j", "list", "counters", "table", "inet", table});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("nftables")) {
    ADD_FAILURE() << "nft -j output: " << r.out;
    return out;
  }
  for (const auto& e : j["nftables"]) {
    if (e.contains("counter")) out[e["counter"]["name"].get<std::string>()] = e["counter"]["packets"].get<std::int64_t>();
  }
  return out;
}

// The counters that changed between two readings, with their increase.
Counts delta(const Counts& before, const Counts& after) {
  Counts d;
  for (const auto& [name, n] : after) {
    const auto it = before.find(name);
    const std::int64_t was = it == before.end() ? 0 : it->second;
    if (n != was) d[name] = n - was;
  }
  return d;
}

// True when process `pid` lives in the lab namespace `netns` (same nsfs inode).
bool in_netns(pid_t pid, const std::string& netns) {
  struct stat a {}, b {};
  if (::stat(("/proc/" + std::to_string(pid) + "/ns/net").c_str(), &a) != 0) return false;
  if (::stat(("/run/netns/" + netns).c_str(), &b) != 0) return false;
  return a.st_ino == b.st_ino && a.st_dev == b.st_dev;
}

// One lab for the suite: the checks below read counter deltas, so they do not disturb each other.
class ClientSites : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (lab_skip_reason()) return;
    scenario_ = two_sites_scenario();
    lab_ = std::make_unique<LabFixture>(scenario_);
  }
  static void TearDownTestSuite() { lab_.reset(); }
  void SetUp() override {
    TANDEM_REQUIRE_LAB();
    ASSERT_TRUE(lab_ && lab_->ok()) << (lab_ ? lab_->error() : "no lab");
  }
  LabFixture& lab() { return *lab_; }
  const std::string& cl2() { return lab_->lab().client2_ns(); }
  Counts server_counters() { return nft_counters(*lab_, Node::server, "seen"); }

  // One TCP connect to the server's listener from `netns` (bound to `source` unless empty): it
  // must succeed, and the server must have seen exactly one SYN, from `seen_from`.
  void expect_connect_seen_from(const std::string& netns, const std::string& dst, const std::string& source,
                                const std::string& seen_from) {
    const auto before = server_counters();
    EXPECT_EQ(tcp_connect(netns, dst, 21, 3s, source), 0) << netns << " -> " << dst << " from '" << source << "'";
    EXPECT_EQ(delta(before, server_counters()), (Counts{{"syn_all", 1}, {counter("syn", seen_from), 1}}))
        << netns << " -> " << dst << " bound to '" << source << "'";
  }

  static inline std::string scenario_;
  static inline std::unique_ptr<LabFixture> lab_;
};

TEST_F(ClientSites, Client2HasItsOwnLinkAddressesAndDefaultRoutes) {
  ASSERT_TRUE(lab().lab().has(Node::client2));
  EXPECT_EQ(cl2(), lab().lab().prefix() + "-cl2");
  auto addr = lab().run_in(Node::client2, {"ip", "-o", "addr", "show", "dev", "eth0"});
  ASSERT_EQ(addr.exit_code, 0) << addr.err;
  for (const char* a : {"inet 10.77.3.2/24", "inet6 fd77:3::2/64", "inet 10.77.3.3/24", "inet6 fd77:3::3/64"})
    EXPECT_NE(addr.out.find(a), std::string::npos) << a << "\n" << addr.out;
  auto mbx = lab().run_in(Node::middlebox, {"ip", "-o", "addr", "show", "dev", "eth-cl2"});
  EXPECT_NE(mbx.out.find("inet 10.77.3.1/24"), std::string::npos) << mbx.out;
  EXPECT_NE(mbx.out.find("inet6 fd77:3::1/64"), std::string::npos) << mbx.out;
  auto r4 = lab().run_in(Node::client2, {"ip", "route", "show", "default"});
  EXPECT_NE(r4.out.find("default via 10.77.3.1 dev eth0"), std::string::npos) << r4.out;
  auto r6 = lab().run_in(Node::client2, {"ip", "-6", "route", "show", "default"});
  EXPECT_NE(r6.out.find("default via fd77:3::1 dev eth0"), std::string::npos) << r6.out;
  // The server routes back to client2's subnets through the middlebox.
  auto back4 = lab().run_in(Node::server, {"ip", "route", "get", "10.77.3.3"});
  EXPECT_NE(back4.out.find("via 10.77.2.1"), std::string::npos) << back4.out;
  auto back6 = lab().run_in(Node::server, {"ip", "-6", "route", "get", "fd77:3::3"});
  EXPECT_NE(back6.out.find("via fd77:2::1"), std::string::npos) << back6.out;
  // The client site got its extra addresses, on its own interface.
  auto cli = lab().run_in(Node::client, {"ip", "-o", "addr", "show", "dev", "eth0"});
  EXPECT_NE(cli.out.find("inet 10.77.1.3/24"), std::string::npos) << cli.out;
  EXPECT_NE(cli.out.find("inet6 fd77:1::3/64"), std::string::npos) << cli.out;
}

TEST_F(ClientSites, SiteListNamesEveryNamespaceAndAddress) {
  const auto& sites = lab().lab().client_sites();
  ASSERT_EQ(sites.size(), 2U);
  EXPECT_EQ(sites[0].name, "client");
  EXPECT_EQ(sites[0].node, Node::client);
  EXPECT_EQ(sites[0].ns, lab().client_ns());
  EXPECT_EQ(sites[0].addresses, (std::vector<std::string>{"10.77.1.2", "fd77:1::2", "10.77.1.3", "fd77:1::3"}));
  EXPECT_EQ(sites[1].name, "client2");
  EXPECT_EQ(sites[1].node, Node::client2);
  EXPECT_EQ(sites[1].ns, cl2());
  EXPECT_EQ(sites[1].addresses, (std::vector<std::string>{"10.77.3.2", "fd77:3::2", "10.77.3.3", "fd77:3::3"}));
  // The lines `tandem lab up` prints for them.
  const std::string text = lab::client_sites_text(lab().lab());
  auto col = [](const std::string& ns) { return ns + std::string(ns.size() < 16 ? 16 - ns.size() : 0, ' '); };
  EXPECT_EQ(text, "  client     " + col(lab().client_ns()) + " eth0     10.77.1.2  fd77:1::2  10.77.1.3  fd77:1::3   via eth-cli 10.77.1.1 fd77:1::1\n"
                  "  client2    " + col(cl2()) + " eth0     10.77.3.2  fd77:3::2  10.77.3.3  fd77:3::3   via eth-cl2 10.77.3.1 fd77:3::1\n")
      << text;
  auto state = lab::read_state(lab().lab().prefix());
  ASSERT_TRUE(state.ok()) << state.error().text();
  ASSERT_EQ(state->clients.size(), 2U);
  EXPECT_EQ(state->clients[1].ns, cl2());
  EXPECT_EQ(state->clients[1].addresses, sites[1].addresses);
}

// (a) and (c): client2's connections reach the real listener and arrive from 10.77.3.2 / fd77:3::2.
TEST_F(ClientSites, Client2ConnectsAndTheServerSeesItsAddress) {
  expect_connect_seen_from(cl2(), "10.77.2.2", "", "10.77.3.2");
  expect_connect_seen_from(cl2(), "fd77:2::2", "", "fd77:3::2");
  expect_connect_seen_from(cl2(), "10.77.2.2", "10.77.3.3", "10.77.3.3");
  expect_connect_seen_from(cl2(), "fd77:2::2", "fd77:3::3", "fd77:3::3");
}

// (b): a connection bound to an extra address arrives from it; one that names no source still
// leaves from the site's primary address, in both families.
TEST_F(ClientSites, ExtraAddressesAreUsableButNotTheDefaultSource) {
  expect_connect_seen_from(lab().client_ns(), "10.77.2.2", "10.77.1.3", "10.77.1.3");
  expect_connect_seen_from(lab().client_ns(), "fd77:2::2", "fd77:1::3", "fd77:1::3");
  expect_connect_seen_from(lab().client_ns(), "10.77.2.2", "", "10.77.1.2");
  expect_connect_seen_from(lab().client_ns(), "fd77:2::2", "", "fd77:1::2");
  // Another site's address is not this namespace's: the kernel refuses to bind it.
  EXPECT_EQ(tcp_connect(lab().client_ns(), "10.77.2.2", 21, 1s, "10.77.3.2"), EADDRNOTAVAIL);
}

// (d): client2's ruleset drops its own datagrams to port 53 and nobody else's.
TEST_F(ClientSites, Client2RulesetAppliesOnlyToClient2) {
  const auto server_before = server_counters();
  const auto c2_before = nft_counters(lab(), Node::client2, "c2");
  EXPECT_EQ(udp_echo(lab().client_ns(), "10.77.2.2", 53, "from-client"), 0);  // echoed back
  // A drop in the output hook fails the send itself: the kernel says EPERM.
  EXPECT_EQ(udp_echo(cl2(), "10.77.2.2", 53, "from-client2", 700ms), EPERM);
  EXPECT_EQ(delta(c2_before, nft_counters(lab(), Node::client2, "c2")), (Counts{{"dropped_udp", 1}}));
  EXPECT_EQ(delta(server_before, server_counters()), (Counts{{"udp_10_77_1_2", 1}}));
  // The ruleset is in client2 only.
  EXPECT_EQ(lab().run_in(Node::client, {"nft", "list", "tables"}).out, "");
  EXPECT_EQ(lab().run_in(Node::middlebox, {"nft", "list", "tables"}).out, "");
  // TCP from client2 is untouched by it.
  expect_connect_seen_from(cl2(), "10.77.2.2", "", "10.77.3.2");
}

// (e): an agent per client namespace, each with its own key and policy, and both answer.
TEST_F(ClientSites, AnAgentInEveryClientNamespaceAnswers) {
  lab::LabAgentsOptions opts;
  opts.workdir = "/tmp/tandem-client-sites-" + std::to_string(::getpid());
  opts.agent_binary = std::string(TANDEM_BINARY_DIR) + "/bin/tandem-agent";
  auto started = lab::LabAgents::start(lab().lab(), opts);
  ASSERT_TRUE(started.ok()) << started.error().text();
  const auto& agents = **started;
  const auto& sites = agents.client_sites();
  ASSERT_EQ(sites.size(), 2U);
  EXPECT_EQ(sites[0].site.name, "client");
  EXPECT_EQ(sites[1].site.name, "client2");
  EXPECT_EQ(sites[0].agent_address, agents.client_address());  // the single-client API is site 0
  EXPECT_EQ(sites[0].pid, agents.client_pid());
  EXPECT_TRUE(sites[1].agent_address.starts_with("tcp://10.77.3.2:7070#")) << sites[1].agent_address;
  EXPECT_NE(sites[0].agent_address, sites[1].agent_address);        // own keys
  EXPECT_NE(sites[0].policy_file, sites[1].policy_file);            // own policies
  EXPECT_EQ(sites[1].site.addresses, lab().lab().client_sites()[1].addresses);
  EXPECT_TRUE(in_netns(sites[0].pid, lab().client_ns()));
  EXPECT_TRUE(in_netns(sites[1].pid, cl2()));

  // agent-status from the client namespace: HELLO, STATUS and a clock probe to every agent.
  auto st = lab().run_tandem_in(Node::client, {"agent-status", sites[0].agent_address, sites[1].agent_address,
                                               agents.server_address(), "--key", agents.controller_key(), "--json"},
                                30s);
  EXPECT_EQ(st.exit_code, 0) << st.out << st.err;
  const auto j = nlohmann::json::parse(st.out, nullptr, /*allow_exceptions=*/false);
  ASSERT_TRUE(j.is_array()) << st.out << st.err;
  ASSERT_EQ(j.size(), 3U);
  const char* ids[] = {"lab-client", "lab-client2", "lab-server"};
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(j[i]["ok"], true) << j[i].dump();
    EXPECT_EQ(j[i]["agent_id"], ids[i]) << j[i].dump();
  }
  EXPECT_EQ(sites[1].agent_id, "lab-client2");
  started->reset();
  std::error_code ec;
  std::filesystem::remove_all(opts.workdir, ec);
}

TEST(ClientSitesAbsent, WithoutClient2TheLabHasOneSiteAndNoFallbackNamespace) {
  TANDEM_REQUIRE_LAB();
  LabFixture lab("name = \"one\"\n[server]\nlisten = [21]\n");
  ASSERT_TRUE(lab.ok()) << lab.error();
  EXPECT_FALSE(lab.lab().has(Node::client2));
  EXPECT_TRUE(lab.lab().client2_ns().empty());
  ASSERT_EQ(lab.lab().client_sites().size(), 1U);
  EXPECT_EQ(lab.lab().client_sites()[0].addresses, (std::vector<std::string>{"10.77.1.2", "fd77:1::2"}));
  // No client2 namespace: exec_in refuses instead of running in our own namespace.
  auto r = lab.run_in(Node::client2, {"true"});
  EXPECT_EQ(r.exit_code, -1);
  EXPECT_NE(r.err.find("has no client2 namespace"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists("/run/netns/" + lab.lab().prefix() + "-cl2"));
}

// (f) Lab::down and a failed up: no client2 namespace stays behind.
TEST(ClientSitesTeardown, DownAndAFailedUpLeaveNoNamespace) {
  TANDEM_REQUIRE_LAB();
  auto s = lab::parse_scenario("name = \"t\"\n[client2]\naddresses = [\"fd77:3::9\"]\n", "t.toml");
  ASSERT_TRUE(s.ok()) << s.error().text();
  auto l = lab::Lab::up(*s);
  ASSERT_TRUE(l.ok()) << l.error().text();
  const std::string prefix = l->prefix();
  for (const char* sfx : {"-cli", "-mbx", "-srv", "-cl2"}) EXPECT_TRUE(std::filesystem::exists("/run/netns/" + prefix + sfx));
  ASSERT_TRUE(l->down().ok());
  for (const char* sfx : {"-cli", "-mbx", "-srv", "-cl2"}) EXPECT_FALSE(std::filesystem::exists("/run/netns/" + prefix + sfx)) << sfx;

  // client2's ruleset is applied last: its rejection tears down all four namespaces.
  auto bad = lab::parse_scenario("name = \"bad\"\n[client2]\nnft = \"table inet x { chain y { bogus } }\"\n", "bad.toml");
  ASSERT_TRUE(bad.ok());
  const std::string name = "tdmz" + std::to_string(::getpid() % 1000000);
  auto failed = lab::Lab::up(*bad, lab::LabOptions{name, false});
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.error().code, Errc::config);
  EXPECT_NE(failed.error().text().find("bad.toml: [client2] nft ruleset rejected"), std::string::npos) << failed.error().text();
  for (const char* sfx : {"-cli", "-mbx", "-srv", "-cl2"}) EXPECT_FALSE(std::filesystem::exists("/run/netns/" + name + sfx)) << sfx;
  EXPECT_FALSE(std::filesystem::exists(lab::state_dir(name)));
}

// A namespace named like our client2 that someone else created is never adopted nor removed.
TEST(ClientSitesTeardown, AForeignNamespaceWithTheClient2NameIsLeftAlone) {
  TANDEM_REQUIRE_LAB();
  const std::string name = "tdmy" + std::to_string(::getpid() % 1000000);
  const std::string foreign = name + "-cl2";
  auto add = lab::exec_in_netns("", {"ip", "netns", "add", foreign});
  ASSERT_TRUE(add.ok() && add->exit_code == 0) << (add.ok() ? add->err : add.error().text());
  auto s = lab::parse_scenario("name = \"t\"\n[client2]\n", "t.toml");
  ASSERT_TRUE(s.ok());
  auto l = lab::Lab::up(*s, lab::LabOptions{name, false});
  ASSERT_FALSE(l.ok());
  EXPECT_EQ(l.error().code, Errc::environment);
  EXPECT_NE(l.error().text().find("create netns " + foreign), std::string::npos) << l.error().text();
  EXPECT_TRUE(std::filesystem::exists("/run/netns/" + foreign));
  for (const char* sfx : {"-cli", "-mbx", "-srv"}) EXPECT_FALSE(std::filesystem::exists("/run/netns/" + name + sfx)) << sfx;
  EXPECT_FALSE(std::filesystem::exists(lab::state_dir(name)));
  (void)lab::exec_in_netns("", {"ip", "netns", "del", foreign});
}

}  // namespace
}  // namespace tandem::testing
