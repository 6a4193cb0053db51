// `tandem ping` end to end in the namespace lab: real raw sockets, real libpcap, real kernel
// listeners, real nftables middlebox. Each test asserts on report.json and, where the wire itself is
// the claim (source ports, option bytes), on an independent tcpdump capture at the server.
#include <unistd.h>

#include <fstream>
#include <memory>
#include <set>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/packet/decode.hpp"
#include "tests/integration/common/lab_fixture.hpp"
#include "tests/integration/ping/ping_lab_common.hpp"
#include "tests/integration/ping/tcpdump_capture.hpp"

namespace tandem::testing {
namespace {

using nlohmann::json;

struct PingRun {
  ProcOutput proc;
  json report;
};

PingRun ping(LabFixture& lab, std::vector<std::string> args, const std::string& tag) {
  std::string path = temp_path(tag + ".json");
  ::unlink(path.c_str());
  args.insert(args.begin(), "ping");
  args.push_back("--json");
  args.push_back(path);
  PingRun r;
  r.proc = lab.run_tandem_in_client(args);
  r.report = read_json(path);
  ::unlink(path.c_str());
  return r;
}

std::uint64_t state_count(const json& report, const std::string& state) {
  return report["summary"]["states"].value(state, std::uint64_t{0});
}

using PingLab = PingLabSuite;

void expect_states(LabFixture& lab, const std::string& target, bool v6) {
  std::vector<std::string> common = {target, "-c", "3", "-i", "0.05", "--timeout", "0.5"};
  if (v6) common.push_back("-6");
  auto with = [&](std::vector<std::string> extra) {
    auto args = common;
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  };
  auto open = ping(lab, with({"-p", "21"}), "open");
  EXPECT_EQ(open.proc.exit_code, 0) << open.proc.out << open.proc.err;
  EXPECT_EQ(state_count(open.report, "open"), 3u) << open.report.dump(2);
  EXPECT_EQ(open.report["verdict"]["code"], "clean");
  for (const auto& p : open.report["probes"]) {
    EXPECT_EQ(p["reply"], "syn_ack");
    EXPECT_TRUE(p["rtt_us"].is_number());
    EXPECT_GE(p["rtt_us"].get<std::int64_t>(), 0);
  }

  // DESIGN.md §3: a closed port is an answer but not the healthy one: `tandem ping … && echo up`
  // must not say "up".
  auto closed = ping(lab, with({"-p", "23"}), "closed");
  EXPECT_EQ(closed.proc.exit_code, 4) << closed.proc.out << closed.proc.err;
  EXPECT_EQ(closed.report["verdict"]["code"], "closed");
  EXPECT_EQ(state_count(closed.report, "closed"), 3u) << closed.report.dump(2);
  for (const auto& p : closed.report["probes"]) EXPECT_EQ(p["reply"], "rst");

  auto filtered = ping(lab, with({"-p", "25"}), "filtered");
  EXPECT_EQ(filtered.proc.exit_code, 4) << filtered.proc.out << filtered.proc.err;
  EXPECT_EQ(state_count(filtered.report, "filtered"), 3u) << filtered.report.dump(2);
  EXPECT_EQ(filtered.report["verdict"]["code"], "no_answer");
  for (const auto& p : filtered.report["probes"]) {
    EXPECT_TRUE(p["reply"].is_null());
    EXPECT_TRUE(p["rtt_us"].is_null());
  }
}

TEST_F(PingLab, OpenClosedFilteredIpv4) { expect_states(*lab_, "10.77.2.2", false); }
TEST_F(PingLab, OpenClosedFilteredIpv6) { expect_states(*lab_, "fd77:2::2", true); }

TEST_F(PingLab, AdminProhibitedNamesTheRouter) {
  auto v4 = ping(*lab_, {"10.77.2.2", "-p", "22", "-c", "2", "-i", "0.05", "--timeout", "0.5"}, "adm4");
  EXPECT_EQ(v4.proc.exit_code, 4);
  ASSERT_EQ(v4.report["probes"].size(), 2u) << v4.proc.out << v4.proc.err;
  for (const auto& p : v4.report["probes"]) {
    EXPECT_EQ(p["state"], "filtered");
    EXPECT_EQ(p["reply"], "icmp:3/13");
    EXPECT_EQ(p["from"], "10.77.1.1");
  }
  EXPECT_NE(v4.proc.out.find("admin-prohibited from 10.77.1.1"), std::string::npos) << v4.proc.out;

  auto v6 = ping(*lab_, {"[fd77:2::2]", "-p", "22", "-c", "2", "-i", "0.05", "--timeout", "0.5"}, "adm6");
  ASSERT_EQ(v6.report["probes"].size(), 2u) << v6.proc.out << v6.proc.err;
  for (const auto& p : v6.report["probes"]) {
    EXPECT_EQ(p["reply"], "icmp:1/1");
    EXPECT_EQ(p["from"], "fd77:1::1");
  }
}

TEST_F(PingLab, UdpAndIcmp) {
  auto echo = ping(*lab_, {"10.77.2.2", "--udp", "-p", "7", "-c", "3", "-i", "0.05", "--timeout", "0.5"}, "udp7");
  EXPECT_EQ(echo.proc.exit_code, 0) << echo.proc.out << echo.proc.err;
  EXPECT_EQ(state_count(echo.report, "open"), 3u) << echo.report.dump(2);

  auto closed = ping(*lab_, {"fd77:2::2", "--udp", "-p", "9", "-c", "2", "-i", "0.05", "--timeout", "0.5"}, "udp9");
  EXPECT_EQ(state_count(closed.report, "closed"), 2u) << closed.report.dump(2);
  for (const auto& p : closed.report["probes"]) {
    EXPECT_EQ(p["reply"], "icmp:1/4");  // ICMPv6 port unreachable from the server itself
    EXPECT_EQ(p["from"], "fd77:2::2");
  }

  auto silent = ping(*lab_, {"10.77.2.2", "--udp", "-p", "5353", "-c", "2", "-i", "0.05", "--timeout", "0.3"}, "udp53");
  EXPECT_EQ(state_count(silent.report, "open|filtered"), 2u) << silent.report.dump(2);

  for (const char* target : {"10.77.2.2", "fd77:2::2"}) {
    auto icmp = ping(*lab_, {target, "--icmp", "-c", "3", "-i", "0.05", "--timeout", "0.5"}, "icmp");
    EXPECT_EQ(icmp.proc.exit_code, 0) << icmp.proc.out << icmp.proc.err;
    EXPECT_EQ(state_count(icmp.report, "open"), 3u) << icmp.report.dump(2);
  }
}

// Every SYN the server received, decoded from the tcpdump oracle.
std::vector<packet::Decoded> syns_at_server(std::vector<TcpdumpCapture::Frame>& frames) {
  std::vector<packet::Decoded> out;
  for (auto& f : frames) {
    auto d = packet::decode(static_cast<std::uint32_t>(f.linktype), f.bytes);
    if (d.l4 == packet::L4::tcp && (d.tcp.flags & 0x12) == 0x02) out.push_back(d);
  }
  return out;
}

TEST_F(PingLab, SourcePortRandomPerProbeAndPinned) {
  {
    TcpdumpCapture cap(lab_->server_ns(), temp_path("sport-random.pcap"), "tcp dst port 21");
    ASSERT_TRUE(cap.ok());
    auto r = ping(*lab_, {"10.77.2.2", "-p", "21", "-c", "50", "--rate", "500", "--timeout", "0.5"}, "sport-random");
    EXPECT_EQ(r.proc.exit_code, 0) << r.proc.err;
    auto frames = cap.stop_and_read();
    auto syns = syns_at_server(frames);
    ASSERT_EQ(syns.size(), 50u);
    std::set<std::uint16_t> ports;
    for (const auto& d : syns) ports.insert(d.tcp.sport);
    EXPECT_EQ(ports.size(), 50u) << "random source ports must differ per probe";
  }
  {
    TcpdumpCapture cap(lab_->server_ns(), temp_path("sport-pinned.pcap"), "tcp dst port 21");
    ASSERT_TRUE(cap.ok());
    auto r = ping(*lab_, {"10.77.2.2", "-p", "21", "-c", "10", "--rate", "200", "--sport", "40000", "--timeout", "0.5"},
                  "sport-pinned");
    EXPECT_EQ(state_count(r.report, "open"), 10u) << r.report.dump(2);
    auto frames = cap.stop_and_read();
    auto syns = syns_at_server(frames);
    ASSERT_EQ(syns.size(), 10u);
    for (const auto& d : syns) EXPECT_EQ(d.tcp.sport, 40000);
    for (const auto& p : r.report["probes"]) EXPECT_EQ(p["sport"], 40000);
  }
  {
    TcpdumpCapture cap(lab_->server_ns(), temp_path("sport-range.pcap"), "tcp dst port 21");
    ASSERT_TRUE(cap.ok());
    auto r = ping(*lab_, {"10.77.2.2", "-p", "21", "-c", "20", "--rate", "200", "--sport", "41000-41009", "--timeout", "0.5"},
                  "sport-range");
    EXPECT_EQ(r.proc.exit_code, 0) << r.proc.err;
    auto frames = cap.stop_and_read();
    auto syns = syns_at_server(frames);
    ASSERT_EQ(syns.size(), 20u);
    for (const auto& d : syns) {
      EXPECT_GE(d.tcp.sport, 41000);
      EXPECT_LE(d.tcp.sport, 41009);
    }
  }
}

void expect_options_on_wire(LabFixture& lab, const std::string& target, const std::string& options,
                            const std::vector<std::uint8_t>& expected, const std::string& tag) {
  TcpdumpCapture cap(lab.server_ns(), temp_path(tag + ".pcap"), "tcp dst port 21");
  ASSERT_TRUE(cap.ok());
  auto r = ping(lab, {target, "-p", "21", "-c", "3", "-i", "0.05", "--timeout", "0.5", "--tcp-options", options}, tag);
  EXPECT_EQ(r.proc.exit_code, 0) << r.proc.out << r.proc.err;
  auto frames = cap.stop_and_read();
  auto syns = syns_at_server(frames);
  ASSERT_EQ(syns.size(), 3u);
  for (const auto& d : syns) {
    std::vector<std::uint8_t> got(d.tcp.options.begin(), d.tcp.options.end());
    EXPECT_EQ(got, expected) << "options " << options;
  }
}

TEST_F(PingLab, OptionsOnTheWireByteForByte) {
  // Hand-written RFC 9293/7323 encodings: MSS 1460, SACK-permitted, timestamps 1/0, NOP, WS 7.
  expect_options_on_wire(*lab_, "10.77.2.2", "mss=1460,sack,ts,nop,ws=7",
                         {0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0x00, 0x00, 0x00, 0x01,
                          0x00, 0x00, 0x00, 0x00, 0x01, 0x03, 0x03, 0x07},
                         "opt-linux4");
  // Order as given, an unknown kind as raw bytes, EOL, then zero padding to a 4-byte boundary.
  expect_options_on_wire(*lab_, "fd77:2::2", "ws=2,nop,kind=30:0a0b,mss=1200,eol",
                         {0x03, 0x03, 0x02, 0x01, 0x1e, 0x04, 0x0a, 0x0b, 0x02, 0x04, 0x04, 0xb0, 0x00, 0x00, 0x00, 0x00},
                         "opt-odd6");
  expect_options_on_wire(*lab_, "10.77.2.2", "none", {}, "opt-none");
}

TEST_F(PingLab, BadInputGivesOneLineAndExitCode) {
  auto bad_opt = lab_->run_tandem_in_client({"ping", "10.77.2.2", "--tcp-options", "mss=1460,bogus"});
  EXPECT_EQ(bad_opt.exit_code, 1);
  EXPECT_NE(bad_opt.err.find("bogus"), std::string::npos) << bad_opt.err;

  auto too_long = lab_->run_tandem_in_client(
      {"ping", "10.77.2.2", "--tcp-options", "mss=1460,sack,ts,nop,ws=7,ts=1:2,ts=3:4,nop"});
  EXPECT_EQ(too_long.exit_code, 1);
  EXPECT_NE(too_long.err.find("40"), std::string::npos) << too_long.err;

  auto bad_addr = lab_->run_tandem_in_client({"ping", "10.77.2.300", "-c", "1"});
  EXPECT_EQ(bad_addr.exit_code, 1) << bad_addr.err;
  EXPECT_NE(bad_addr.err.find("10.77.2.300"), std::string::npos) << bad_addr.err;

  auto mixed = lab_->run_tandem_in_client({"ping", "10.77.2.2", "-6", "-c", "1"});
  EXPECT_EQ(mixed.exit_code, 1) << mixed.err;

  // The middlebox knows only its two connected /24s: no packet can leave for 10.77.9.9.
  auto no_route = lab_->run_tandem_in(lab::Node::middlebox, {"ping", "10.77.9.9", "-c", "1"});
  EXPECT_EQ(no_route.exit_code, 2) << no_route.err;
  EXPECT_NE(no_route.err.find("no route"), std::string::npos) << no_route.err;

  auto unpriv = lab_->run_in(lab::Node::client, {"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                                 LabFixture::tandem_binary(), "ping", "10.77.2.2", "-c", "1"});
  EXPECT_EQ(unpriv.exit_code, 2) << unpriv.out << unpriv.err;
  EXPECT_NE(unpriv.err.find("CAP_NET_RAW"), std::string::npos) << unpriv.err;

  for (const auto* r : {&bad_opt, &too_long, &bad_addr, &no_route, &unpriv}) {
    // One line, no crash.
    EXPECT_EQ(std::count(r->err.begin(), r->err.end(), '\n'), 1) << r->err;
  }
}

// The story of DESIGN.md §1 in miniature: SYNs carrying window scale are dropped 30 % of the time
// (deterministically here: `numgen inc mod 10 < 3` drops exactly 3 of every 10), option-less SYNs
// always pass.
TEST(PingLabStory, WindowScaleDroppedThirtyPercent) {
  TANDEM_REQUIRE_LAB();
  LabFixture lab(R"(
name = "wscale-30"
[middlebox]
nft = """
table inet imp {
  chain forw {
    type filter hook forward priority 0;
    tcp dport 21 tcp flags syn tcp option window exists numgen inc mod 10 < 3 drop
  }
}
"""
[server]
listen = [21]
)");
  ASSERT_TRUE(lab.ok()) << lab.error();
  auto with = ping(lab, {"10.77.2.2", "-p", "21", "-c", "200", "--rate", "200", "--timeout", "0.5",
                         "--tcp-options", "mss=1460,sack,ts,nop,ws=7", "-q"}, "story-with");
  EXPECT_EQ(with.proc.exit_code, 4) << with.proc.out << with.proc.err;
  EXPECT_EQ(state_count(with.report, "filtered"), 60u) << with.proc.out;
  EXPECT_EQ(state_count(with.report, "open"), 140u);
  EXPECT_EQ(with.report["verdict"]["code"], "loss");

  auto without = ping(lab, {"10.77.2.2", "-p", "21", "-c", "200", "--rate", "200", "--timeout", "0.5",
                            "--tcp-options", "none", "-q"}, "story-without");
  EXPECT_EQ(without.proc.exit_code, 0) << without.proc.out << without.proc.err;
  EXPECT_EQ(state_count(without.report, "filtered"), 0u);
  EXPECT_EQ(state_count(without.report, "open"), 200u);
}

// --until: wait for a firewall change to take effect.
TEST(PingLabStory, UntilOpenAfterFirewallChange) {
  TANDEM_REQUIRE_LAB();
  LabFixture lab(R"(
name = "until"
[middlebox]
nft = """
table inet imp {
  chain forw {
    type filter hook forward priority 0;
    tcp dport 80 drop
  }
}
"""
[server]
listen = [80]
)");
  ASSERT_TRUE(lab.ok()) << lab.error();
  TcpdumpCapture cap(lab.server_ns(), temp_path("until.pcap"), "tcp dst port 80");
  ASSERT_TRUE(cap.ok());
  PingRun run;
  std::thread pinger([&] {
    run = ping(lab, {"10.77.2.2", "-p", "80", "--until", "open", "-i", "0.1", "--timeout", "0.3", "-c", "200"}, "until");
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(800));
  auto flush = lab.run_in(lab::Node::middlebox, {"nft", "flush", "ruleset"});
  EXPECT_EQ(flush.exit_code, 0) << flush.err;
  pinger.join();
  EXPECT_EQ(run.proc.exit_code, 0) << run.proc.out << run.proc.err;
  EXPECT_EQ(run.report["verdict"]["code"], "until_reached") << run.report.dump(2);
  auto probes = run.report["probes"];
  ASSERT_GE(probes.size(), 2u);
  EXPECT_LT(probes.size(), 200u) << "must stop once open";
  EXPECT_EQ(probes[0]["state"], "filtered");
  // It stops AT the probe that reached the state: that probe is the last one reported, and no probe
  // was sent after it — the server's own tcpdump saw exactly one SYN (before the flush the
  // middlebox dropped them all).
  EXPECT_EQ(state_count(run.report, "open"), 1u) << run.report.dump(2);
  EXPECT_EQ(probes.back()["state"], "open") << run.report.dump(2);
  auto frames = cap.stop_and_read();
  EXPECT_EQ(syns_at_server(frames).size(), 1u) << run.proc.out;
}

}  // namespace
}  // namespace tandem::testing
