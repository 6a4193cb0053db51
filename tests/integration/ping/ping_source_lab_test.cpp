// `tandem ping -S/--source` and `-e/--interface` in the namespace lab (DESIGN.md §3). The client
// namespace gets a second address on eth0 (10.77.1.3, fd77:1::3) and a side link: a veth pair
// side0 (10.77.9.2/24, a static neighbour entry for the server's address) <-> side1, both in the
// client namespace, so no route to the server goes through side0. The oracle is outside tandem:
// nftables counters in the server namespace, one per client source address, count the SYNs that
// arrive there (and the echo requests from 10.77.1.3), and a netdev ingress counter on side1 counts
// the SYNs that left through side0.
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/integration/common/lab_fixture.hpp"
#include "tests/integration/ping/ping_lab_common.hpp"

namespace tandem::testing {
namespace {

using nlohmann::json;

// Every SYN to port 21 is counted once in syn_all and once in the counter of its source address.
constexpr const char* kScenario = R"(
name = "ping-source"
[server]
listen = [21]
nft = """
table inet oracle {
  counter syn_all {}
  counter v4_first {}
  counter v4_second {}
  counter v6_first {}
  counter v6_second {}
  counter echo_second {}
  chain in {
    type filter hook input priority -10; policy accept;
    tcp dport 21 tcp flags & (fin|syn|rst|ack) == syn counter name "syn_all"
    tcp dport 21 tcp flags & (fin|syn|rst|ack) == syn ip saddr 10.77.1.2 counter name "v4_first"
    tcp dport 21 tcp flags & (fin|syn|rst|ack) == syn ip saddr 10.77.1.3 counter name "v4_second"
    tcp dport 21 tcp flags & (fin|syn|rst|ack) == syn ip6 saddr fd77:1::2 counter name "v6_first"
    tcp dport 21 tcp flags & (fin|syn|rst|ack) == syn ip6 saddr fd77:1::3 counter name "v6_second"
    icmp type echo-request ip saddr 10.77.1.3 counter name "echo_second"
  }
}
"""
)";

class PingSource : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (lab_skip_reason()) return;
    lab_ = std::make_unique<LabFixture>(kScenario);
    if (!lab_->ok()) return;
    const std::vector<std::vector<std::string>> setup = {
        {"ip", "addr", "add", "10.77.1.3/24", "dev", "eth0"},
        {"ip", "-6", "addr", "add", "fd77:1::3/64", "dev", "eth0", "nodad"},
        {"ip", "link", "add", "side0", "type", "veth", "peer", "name", "side1"},
        {"ip", "addr", "add", "10.77.9.2/24", "dev", "side0"},
        {"ip", "link", "set", "side0", "up"},
        {"ip", "link", "set", "side1", "up"},
        // Without it the SYNs would wait for an ARP answer that never comes and not leave at all.
        {"ip", "neigh", "replace", "10.77.2.2", "lladdr", "02:77:09:00:00:02", "dev", "side0", "nud",
         "permanent"},
        {"nft", "-f", side_rules_path()},
    };
    {
      std::ofstream f(side_rules_path());
      f << "table netdev oracle {\n  counter side_syn {}\n  chain in {\n"
           "    type filter hook ingress device \"side1\" priority 0; policy accept;\n"
           "    ip protocol tcp tcp dport 21 counter name \"side_syn\"\n  }\n}\n";
    }
    for (const auto& argv : setup) {
      auto r = lab_->run_in(lab::Node::client, argv);
      if (r.exit_code != 0) {
        setup_error_ = argv[0] + " " + argv[1] + " " + argv[2] + " ...: " + r.err;
        return;
      }
    }
  }
  static void TearDownTestSuite() {
    lab_.reset();
    ::unlink(side_rules_path().c_str());
  }
  static std::string side_rules_path() { return temp_path("side.nft"); }
  void SetUp() override {
    TANDEM_REQUIRE_LAB();
    ASSERT_TRUE(lab_ && lab_->ok()) << (lab_ ? lab_->error() : "no lab");
    ASSERT_TRUE(setup_error_.empty()) << setup_error_;
  }

  // The SYN counters (the oracle) by name: the server's, and side_syn of the client's side link.
  static std::map<std::string, std::uint64_t> counters() {
    std::map<std::string, std::uint64_t> out;
    for (const auto& [node, family] :
         {std::pair{lab::Node::server, "inet"}, std::pair{lab::Node::client, "netdev"}}) {
      auto r = lab_->run_in(node, {"nft", "-j", "list", "table", family, "oracle"});
      auto j = json::parse(r.out, nullptr, false);
      if (j.is_discarded()) continue;
      for (const auto& item : j["nftables"]) {
        if (item.contains("counter")) out[item["counter"]["name"]] = item["counter"]["packets"];
      }
    }
    return out;
  }

  struct Run {
    ProcOutput proc;
    json report;
    std::vector<json> lines;                    // --json-lines
    std::map<std::string, std::uint64_t> syns;  // counter deltas during the run
  };

  // tandem ping in the client namespace with --json and --json-lines, and what the server counted.
  static Run ping(std::vector<std::string> args, const std::string& tag) {
    const std::string report = temp_path(tag + ".json"), lines = temp_path(tag + ".jsonl");
    ::unlink(report.c_str());
    ::unlink(lines.c_str());
    args.insert(args.begin(), "ping");
    for (const auto& a : {"--json", report.c_str(), "--json-lines", lines.c_str()}) args.emplace_back(a);
    Run r;
    auto before = counters();
    r.proc = lab_->run_tandem_in_client(args);
    auto after = counters();
    for (const auto& [name, n] : after) r.syns[name] = n - before[name];
    // A counter that could not be read must fail the test, not read as "nothing arrived".
    for (const char* name :
         {"syn_all", "v4_first", "v4_second", "v6_first", "v6_second", "echo_second", "side_syn"}) {
      EXPECT_TRUE(after.count(name) && before.count(name)) << "oracle counter " << name << " unreadable";
    }
    r.report = read_json(report);
    std::ifstream f(lines);
    for (std::string line; std::getline(f, line);) r.lines.push_back(json::parse(line, nullptr, false));
    ::unlink(report.c_str());
    ::unlink(lines.c_str());
    return r;
  }

  static void expect_open_from(const Run& r, const std::string& src, std::size_t n) {
    EXPECT_EQ(r.proc.exit_code, 0) << r.proc.out << r.proc.err;
    EXPECT_EQ(r.report["source"], src) << r.report.dump(2);
    EXPECT_EQ(r.report["summary"]["states"]["open"], n) << r.report.dump(2);
    ASSERT_EQ(r.report["probes"].size(), n);
    for (const auto& p : r.report["probes"]) EXPECT_EQ(p["src"], src) << p;
    ASSERT_EQ(r.lines.size(), n) << r.proc.out;
    for (const auto& l : r.lines) {
      EXPECT_EQ(l["src"], src) << l;
      EXPECT_EQ(l["state"], "open") << l;
    }
  }

  static inline std::unique_ptr<LabFixture> lab_;
  static inline std::string setup_error_;
};

const std::vector<std::string> kFast = {"-p", "21", "-c", "4", "-i", "0.05", "--timeout", "0.5"};

std::vector<std::string> with(std::vector<std::string> head, const std::vector<std::string>& tail = kFast) {
  head.insert(head.end(), tail.begin(), tail.end());
  return head;
}

TEST_F(PingSource, SourceAddressIsTheProbesAndItsRepliesAreRecognisedV4) {
  // Control: the routing default is the first address, so the counters can tell the two apart.
  auto plain = ping(with({"10.77.2.2"}), "plain4");
  expect_open_from(plain, "10.77.1.2", 4);
  EXPECT_EQ(plain.syns["v4_first"], 4u);
  EXPECT_EQ(plain.syns["v4_second"], 0u);

  auto second = ping(with({"10.77.2.2", "-S", "10.77.1.3"}), "src4");
  expect_open_from(second, "10.77.1.3", 4);
  EXPECT_EQ(second.syns["v4_second"], 4u);
  EXPECT_EQ(second.syns["syn_all"], 4u);  // from 10.77.1.3 only
  EXPECT_EQ(second.syns["v4_first"], 0u);

  // The other probe modules take the source from the same place: ICMP echo from 10.77.1.3.
  auto echo =
      ping({"10.77.2.2", "--icmp", "-S", "10.77.1.3", "-c", "4", "-i", "0.05", "--timeout", "0.5"}, "echo4");
  expect_open_from(echo, "10.77.1.3", 4);
  EXPECT_EQ(echo.syns["echo_second"], 4u);
}

TEST_F(PingSource, SourceAddressIsTheProbesAndItsRepliesAreRecognisedV6) {
  auto second = ping(with({"fd77:2::2", "--source", "[fd77:1::3]"}), "src6");
  expect_open_from(second, "fd77:1::3", 4);
  EXPECT_EQ(second.syns["v6_second"], 4u);
  EXPECT_EQ(second.syns["syn_all"], 4u);
  EXPECT_EQ(second.syns["v6_first"], 0u);

  auto first = ping(with({"fd77:2::2", "-S", "fd77:1::2"}), "first6");
  expect_open_from(first, "fd77:1::2", 4);
  EXPECT_EQ(first.syns["v6_first"], 4u);
  EXPECT_EQ(first.syns["syn_all"], 4u);
}

TEST_F(PingSource, ForeignSourceIsRefusedWithOneLine) {
  auto foreign = ping(with({"10.77.2.2", "-S", "10.9.9.9"}), "foreign");
  EXPECT_EQ(foreign.proc.exit_code, 1);
  EXPECT_EQ(foreign.proc.err, "tandem: ping: --source 10.9.9.9 is not an address of this host\n");
  EXPECT_EQ(foreign.syns["syn_all"], 0u);  // nothing was sent

  // 10.77.2.2 is the server's, not this host's: still foreign.
  auto servers = ping(with({"fd77:2::2", "-S", "fd77:2::2"}), "servers");
  EXPECT_EQ(servers.proc.exit_code, 1);
  EXPECT_EQ(servers.proc.err, "tandem: ping: --source fd77:2::2 is not an address of this host\n");

  auto family = ping(with({"10.77.2.2", "-S", "fd77:1::3"}), "family");
  EXPECT_EQ(family.proc.exit_code, 1);
  EXPECT_EQ(family.proc.err, "tandem: ping: --source fd77:1::3 is IPv6 but the target 10.77.2.2 is IPv4\n");
  EXPECT_EQ(family.syns["syn_all"] + servers.syns["syn_all"], 0u);
}

TEST_F(PingSource, RightInterfaceWorks) {
  auto eth0 = ping(with({"10.77.2.2", "-e", "eth0"}), "eth0");
  expect_open_from(eth0, "10.77.1.2", 4);
  EXPECT_EQ(eth0.report["interface"], "eth0");
  EXPECT_NE(eth0.proc.out.find(", interface eth0"), std::string::npos) << eth0.proc.out;
  EXPECT_EQ(eth0.syns["v4_first"], 4u);

  // --device is the same option; with -S as well.
  auto both = ping(with({"fd77:2::2", "--device", "eth0", "-S", "fd77:1::3"}), "eth0-6");
  expect_open_from(both, "fd77:1::3", 4);
  EXPECT_EQ(both.syns["v6_second"], 4u);
  EXPECT_EQ(both.syns["syn_all"], 4u);
}

TEST_F(PingSource, WrongInterfaceSendsThereAndNothingArrives) {
  // No route to the server through side0: the kernel sends on-link there (as `ping -I` does), the
  // probes carry side0's address, leave through side0, reach nothing and nothing answers.
  auto r = ping(with({"10.77.2.2", "-e", "side0"}, {"-p", "21", "-c", "3", "-i", "0.05", "--timeout", "0.3"}),
                "side");
  EXPECT_EQ(r.proc.exit_code, 4) << r.proc.out << r.proc.err;
  EXPECT_EQ(r.report["source"], "10.77.9.2") << r.report.dump(2);
  EXPECT_EQ(r.report["summary"]["states"]["filtered"], 3u) << r.report.dump(2);
  EXPECT_EQ(r.report["verdict"]["code"], "no_answer");
  EXPECT_EQ(r.syns["syn_all"], 0u);
  EXPECT_EQ(r.syns["side_syn"], 3u);  // all three left through side0
  for (const auto& p : r.report["probes"]) EXPECT_EQ(p["src"], "10.77.9.2");

  auto unknown = ping(with({"10.77.2.2", "-e", "tdmnodev0"}), "nodev");
  EXPECT_EQ(unknown.proc.exit_code, 2);
  EXPECT_EQ(unknown.proc.err, "tandem: ping: --interface tdmnodev0: no such interface on this host\n");
  EXPECT_EQ(unknown.syns["syn_all"], 0u);

  // side0 holds no IPv6 address but a link-local one, useless towards a global target.
  auto no_v6 = ping(with({"fd77:2::2", "-e", "side0"}), "side6");
  EXPECT_EQ(no_v6.proc.exit_code, 2) << no_v6.proc.err;
  EXPECT_EQ(no_v6.proc.err,
            "tandem: ping: --interface side0 has no IPv6 address to send from (give --source)\n");
  EXPECT_EQ(no_v6.syns["syn_all"], 0u);
}

}  // namespace
}  // namespace tandem::testing
