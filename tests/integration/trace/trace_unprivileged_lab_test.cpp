// Threat T24, issue 10 item 7: a real `tandem trace` through the namespace lab with both agents,
// client and server, running as an unprivileged user with CAP_NET_RAW only, the way
// deploy/agent/tandem-agent.service runs them (setpriv: uid/gid 65534, no supplementary groups,
// ambient CAP_NET_RAW, bounding set reduced to it, no_new_privs; LabAgentsOptions::unprivileged).
// Oracles outside tandem: the kernel's /proc/PID/status of each agent, the files' owners and
// modes, the middlebox's nft drop counter, and tshark's count of SYNs in each agent's capture.
#include <sys/stat.h>

#include <atomic>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "controller/lab/process.hpp"
#include "tests/integration/trace/trace_lab_fixture.hpp"

namespace tandem::testing {
namespace {

constexpr int kProbes = 100;
constexpr int kLost = 30;  // 3 in every 10 consecutive SYNs, whatever the counter's start

constexpr char kLossySyn[] = R"(name = "trace-unprivileged"
[middlebox]
nft = """
table inet imp {
  chain forw {
    type filter hook forward priority 0;
    tcp dport 21 tcp flags syn numgen inc mod 10 < 3 counter drop
  }
}
"""
[server]
listen = [21]
)";

// A field of /proc/<pid>/status without its leading whitespace ("Uid" -> "65534\t65534\t..."); empty
// if absent.
std::string proc_status(pid_t pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind(field + ":", 0) == 0) {
      const auto at = line.find_first_not_of(" \t", field.size() + 1);
      return at == std::string::npos ? std::string() : line.substr(at);
    }
  return {};
}

std::uint64_t middlebox_drops(LabFixture& lab) {
  ProcOutput o = lab.run_in(lab::Node::middlebox, {"nft", "list", "chain", "inet", "imp", "forw"});
  EXPECT_EQ(o.exit_code, 0) << o.err;
  const auto at = o.out.find("counter packets ");
  return at == std::string::npos ? 0 : std::stoull(o.out.substr(at + 16));
}

// Packets of a pcapng file matching a Wireshark display filter, as tshark counts them.
int tshark_count(LabFixture& lab, const std::string& file, const std::string& filter) {
  ProcOutput o = lab.run_in(lab::Node::client, {"tshark", "-r", file, "-Y", filter, "-T", "fields", "-e", "frame.number"});
  EXPECT_EQ(o.exit_code, 0) << o.err;
  return static_cast<int>(std::count(o.out.begin(), o.out.end(), '\n'));
}

// Owner uid and permission bits of a file (-1 when it is missing).
std::pair<long, unsigned> owner_mode(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return {-1, 0};
  return {static_cast<long>(st.st_uid), static_cast<unsigned>(st.st_mode & 07777)};
}

TEST(TraceUnprivileged, BothAgentsAsNobodyWithOnlyNetRawCompleteATrace) {
  TANDEM_REQUIRE_LAB();
  if (!lab::find_program("setpriv")) GTEST_SKIP() << "setpriv (util-linux) not installed";
  auto t = TraceLab::start(kLossySyn, /*unprivileged=*/true);
  ASSERT_TRUE(t->ok()) << t->error;

  // What the kernel says each agent runs as: uid/gid 65534, no groups, CAP_NET_RAW (bit 13) alone
  // in its effective, permitted, ambient and bounding sets, no_new_privs.
  const std::string id = std::to_string(lab::kUnprivilegedAgentId);
  const std::string ids = id + "\t" + id + "\t" + id + "\t" + id;
  std::vector<std::pair<std::string, pid_t>> agents = {{"server", t->agents->server_pid()}};
  for (const auto& site : t->agents->client_sites()) agents.emplace_back(site.site.name, site.pid);
  for (const auto& [name, pid] : agents) {
    EXPECT_EQ(proc_status(pid, "Uid"), ids) << name;
    EXPECT_EQ(proc_status(pid, "Gid"), ids) << name;
    EXPECT_EQ(proc_status(pid, "Groups"), "") << name;
    for (const char* set : {"CapEff", "CapPrm", "CapAmb", "CapBnd"})
      EXPECT_EQ(proc_status(pid, set), "0000000000002000") << name << " " << set;
    EXPECT_EQ(proc_status(pid, "NoNewPrivs"), "1") << name;
  }
  // The files each agent opens are its user's and nobody else's.
  const std::string& work = t->agents->workdir();
  for (const char* name : {"client", "server"}) {
    EXPECT_EQ(owner_mode(work + "/" + name + ".key"), std::make_pair(65534L, 0600u)) << name;
    EXPECT_EQ(owner_mode(work + "/" + name + "-policy.toml"), std::make_pair(65534L, 0600u)) << name;
    EXPECT_EQ(owner_mode(work + "/" + name + "-data"), std::make_pair(65534L, 0700u)) << name;
    EXPECT_EQ(owner_mode(work + "/" + name + "-log"), std::make_pair(65534L, 0700u)) << name;
  }
  // Created by the agents themselves: owned by their user, owner-only.
  EXPECT_EQ(owner_mode(t->agents->client_audit_log()), std::make_pair(65534L, 0600u));
  EXPECT_EQ(owner_mode(t->agents->server_audit_log()), std::make_pair(65534L, 0600u));
  EXPECT_EQ(owner_mode(t->agents->controller_key()), std::make_pair(0L, 0600u)) << "the controller's key stays root's";

  const std::uint64_t drops_before = middlebox_drops(*t->lab);
  auto r = trace(*t, kV4, {"--count", std::to_string(kProbes), "--rate", "100"});
  const std::uint64_t drops = middlebox_drops(*t->lab) - drops_before;
  EXPECT_EQ(drops, static_cast<std::uint64_t>(kLost)) << "the middlebox's own count";

  const json& j = r.report;
  ASSERT_TRUE(j.is_object()) << "no report.json\n" << r.log();
  expect_verdict(r, "lost_forward", 4);
  EXPECT_EQ(j["summary"]["probes"], kProbes) << r.log();
  ASSERT_EQ(j["probes"].size(), static_cast<std::size_t>(kProbes)) << j["summary"].dump();
  // Every SYN the middlebox dropped is a lost probe, every other one was answered, probe by probe:
  // probes leave in id order and this lab's counter starts at 0.
  std::uint64_t lost = 0;
  for (const auto& p : j["probes"]) {
    const int probe = p["id"].get<int>();
    if (probe % 10 < 3) {
      ++lost;
      EXPECT_EQ(p["fate"], "lost_forward") << p.dump();
      EXPECT_TRUE(p["reply"].is_null()) << p.dump();
    } else {
      EXPECT_EQ(p["fate"], "answered") << p.dump();
      EXPECT_EQ(p["reply"], "syn_ack") << p.dump();
      EXPECT_TRUE(p["rtt_us"].is_number()) << p.dump();
    }
  }
  EXPECT_EQ(lost, drops);
  for (const auto& [fate, n] : j["summary"]["fates"].items()) {
    const int want = fate == "answered" ? kProbes - kLost : fate == "lost_forward" ? kLost : 0;
    EXPECT_EQ(n.get<int>(), want) << "fate " << fate << "\n" << j["summary"].dump();
  }
  EXPECT_EQ(j["capture"]["client"]["dropped"], 0);
  EXPECT_EQ(j["capture"]["server"]["dropped"], 0);

  // Both unprivileged agents captured: every probe at the client, the survivors at the server, and
  // each survivor's SYN-ACK back at the client (tshark, not tandem, counts them).
  const std::string syn = "tcp.dstport == 21 && tcp.flags.syn == 1 && tcp.flags.ack == 0";
  const std::string syn_ack = "tcp.srcport == 21 && tcp.flags.syn == 1 && tcp.flags.ack == 1";
  EXPECT_EQ(tshark_count(*t->lab, r.dir + "/client.pcapng", syn), kProbes);
  EXPECT_EQ(tshark_count(*t->lab, r.dir + "/server.pcapng", syn), kProbes - kLost);
  EXPECT_EQ(tshark_count(*t->lab, r.dir + "/client.pcapng", syn_ack), kProbes - kLost);

  if (!HasFailure()) {
    std::error_code ec;
    fs::remove_all(r.dir, ec);
  }
}

// A work directory below a directory closed to uid 65534 is refused before any agent starts, in
// one line naming that directory (not each agent's "cannot open").
TEST(TraceUnprivileged, WorkdirClosedToTheAgentUserIsRefusedUpFront) {
  TANDEM_REQUIRE_LAB();
  if (!lab::find_program("setpriv")) GTEST_SKIP() << "setpriv (util-linux) not installed";
  LabFixture lab("name = \"closed\"\n[server]\nlisten = [21]\n");
  ASSERT_TRUE(lab.ok()) << lab.error();
  const std::string closed = temp_root() + "/closed";
  fs::create_directories(closed);
  ASSERT_EQ(::chmod(closed.c_str(), 0700), 0);
  lab::LabAgentsOptions opts;
  opts.workdir = closed + "/agents";
  opts.agent_binary = std::string(TANDEM_BINARY_DIR) + "/bin/tandem-agent";
  opts.unprivileged = true;
  auto agents = lab::LabAgents::start(lab.lab(), opts);
  ASSERT_FALSE(agents) << "started below a closed directory";
  const std::string text = agents.error().text();
  EXPECT_NE(text.find(closed + " (mode 0700, owner 0:0) is closed to uid 65534"), std::string::npos) << text;
  EXPECT_EQ(text.find('\n'), std::string::npos) << text;
  fs::remove_all(closed);
}

// `tandem lab run --unprivileged-agents`, as a user asks for it. Its agents are found in /proc by
// their executable while the run lasts, and the kernel is the oracle again.
TEST(TraceUnprivileged, LabRunFlagStartsEveryAgentAsNobody) {
  TANDEM_REQUIRE_LAB();
  if (!lab::find_program("setpriv")) GTEST_SKIP() << "setpriv (util-linux) not installed";
  const std::string dir = temp_root() + "/lab-run-unprivileged";
  fs::create_directories(dir);
  const std::string scenario = dir + "/clean.toml";
  std::ofstream(scenario) << "name = \"unprivileged\"\n[server]\nlisten = [21]\n"
                          << "[run]\nmode = \"trace\"\ntarget = \"10.77.2.2:21\"\ncount = 100\nrate = 100\n";
  const fs::path agent_exe = fs::canonical(std::string(TANDEM_BINARY_DIR) + "/bin/tandem-agent");

  // Every process running this build's tandem-agent, with what it runs as; the agents live from
  // before the trace starts to after it ends (over a second), and the scan repeats every 10 ms.
  std::atomic<bool> done{false};
  std::map<pid_t, std::string> seen;
  std::thread watch([&] {
    while (!done) {
      for (const auto& e : fs::directory_iterator("/proc")) {
        const std::string name = e.path().filename().string();
        if (name.find_first_not_of("0123456789") != std::string::npos) continue;
        std::error_code ec;
        if (fs::read_symlink(e.path() / "exe", ec) != agent_exe || ec) continue;
        const pid_t pid = std::stoi(name);
        const std::string uid = proc_status(pid, "Uid"), cap_eff = proc_status(pid, "CapEff");
        if (!uid.empty() && !cap_eff.empty()) seen.emplace(pid, uid + " CapEff " + cap_eff);  // gone: not seen
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  });
  lab::ExecOptions eo;
  eo.timeout = std::chrono::seconds(90);
  auto run = lab::exec_in_netns(
      "", {LabFixture::tandem_binary(), "lab", "run", scenario, "--out", dir + "/bundle", "--unprivileged-agents"}, eo);
  done = true;
  watch.join();
  ASSERT_TRUE(run) << run.error().text();
  EXPECT_EQ(run->exit_code, 0) << run->out << run->err;  // a clean path: every probe answered
  const json j = read_json(dir + "/bundle/report.json");
  ASSERT_TRUE(j.is_object()) << run->out << run->err;
  EXPECT_EQ(j["summary"]["fates"]["answered"], kProbes) << j["summary"].dump();

  const std::string id = std::to_string(lab::kUnprivilegedAgentId);
  EXPECT_EQ(seen.size(), 2u) << "the client and the server agent";
  for (const auto& [pid, what] : seen)
    EXPECT_EQ(what, id + "\t" + id + "\t" + id + "\t" + id + " CapEff 0000000000002000") << "pid " << pid;
  if (!HasFailure()) fs::remove_all(dir);
}

}  // namespace
}  // namespace tandem::testing
