// The lab against the real kernel: namespaces, veths, routes, nftables, listeners, teardown on
// every path, and refusal to touch namespaces tandem did not create. Needs root (skips otherwise).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>

#include "controller/lab/lab.hpp"
#include "tests/integration/common/lab_fixture.hpp"
#include "tests/integration/common/netns_socket.hpp"

namespace tandem::testing {
namespace {

namespace fs = std::filesystem;
using lab::Node;
using namespace std::chrono_literals;

constexpr const char* kBasic = R"(name = "basic"
[server]
listen = [21, 80]
listen_udp = [53]
)";

// A second client site with extra addresses and its own ruleset: every teardown path must remove
// its namespace too.
constexpr const char* kTwoSites = R"(name = "two-sites"
[client]
addresses = ["10.77.1.3", "fd77:1::3"]
[client2]
addresses = ["10.77.3.3"]
nft = "table inet c2 { chain out { type filter hook output priority 0; }; }"
[server]
listen = [21]
)";

constexpr const char* kAllSuffixes[] = {"-cli", "-mbx", "-srv", "-cl2"};

bool netns_exists(const std::string& name) { return fs::exists("/run/netns/" + name); }

// A unique short lab name per test process, so concurrent test runs never collide.
std::string unique_name(const char* tag) {
  return std::string(tag) + std::to_string(::getpid() % 1000000);
}

// ICMP echo from the namespace; returns the reply's IPv4 TTL / IPv6 hop limit, or -1 on no reply.
int icmp_echo(const std::string& netns, const std::string& ip) {
  const bool v6 = ip.find(':') != std::string::npos;
  const int fd = socket_in(netns, v6 ? AF_INET6 : AF_INET, SOCK_RAW, v6 ? static_cast<int>(IPPROTO_ICMPV6) : static_cast<int>(IPPROTO_ICMP));
  if (fd < 0) return -1;
  if (v6) {
    const int on = 1;
    ::setsockopt(fd, IPPROTO_IPV6, IPV6_RECVHOPLIMIT, &on, sizeof on);
  }
  const std::uint16_t id = static_cast<std::uint16_t>(::getpid());
  std::uint8_t req[16] = {};
  req[0] = v6 ? ICMP6_ECHO_REQUEST : ICMP_ECHO;
  req[4] = static_cast<std::uint8_t>(id >> 8);
  req[5] = static_cast<std::uint8_t>(id & 0xff);
  req[7] = 1;  // sequence
  if (!v6) {   // the kernel computes ICMPv6 checksums itself, ICMPv4 ones are ours
    std::uint32_t sum = 0;
    for (std::size_t i = 0; i < sizeof req; i += 2) sum += static_cast<std::uint32_t>(req[i] << 8 | req[i + 1]);
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    const auto csum = static_cast<std::uint16_t>(~sum);
    req[2] = static_cast<std::uint8_t>(csum >> 8);
    req[3] = static_cast<std::uint8_t>(csum & 0xff);
  }
  socklen_t len = 0;
  auto ss = make_addr(ip, 0, len);
  int ttl = -1;
  if (::sendto(fd, req, sizeof req, 0, reinterpret_cast<sockaddr*>(&ss), len) == static_cast<ssize_t>(sizeof req)) {
    const auto deadline = std::chrono::steady_clock::now() + 2s;
    while (ttl < 0 && std::chrono::steady_clock::now() < deadline) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 200) <= 0) continue;
      std::uint8_t buf[1500];
      char control[256];
      iovec iov{buf, sizeof buf};
      msghdr msg{};
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      msg.msg_control = control;
      msg.msg_controllen = sizeof control;
      const ssize_t n = ::recvmsg(fd, &msg, 0);
      if (v6) {
        if (n < 8 || buf[0] != ICMP6_ECHO_REPLY || buf[4] != req[4] || buf[5] != req[5]) continue;
        for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
          if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_HOPLIMIT) std::memcpy(&ttl, CMSG_DATA(c), sizeof ttl);
        }
      } else {
        if (n < 28) continue;
        const std::size_t ihl = static_cast<std::size_t>(buf[0] & 0x0f) * 4;  // raw v4 sockets include the IP header
        if (buf[ihl] != ICMP_ECHOREPLY || buf[ihl + 4] != req[4] || buf[ihl + 5] != req[5]) continue;
        ttl = buf[8];
      }
    }
  }
  ::close(fd);
  return ttl;
}

// Runs a program in our own namespace, capturing output.
ProcOutput run_here(const std::vector<std::string>& argv, std::chrono::milliseconds timeout = 60s) {
  lab::ExecOptions opts;
  opts.timeout = timeout;
  auto r = lab::exec_in_netns("", argv, opts);
  ProcOutput p;
  if (!r) {
    p.err = r.error().text();
    return p;
  }
  p.exit_code = r->exit_code;
  p.out = r->out;
  p.err = r->err;
  return p;
}

std::string write_temp_scenario(const std::string& text) {
  const fs::path p = fs::temp_directory_path() / ("tandem-lab-test-" + std::to_string(::getpid()) + "-" +
                                                  std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()) + ".toml");
  std::ofstream(p) << text;
  return p.string();
}

bool wait_gone(const lab::ProcessId& p, std::chrono::milliseconds limit = 3s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (lab::process_alive(p)) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

TEST(Lab, UpConfiguresAddressesRoutesAndForwarding) {
  TANDEM_REQUIRE_LAB();
  LabFixture lab(kBasic);
  ASSERT_TRUE(lab.ok()) << lab.error();
  EXPECT_TRUE(lab.client_ns().ends_with("-cli"));
  EXPECT_TRUE(netns_exists(lab.client_ns()) && netns_exists(lab.middlebox_ns()) && netns_exists(lab.server_ns()));

  auto cli = lab.run_in(Node::client, {"ip", "-o", "addr", "show", "dev", "eth0"});
  ASSERT_EQ(cli.exit_code, 0) << cli.err;
  EXPECT_NE(cli.out.find("inet 10.77.1.2/24"), std::string::npos) << cli.out;
  EXPECT_NE(cli.out.find("inet6 fd77:1::2/64"), std::string::npos) << cli.out;
  // nodad: the global addresses are usable at once (the link-local one may still be tentative).
  const auto v6_line = cli.out.substr(cli.out.find("fd77:1::2/64"));
  EXPECT_EQ(v6_line.substr(0, v6_line.find('\n')).find("tentative"), std::string::npos) << cli.out;
  auto mbx = lab.run_in(Node::middlebox, {"ip", "-o", "addr"});
  for (const char* a : {"10.77.1.1/24", "fd77:1::1/64", "10.77.2.1/24", "fd77:2::1/64"})
    EXPECT_NE(mbx.out.find(a), std::string::npos) << a << "\n" << mbx.out;
  auto srv = lab.run_in(Node::server, {"ip", "-o", "addr", "show", "dev", "eth0"});
  EXPECT_NE(srv.out.find("inet 10.77.2.2/24"), std::string::npos) << srv.out;
  EXPECT_NE(srv.out.find("inet6 fd77:2::2/64"), std::string::npos) << srv.out;

  auto r4 = lab.run_in(Node::client, {"ip", "route", "show", "default"});
  EXPECT_NE(r4.out.find("default via 10.77.1.1 dev eth0"), std::string::npos) << r4.out;
  auto r6 = lab.run_in(Node::server, {"ip", "-6", "route", "show", "default"});
  EXPECT_NE(r6.out.find("default via fd77:2::1 dev eth0"), std::string::npos) << r6.out;
  auto lo = lab.run_in(Node::server, {"ip", "-o", "link", "show", "lo"});
  EXPECT_NE(lo.out.find("UP"), std::string::npos) << lo.out;
  auto fwd = lab.run_in(Node::middlebox, {"sysctl", "-n", "net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"});
  EXPECT_EQ(fwd.out, "1\n1\n");
  // /sys is the namespace's own (as with `ip netns exec`): libpcap enumerates interfaces there.
  auto sys = lab.run_in(Node::middlebox, {"ls", "/sys/class/net"});
  EXPECT_NE(sys.out.find("eth-cli"), std::string::npos) << sys.out;
  EXPECT_NE(sys.out.find("eth-srv"), std::string::npos) << sys.out;
  // Nothing of the lab appears in the root namespace.
  auto root = run_here({"ip", "-o", "link"});
  EXPECT_EQ(root.out.find("eth-cli"), std::string::npos) << root.out;
}

TEST(Lab, IcmpEchoCrossesTheMiddleboxV4AndV6) {
  TANDEM_REQUIRE_LAB();
  LabFixture lab(kBasic);
  ASSERT_TRUE(lab.ok()) << lab.error();
  // Linux replies with TTL/hop limit 64; one router hop on the way back leaves 63.
  EXPECT_EQ(icmp_echo(lab.client_ns(), "10.77.2.2"), 63);
  EXPECT_EQ(icmp_echo(lab.client_ns(), "fd77:2::2"), 63);
  EXPECT_EQ(icmp_echo(lab.server_ns(), "10.77.1.2"), 63);
  EXPECT_EQ(icmp_echo(lab.client_ns(), "10.77.1.1"), 64);
}

TEST(Lab, ListenersAcceptAndClosedPortsAnswerRst) {
  TANDEM_REQUIRE_LAB();
  LabFixture lab(kBasic);
  ASSERT_TRUE(lab.ok()) << lab.error();
  EXPECT_EQ(tcp_connect(lab.client_ns(), "10.77.2.2", 21), 0);
  EXPECT_EQ(tcp_connect(lab.client_ns(), "10.77.2.2", 80), 0);
  EXPECT_EQ(tcp_connect(lab.client_ns(), "fd77:2::2", 21), 0);  // dual-stack listener
  EXPECT_EQ(tcp_connect(lab.client_ns(), "10.77.2.2", 22), ECONNREFUSED);
  EXPECT_EQ(tcp_connect(lab.client_ns(), "fd77:2::2", 22), ECONNREFUSED);

  // UDP echo on listen_udp.
  const int fd = socket_in(lab.client_ns(), AF_INET, SOCK_DGRAM, 0);
  ASSERT_GE(fd, 0);
  socklen_t len = 0;
  auto ss = make_addr("10.77.2.2", 53, len);
  ASSERT_EQ(::sendto(fd, "hello", 5, 0, reinterpret_cast<sockaddr*>(&ss), len), 5);
  pollfd p{fd, POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 2000), 1);
  char buf[16] = {};
  EXPECT_EQ(::recv(fd, buf, sizeof buf, 0), 5);
  EXPECT_STREQ(buf, "hello");
  ::close(fd);
}

TEST(Lab, MiddleboxNftRulesTakeEffect) {
  TANDEM_REQUIRE_LAB();
  LabFixture lab(R"(name = "drop21"
[middlebox]
nft = """
table inet imp {
  chain forw {
    type filter hook forward priority 0;
    tcp dport 21 drop
    tcp dport 22 reject with tcp reset
  }
}
"""
[server]
listen = [21, 22, 80]
)");
  ASSERT_TRUE(lab.ok()) << lab.error();
  EXPECT_EQ(tcp_connect(lab.client_ns(), "10.77.2.2", 21, 700ms), ETIMEDOUT);
  EXPECT_EQ(tcp_connect(lab.client_ns(), "fd77:2::2", 21, 700ms), ETIMEDOUT);
  EXPECT_EQ(tcp_connect(lab.client_ns(), "10.77.2.2", 22), ECONNREFUSED);  // RST forged by the middlebox
  EXPECT_EQ(tcp_connect(lab.client_ns(), "10.77.2.2", 80), 0);
  auto rules = lab.run_in(Node::middlebox, {"nft", "list", "ruleset"});
  EXPECT_NE(rules.out.find("tcp dport 21 drop"), std::string::npos) << rules.out;
}

TEST(Lab, ServerAndClientRulesetsGoToTheirNamespaces) {
  TANDEM_REQUIRE_LAB();
  LabFixture lab(R"(name = "hostfw"
[server]
listen = [21]
nft = """
table inet hostfw { chain in { type filter hook input priority 0; tcp dport 21 drop; }; }
"""
[client]
nft = "table inet clientfw { chain out { type filter hook output priority 0; }; }"
)");
  ASSERT_TRUE(lab.ok()) << lab.error();
  EXPECT_EQ(tcp_connect(lab.client_ns(), "10.77.2.2", 21, 700ms), ETIMEDOUT);
  EXPECT_NE(lab.run_in(Node::client, {"nft", "list", "tables"}).out.find("clientfw"), std::string::npos);
  EXPECT_EQ(lab.run_in(Node::middlebox, {"nft", "list", "tables"}).out, "");
}

TEST(Lab, BadRulesetIsAConfigErrorWithNftsMessageAndLeavesNothing) {
  TANDEM_REQUIRE_LAB();
  auto s = lab::parse_scenario("name = \"bad\"\n[middlebox]\nnft = \"table inet x { chain y { bogus } }\"\n", "bad.toml");
  ASSERT_TRUE(s.ok());
  const std::string name = unique_name("tdmb");
  auto l = lab::Lab::up(*s, lab::LabOptions{name, false});
  ASSERT_FALSE(l.ok());
  EXPECT_EQ(l.error().code, Errc::config);
  EXPECT_NE(l.error().text().find("bad.toml: [middlebox] nft ruleset rejected"), std::string::npos) << l.error().text();
  EXPECT_NE(l.error().text().find("bogus"), std::string::npos) << l.error().text();
  for (const char* sfx : {"-cli", "-mbx", "-srv"}) EXPECT_FALSE(netns_exists(name + sfx));
  EXPECT_FALSE(fs::exists(lab::state_dir(name)));
}

TEST(Lab, TwoLabsRunConcurrentlyWithTheSameAddresses) {
  TANDEM_REQUIRE_LAB();
  LabFixture open(kBasic);
  LabFixture dropping(R"(name = "drop"
[middlebox]
nft = "table inet imp { chain forw { type filter hook forward priority 0; tcp dport 21 drop; }; }"
[server]
listen = [21]
)");
  ASSERT_TRUE(open.ok()) << open.error();
  ASSERT_TRUE(dropping.ok()) << dropping.error();
  EXPECT_NE(open.lab().prefix(), dropping.lab().prefix());
  EXPECT_EQ(tcp_connect(open.client_ns(), "10.77.2.2", 21), 0);
  EXPECT_EQ(tcp_connect(dropping.client_ns(), "10.77.2.2", 21, 700ms), ETIMEDOUT);
  EXPECT_EQ(icmp_echo(dropping.client_ns(), "10.77.2.2"), 63);
}

TEST(Lab, DownRemovesEverything) {
  TANDEM_REQUIRE_LAB();
  auto s = lab::parse_scenario(kBasic, "basic");
  ASSERT_TRUE(s.ok());
  const auto start = std::chrono::steady_clock::now();
  auto l = lab::Lab::up(*s);
  ASSERT_TRUE(l.ok()) << l.error().text();
  const auto up_ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
  const auto names = std::vector<std::string>{l->client_ns(), l->middlebox_ns(), l->server_ns()};
  ASSERT_EQ(l->listeners().size(), 1U);
  const auto listener = l->listeners().front();
  EXPECT_TRUE(lab::process_alive(listener));
  EXPECT_TRUE(fs::exists(l->state_file()));
  const auto state_file = l->state_file();

  const auto t = std::chrono::steady_clock::now();
  ASSERT_TRUE(l->down().ok());
  const auto down_ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t);
  std::printf("lab up %lld ms, down %lld ms\n", static_cast<long long>(up_ms.count()),
              static_cast<long long>(down_ms.count()));
  for (const auto& n : names) EXPECT_FALSE(netns_exists(n)) << n;
  EXPECT_FALSE(lab::process_alive(listener));
  EXPECT_FALSE(fs::exists(state_file));
  EXPECT_FALSE(fs::exists(state_file.parent_path()));
  EXPECT_TRUE(l->down().ok());  // idempotent
}

TEST(Lab, MovedLabIsTornDownOnce) {
  TANDEM_REQUIRE_LAB();
  auto s = lab::parse_scenario(kBasic, "basic");
  ASSERT_TRUE(s.ok());
  std::string ns;
  {
    auto l = lab::Lab::up(*s);
    ASSERT_TRUE(l.ok()) << l.error().text();
    lab::Lab moved = std::move(l).value();
    ns = moved.client_ns();
    EXPECT_TRUE(netns_exists(ns));
  }
  EXPECT_FALSE(netns_exists(ns));
}

TEST(LabCli, UpListDown) {
  TANDEM_REQUIRE_LAB();
  const std::string name = unique_name("tdmc");
  const auto file = write_temp_scenario(kBasic);
  auto up = run_here({LabFixture::tandem_binary(), "lab", "up", file, "--name", name});
  ASSERT_EQ(up.exit_code, 0) << up.err;
  EXPECT_NE(up.out.find("ip netns exec " + name + "-cli tandem ping 10.77.2.2 -p 21"), std::string::npos) << up.out;
  EXPECT_TRUE(netns_exists(name + "-cli"));
  // The command exited; the detached listener still serves.
  EXPECT_EQ(tcp_connect(name + "-cli", "10.77.2.2", 21), 0);
  auto state = lab::read_state(name);
  ASSERT_TRUE(state.ok()) << state.error().text();
  ASSERT_EQ(state->processes.size(), 1U);

  auto list = run_here({LabFixture::tandem_binary(), "lab", "list"});
  EXPECT_EQ(list.exit_code, 0);
  EXPECT_NE(list.out.find(name), std::string::npos) << list.out;

  auto again = run_here({LabFixture::tandem_binary(), "lab", "up", file, "--name", name});
  EXPECT_EQ(again.exit_code, 2) << again.err;
  EXPECT_NE(again.err.find("already in use"), std::string::npos) << again.err;
  EXPECT_TRUE(netns_exists(name + "-cli"));  // the failed attempt did not tear down the first

  auto down = run_here({LabFixture::tandem_binary(), "lab", "down", name + "-srv"});  // a namespace name works too
  EXPECT_EQ(down.exit_code, 0) << down.err;
  for (const char* sfx : {"-cli", "-mbx", "-srv"}) EXPECT_FALSE(netns_exists(name + sfx));
  EXPECT_TRUE(wait_gone(state->processes.front()));
  EXPECT_FALSE(fs::exists(lab::state_dir(name)));
  fs::remove(file);
}

TEST(LabCli, TwoSitesStateListsClientSitesAndDownByTheClient2Name) {
  TANDEM_REQUIRE_LAB();
  const std::string name = unique_name("tdmu");
  const auto file = write_temp_scenario(kTwoSites);
  auto up = run_here({LabFixture::tandem_binary(), "lab", "up", file, "--name", name});
  ASSERT_EQ(up.exit_code, 0) << up.err;
  // Detached: client2 keeps working after the command exited.
  EXPECT_EQ(tcp_connect(name + "-cl2", "10.77.2.2", 21), 0);
  auto state = lab::read_state(name);
  ASSERT_TRUE(state.ok()) << state.error().text();
  EXPECT_EQ(state->namespaces, (std::vector<std::string>{name + "-cli", name + "-mbx", name + "-srv", name + "-cl2"}));
  ASSERT_EQ(state->clients.size(), 2U);
  EXPECT_EQ(state->clients[0].name, "client");
  EXPECT_EQ(state->clients[0].ns, name + "-cli");
  EXPECT_EQ(state->clients[0].addresses, (std::vector<std::string>{"10.77.1.2", "fd77:1::2", "10.77.1.3", "fd77:1::3"}));
  EXPECT_EQ(state->clients[1].name, "client2");
  EXPECT_EQ(state->clients[1].ns, name + "-cl2");
  EXPECT_EQ(state->clients[1].addresses, (std::vector<std::string>{"10.77.3.2", "fd77:3::2", "10.77.3.3"}));
  auto list = run_here({LabFixture::tandem_binary(), "lab", "list"});
  EXPECT_NE(list.out.find(name + "-cl2"), std::string::npos) << list.out;

  auto down = run_here({LabFixture::tandem_binary(), "lab", "down", name + "-cl2"});  // client2's name works too
  EXPECT_EQ(down.exit_code, 0) << down.err;
  for (const char* sfx : kAllSuffixes) EXPECT_FALSE(netns_exists(name + sfx)) << sfx;
  EXPECT_TRUE(wait_gone(state->processes.front()));
  EXPECT_FALSE(fs::exists(lab::state_dir(name)));
  fs::remove(file);
}

// `tandem lab up --foreground` on `scenario`, then SIGTERM to it: the lab (whichever namespaces
// it has) is gone, and the process died of the signal.
void sigterm_to_owner_leaves_nothing(const char* scenario, const std::string& name, std::size_t namespaces) {
  const auto file = write_temp_scenario(scenario);
  int out[2];
  ASSERT_EQ(::pipe2(out, O_CLOEXEC), 0);
  const std::string bin = LabFixture::tandem_binary();
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::dup2(out[1], 1);
    ::execl(bin.c_str(), bin.c_str(), "lab", "up", file.c_str(), "--name", name.c_str(), "--foreground",
            static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(out[1]);
  std::string text;
  char buf[512];
  while (text.find("foreground") == std::string::npos) {
    pollfd p{out[0], POLLIN, 0};
    ASSERT_EQ(::poll(&p, 1, 10000), 1) << "tandem lab up --foreground did not come up: " << text;
    const ssize_t n = ::read(out[0], buf, sizeof buf);
    ASSERT_GT(n, 0) << text;
    text.append(buf, static_cast<std::size_t>(n));
  }
  auto state = lab::read_state(name);
  ASSERT_TRUE(state.ok()) << state.error().text();
  EXPECT_FALSE(state->detached);
  ASSERT_EQ(state->processes.size(), 1U);
  ASSERT_EQ(state->namespaces.size(), namespaces);
  for (const auto& ns : state->namespaces) EXPECT_TRUE(netns_exists(ns)) << ns;
  EXPECT_EQ(tcp_connect(name + "-cli", "10.77.2.2", 21), 0);

  // `lab down` refuses a lab whose owner is alive (a running test must not lose its lab).
  auto refused = run_here({bin, "lab", "down", name});
  EXPECT_EQ(refused.exit_code, 2);
  EXPECT_NE(refused.err.find("owned by running process"), std::string::npos) << refused.err;

  ASSERT_EQ(::kill(pid, SIGTERM), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM) << status;  // handler re-raised
  ::close(out[0]);
  for (const char* sfx : kAllSuffixes) EXPECT_FALSE(netns_exists(name + sfx)) << sfx;
  EXPECT_FALSE(fs::exists(lab::state_dir(name)));
  EXPECT_TRUE(wait_gone(state->processes.front()));
  fs::remove(file);
}

TEST(LabCli, SigtermToTheOwningProcessLeavesNothingBehind) {
  TANDEM_REQUIRE_LAB();
  sigterm_to_owner_leaves_nothing(kBasic, unique_name("tdms"), 3);
}

TEST(LabCli, SigtermToTheOwningProcessRemovesClient2Too) {
  TANDEM_REQUIRE_LAB();
  const std::string name = unique_name("tdmt");
  sigterm_to_owner_leaves_nothing(kTwoSites, name, 4);
}

TEST(LabCli, RefusesNamespacesItDidNotCreate) {
  TANDEM_REQUIRE_LAB();
  const std::string foreign = "tdmforeign-" + std::to_string(::getpid());
  ASSERT_EQ(run_here({"ip", "netns", "add", foreign}).exit_code, 0);
  struct Cleanup {
    std::string ns;
    ~Cleanup() { run_here({"ip", "netns", "del", ns}); }
  } cleanup{foreign};

  auto down = run_here({LabFixture::tandem_binary(), "lab", "down", foreign});
  EXPECT_EQ(down.exit_code, 2);
  EXPECT_NE(down.err.find("refusing"), std::string::npos) << down.err;
  EXPECT_TRUE(netns_exists(foreign));
  auto down_prefix = run_here({LabFixture::tandem_binary(), "lab", "down", "tdmforeign"});
  EXPECT_EQ(down_prefix.exit_code, 2);
  EXPECT_TRUE(netns_exists(foreign));

  // A lab whose name would collide with an existing (foreign) namespace fails without touching it.
  const std::string prefix = unique_name("tdmf");
  const std::string clash = prefix + "-mbx";
  ASSERT_EQ(run_here({"ip", "netns", "add", clash}).exit_code, 0);
  Cleanup clash_cleanup{clash};
  auto s = lab::parse_scenario(kBasic, "basic");
  ASSERT_TRUE(s.ok());
  auto l = lab::Lab::up(*s, lab::LabOptions{prefix, false});
  ASSERT_FALSE(l.ok());
  EXPECT_EQ(l.error().code, Errc::environment);
  EXPECT_NE(l.error().text().find("create netns " + clash), std::string::npos) << l.error().text();
  EXPECT_TRUE(netns_exists(clash));
  EXPECT_FALSE(netns_exists(prefix + "-cli"));  // what it did create was removed
  EXPECT_FALSE(fs::exists(lab::state_dir(prefix)));
}

TEST(LabCli, DownAllOnlyTouchesRecordedLabsAndStateIsNotTrustedBlindly) {
  TANDEM_REQUIRE_LAB();
  // A private state root, so that --all cannot reach labs of tests running concurrently.
  const fs::path root = fs::temp_directory_path() / ("tandem-labs-" + std::to_string(::getpid()));
  fs::create_directories(root);
  ::setenv("TANDEM_LAB_STATE_DIR", root.c_str(), 1);
  const std::string foreign = "tdmforeign-" + std::to_string(::getpid()) + "-cli";
  ASSERT_EQ(run_here({"ip", "netns", "add", foreign}).exit_code, 0);

  // A state file that claims a namespace outside its own prefix is refused.
  fs::create_directories(root / "tdmevil");
  std::ofstream(root / "tdmevil" / "state.json")
      << R"({"tool":"tandem","kind":"lab","prefix":"tdmevil","owner":{"pid":1,"start_time":0},"namespaces":[")"
      << foreign << R"("],"processes":[]})";
  auto evil = run_here({LabFixture::tandem_binary(), "lab", "down", "tdmevil"});
  EXPECT_EQ(evil.exit_code, 1) << evil.err;
  EXPECT_NE(evil.err.find("foreign namespace"), std::string::npos) << evil.err;
  EXPECT_TRUE(netns_exists(foreign));

  const std::string name = unique_name("tdma");
  const auto file = write_temp_scenario(kBasic);
  ASSERT_EQ(run_here({LabFixture::tandem_binary(), "lab", "up", file, "--name", name}).exit_code, 0);
  auto all = run_here({LabFixture::tandem_binary(), "lab", "down", "--all"});
  EXPECT_NE(all.out.find("lab " + name + " down"), std::string::npos) << all.out << all.err;
  EXPECT_FALSE(netns_exists(name + "-cli"));
  EXPECT_TRUE(netns_exists(foreign));

  ::unsetenv("TANDEM_LAB_STATE_DIR");
  run_here({"ip", "netns", "del", foreign});
  fs::remove_all(root);
  fs::remove(file);
}

TEST(LabCli, RunRejectsABadRunSectionBeforeCreatingAnything) {
  TANDEM_REQUIRE_LAB();
  const std::string name = unique_name("tdmr");
  // A two-ended mode needs HOST:PORT; the check happens before any namespace exists.
  const auto file = write_temp_scenario("name = \"t\"\n[server]\nlisten = [21]\n[run]\nmode = \"trace\"\ntarget = \"10.77.2.2\"\n");
  const auto out = fs::temp_directory_path() / ("tandem-run-" + std::to_string(::getpid()));
  auto r = run_here({LabFixture::tandem_binary(), "lab", "run", file, "--out", out.string(), "--name", name});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("target needs a port"), std::string::npos) << r.err;
  EXPECT_FALSE(netns_exists(name + "-cli"));
  fs::remove(file);
}

TEST(LabCli, RunPingModeRunsInTheClientAndTearsDown) {
  TANDEM_REQUIRE_LAB();
  const std::string name = unique_name("tdmp");
  const auto file = write_temp_scenario(
      "name = \"t\"\n[server]\nlisten = [21]\n[run]\nmode = \"ping\"\ntarget = \"10.77.2.2:21\"\ncount = 3\nrate = 10\n");
  const auto out = fs::temp_directory_path() / ("tandem-run-" + std::to_string(::getpid()));
  auto r = run_here({LabFixture::tandem_binary(), "lab", "run", file, "--out", out.string(), "--name", name}, 60s);
  // ping's own exit code comes back; whatever it is, the lab is gone afterwards.
  EXPECT_NE(r.err.find("running ping in " + name + "-cli"), std::string::npos) << r.err;
  EXPECT_NE(r.exit_code, 2) << r.err;
  for (const char* sfx : {"-cli", "-mbx", "-srv"}) EXPECT_FALSE(netns_exists(name + sfx));
  EXPECT_FALSE(fs::exists(lab::state_dir(name)));
  fs::remove(file);
  fs::remove_all(out);
}

TEST(LabCli, RunWithClient2TearsDownEveryNamespace) {
  TANDEM_REQUIRE_LAB();
  const std::string name = unique_name("tdmr");
  const auto file = write_temp_scenario(std::string(kTwoSites) +
                                        "[run]\nmode = \"ping\"\ntarget = \"10.77.2.2:21\"\ncount = 2\nrate = 20\n");
  const auto out = fs::temp_directory_path() / ("tandem-run2-" + std::to_string(::getpid()));
  auto r = run_here({LabFixture::tandem_binary(), "lab", "run", file, "--out", out.string(), "--name", name}, 60s);
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;  // the path is clean: every probe answered
  for (const char* sfx : kAllSuffixes) EXPECT_FALSE(netns_exists(name + sfx)) << sfx;
  EXPECT_FALSE(fs::exists(lab::state_dir(name)));
  fs::remove(file);
  fs::remove_all(out);
}

}  // namespace
}  // namespace tandem::testing
