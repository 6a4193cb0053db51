// `tandem ping`'s non-SYN probes, per-line output and exit codes in the namespace lab (DESIGN.md §3):
// --flags A/F with nmap's states (checked against the server's own tcpdump), -D timestamps,
// --json-lines streaming, the banner naming every non-default field, and `tandem demo`'s exit code.
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <regex>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/packet/decode.hpp"
#include "tests/integration/common/lab_fixture.hpp"
#include "tests/integration/ping/ping_lab_common.hpp"
#include "tests/integration/ping/tcpdump_capture.hpp"

namespace tandem::testing {
namespace {

using nlohmann::json;

class PingOutput : public PingLabSuite {
 protected:
  struct Run {
    ProcOutput proc;
    json report;
    std::vector<packet::Decoded> at_server;  // TCP segments to the port, from the server's tcpdump
    std::size_t rsts_from_server = 0;
  };
  // Runs ping with --json and a tcpdump at the server as the oracle of what arrived and left.
  static Run ping(std::vector<std::string> args, std::uint16_t port, const std::string& tag) {
    Run r;
    TcpdumpCapture cap(lab_->server_ns(), temp_path("out-" + tag + ".pcap"), "tcp port " + std::to_string(port));
    EXPECT_TRUE(cap.ok());
    std::string path = temp_path("out-" + tag + ".json");
    args.insert(args.begin(), "ping");
    args.insert(args.end(), {"--json", path});
    r.proc = lab_->run_tandem_in_client(args);
    r.report = read_json(path);
    ::unlink(path.c_str());
    for (auto& f : cap.stop_and_read()) {
      auto d = packet::decode(static_cast<std::uint32_t>(f.linktype), f.bytes);
      if (d.l4 != packet::L4::tcp) continue;
      if (d.tcp.dport == port) r.at_server.push_back(d);
      if (d.tcp.sport == port && (d.tcp.flags & 0x04)) ++r.rsts_from_server;
    }
    return r;
  }
  static std::uint64_t states(const Run& r, const std::string& s) {
    return r.report["summary"]["states"].value(s, std::uint64_t{0});
  }
};

// nmap's ACK scan: the server kernel answers an unexpected ACK with RST (unfiltered); behind the
// dropping middlebox nothing comes back (filtered). The banner names the ACK probe.
TEST_F(PingOutput, AckProbesOpenPortUnfilteredAndDroppedPortFiltered) {
  auto open = ping({"10.77.2.2", "-p", "21", "--flags", "A", "-c", "4", "-i", "0.05", "--timeout", "0.5"}, 21, "ack21");
  EXPECT_EQ(open.proc.exit_code, 0) << open.proc.out << open.proc.err;
  EXPECT_NE(open.proc.out.find("tcp-ack"), std::string::npos) << open.proc.out;
  EXPECT_EQ(open.proc.out.find("tcp-syn"), std::string::npos) << open.proc.out;
  EXPECT_EQ(open.report["probe"]["module"], "tcp-ack");
  EXPECT_EQ(states(open, "unfiltered"), 4u) << open.report.dump(2);
  for (const auto& p : open.report["probes"]) EXPECT_EQ(p["reply"], "rst");
  // The oracle: 4 ACKs (no SYN) reached the server and its kernel sent 4 RSTs.
  ASSERT_EQ(open.at_server.size(), 4u);
  for (const auto& d : open.at_server) EXPECT_EQ(d.tcp.flags, 0x10);
  EXPECT_EQ(open.rsts_from_server, 4u);

  auto dropped = ping({"10.77.2.2", "-p", "25", "--flags", "A", "-c", "3", "-i", "0.05", "--timeout", "0.5"}, 25, "ack25");
  EXPECT_EQ(dropped.proc.exit_code, 4) << dropped.proc.out << dropped.proc.err;
  EXPECT_EQ(states(dropped, "filtered"), 3u) << dropped.report.dump(2);
  EXPECT_EQ(dropped.at_server.size(), 0u);
}

// FIN probes: a listening port ignores them (open|filtered), a closed port answers RST (closed).
TEST_F(PingOutput, FinProbesFollowNmapStates) {
  auto open = ping({"10.77.2.2", "-p", "21", "--flags", "F", "-c", "3", "-i", "0.05", "--timeout", "0.3"}, 21, "fin21");
  EXPECT_EQ(states(open, "open|filtered"), 3u) << open.report.dump(2);
  EXPECT_EQ(open.at_server.size(), 3u);
  EXPECT_EQ(open.rsts_from_server, 0u);
  EXPECT_NE(open.proc.out.find("tcp-fin"), std::string::npos) << open.proc.out;
  EXPECT_EQ(open.proc.exit_code, 4);  // healthy for FIN is an answer from the target

  auto closed = ping({"10.77.2.2", "-p", "23", "--flags", "F", "-c", "3", "-i", "0.05", "--timeout", "0.5"}, 23, "fin23");
  EXPECT_EQ(states(closed, "closed"), 3u) << closed.report.dump(2);
  EXPECT_EQ(closed.rsts_from_server, 3u);
  EXPECT_EQ(closed.proc.exit_code, 0) << closed.proc.out;

  auto refused = lab_->run_tandem_in_client({"ping", "10.77.2.2", "-p", "21", "--flags", "SA", "-c", "1"});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("--flags SA"), std::string::npos) << refused.err;
  EXPECT_EQ(std::count(refused.err.begin(), refused.err.end(), '\n'), 1) << refused.err;
}

TEST_F(PingOutput, TimestampsPerLineEpochAndIso) {
  auto epoch = lab_->run_tandem_in_client({"ping", "10.77.2.2", "-p", "21", "-c", "2", "-i", "0.05", "-D"});
  EXPECT_EQ(epoch.exit_code, 0) << epoch.err;
  std::regex epoch_line(R"(^\[\d{10}\.\d{6}\] seq=\d)");
  std::regex iso_line(R"(^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z seq=\d)");
  auto count_lines = [](const std::string& out, const std::regex& re) {
    std::istringstream in(out);
    int n = 0;
    for (std::string line; std::getline(in, line);) n += std::regex_search(line, re) ? 1 : 0;
    return n;
  };
  EXPECT_EQ(count_lines(epoch.out, epoch_line), 2) << epoch.out;
  auto iso = lab_->run_tandem_in_client(
      {"ping", "10.77.2.2", "-p", "21", "-c", "2", "-i", "0.05", "-D", "--time-format", "iso"});
  EXPECT_EQ(count_lines(iso.out, iso_line), 2) << iso.out;
  // The printed time is the probe's own send time: it lies inside the run.
  const auto now = static_cast<long long>(::time(nullptr));
  auto pos = epoch.out.find("\n[");
  ASSERT_NE(pos, std::string::npos);
  long long t = std::stoll(epoch.out.substr(pos + 2, 10));
  EXPECT_LE(std::llabs(now - t), 30) << epoch.out;
}

TEST_F(PingOutput, JsonLinesStreamOneObjectPerProbe) {
  std::string path = temp_path("lines.jsonl");
  auto r = lab_->run_tandem_in_client(
      {"ping", "10.77.2.2", "-p", "21", "-c", "3", "-i", "0.05", "--json-lines", path});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  std::ifstream f(path);
  std::vector<json> lines;
  for (std::string line; std::getline(f, line);) lines.push_back(json::parse(line, nullptr, false));
  ::unlink(path.c_str());
  ASSERT_EQ(lines.size(), 3u);
  for (std::size_t i = 0; i < lines.size(); ++i) {
    EXPECT_EQ(lines[i]["id"], i);
    EXPECT_EQ(lines[i]["state"], "open");
    EXPECT_TRUE(lines[i]["rtt_us"].is_number());
    EXPECT_TRUE(lines[i]["sent_at"].is_string());
  }
  // "-": stdout carries only the JSON objects; the banner and summary go to stderr.
  auto out = lab_->run_tandem_in_client({"ping", "10.77.2.2", "-p", "21", "-c", "2", "-i", "0.05", "--json-lines", "-"});
  EXPECT_EQ(out.exit_code, 0) << out.err;
  std::istringstream in(out.out);
  int objects = 0;
  for (std::string line; std::getline(in, line);) {
    auto j = json::parse(line, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << line;
    ++objects;
  }
  EXPECT_EQ(objects, 2) << out.out;
  EXPECT_NE(out.err.find("TANDEM PING"), std::string::npos) << out.err;
}

// The banner names every field that differs from the defaults; the server's tcpdump shows that
// they are on the wire.
TEST_F(PingOutput, BannerShowsEveryNonDefaultField) {
  auto r = ping({"10.77.2.2", "-p", "21", "-c", "1", "--tos", "0x10", "--ttl", "9", "--df", "--window", "1024",
                 "--sport", "40001"},
                21, "banner");
  EXPECT_EQ(r.proc.exit_code, 0) << r.proc.out << r.proc.err;
  const std::string banner = r.proc.out.substr(0, r.proc.out.find('\n'));
  for (const char* field : {"tos 0x10", "ttl 9", "df", "window 1024", "sport 40001"}) {
    EXPECT_NE(banner.find(field), std::string::npos) << field << " missing in: " << banner;
  }
  // The probe, not the client kernel's RST that follows the SYN-ACK.
  std::vector<packet::Decoded> syns;
  for (const auto& d : r.at_server) {
    if (d.tcp.flags == 0x02) syns.push_back(d);
  }
  ASSERT_EQ(syns.size(), 1u);
  EXPECT_EQ(syns[0].ip.tos, 0x10);
  EXPECT_EQ(syns[0].ip.ttl, 8);  // one hop through the middlebox
  EXPECT_EQ(syns[0].tcp.window, 1024);
  EXPECT_EQ(syns[0].tcp.sport, 40001);
  // Defaults are not repeated.
  auto plain = lab_->run_tandem_in_client({"ping", "10.77.2.2", "-p", "21", "-c", "1"});
  const std::string plain_banner = plain.out.substr(0, plain.out.find('\n'));
  for (const char* field : {"tos", "ttl", " df", "window", "sport"}) {
    EXPECT_EQ(plain_banner.find(field), std::string::npos) << field << " in: " << plain_banner;
  }
}

// `tandem demo` exits 0 when its run completed and found what the scenario builds in (here a
// closed port, for which `tandem ping` itself exits 4), and says so.
TEST(PingDemo, DemoThatRanAsDesignedExitsZero) {
  TANDEM_REQUIRE_LAB();
  std::string out = temp_path("demo");
  std::string cmd = "timeout 120 " + LabFixture::tandem_binary() + " demo closed-port --out " + out + " 2>&1";
  std::string text;
  FILE* p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::array<char, 512> buf{};
  while (std::fgets(buf.data(), buf.size(), p)) text += buf.data();
  int status = ::pclose(p);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status << "\n" << text;
  EXPECT_NE(text.find("ran as designed"), std::string::npos) << text;
  EXPECT_NE(text.find("the port is closed"), std::string::npos) << text;
  std::error_code ec;
  std::filesystem::remove_all(out, ec);
}

}  // namespace
}  // namespace tandem::testing
