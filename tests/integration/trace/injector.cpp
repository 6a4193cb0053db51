// tandem-test-injector: a test helper for the trace lab, run inside the middlebox namespace. It
// watches one interface for TCP SYNs to SERVER:PORT and, for each, forges a reply in the server's
// name straight back out of that interface (the way an IPS or a "TCP accelerator" answers for a
// server), while the middlebox still forwards the SYN itself. It is the injector of the case
// DESIGN.md §5 calls `injected` with the probe also seen at the server.
//
//   tandem-test-injector --iface IF --server ADDR --port N --reply synack|rst --count N
//                        --ready FILE [--timeout-ms MS]
//
// Creates FILE once it listens (the test waits for it), forges at most --count replies, exits
// after the last one or after --timeout-ms (default 20000), and prints "forged N" on stdout: the
// test's own count of what it injected, independent of tandem. Exit 2 on a setup error.
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "common/packet/build.hpp"
#include "common/packet/decode.hpp"

namespace {

using namespace tandem;

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "tandem-test-injector: %s\n", what.c_str());
  std::exit(2);
}

struct Args {
  std::string iface, ready, reply = "synack";
  packet::IpAddr server;
  std::uint16_t port = 0;
  long count = 0;
  long timeout_ms = 20000;
};

Args parse(int argc, char** argv) {
  Args a;
  bool have_server = false;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--iface") a.iface = v;
    else if (k == "--server") {
      auto ip = packet::IpAddr::parse(v);
      if (!ip) die("--server: not an address: " + v);
      a.server = *ip;
      have_server = true;
    } else if (k == "--port") a.port = static_cast<std::uint16_t>(std::atoi(v.c_str()));
    else if (k == "--reply") a.reply = v;
    else if (k == "--count") a.count = std::atol(v.c_str());
    else if (k == "--ready") a.ready = v;
    else if (k == "--timeout-ms") a.timeout_ms = std::atol(v.c_str());
    else die("unknown option " + k);
  }
  if (a.iface.empty() || !have_server || a.port == 0 || a.count <= 0 || a.ready.empty() ||
      (a.reply != "synack" && a.reply != "rst"))
    die("usage: --iface IF --server ADDR --port N --reply synack|rst --count N --ready FILE [--timeout-ms MS]");
  return a;
}

// The reply the server would send (SYN-ACK) or a reset, from the server's address, with a sequence
// number no real server would pick twice in a row.
std::vector<std::uint8_t> forge(const Args& a, const packet::Decoded& syn) {
  packet::IpSpec ip;
  ip.src = a.server;
  ip.dst = syn.ip.src;
  ip.ttl = 64;
  ip.df = true;
  packet::TcpSpec tcp;
  tcp.sport = a.port;
  tcp.dport = syn.tcp.sport;
  tcp.ack = syn.tcp.seq + 1;
  if (a.reply == "synack") {
    tcp.seq = 0x0badcafe;
    tcp.flags = packet::kTcpSyn | packet::kTcpAck;
    tcp.window = 65535;
    tcp.options = {packet::TcpOption::mss(1400)};
  } else {
    tcp.seq = 0;
    tcp.flags = packet::kTcpRst | packet::kTcpAck;
    tcp.window = 0;
  }
  auto b = packet::build_tcp(ip, tcp);
  if (!b) die("build: " + b.error().text());
  return *b;
}

}  // namespace

int main(int argc, char** argv) {
  const Args a = parse(argc, argv);
  const unsigned ifindex = if_nametoindex(a.iface.c_str());
  if (ifindex == 0) die("no interface " + a.iface + ": " + std::strerror(errno));
  // Layer-3 packets of every protocol on this interface, both families, before netfilter.
  int fd = ::socket(AF_PACKET, SOCK_DGRAM, htons(ETH_P_ALL));
  if (fd < 0) die(std::string("socket(AF_PACKET): ") + std::strerror(errno));
  sockaddr_ll bind_to{};
  bind_to.sll_family = AF_PACKET;
  bind_to.sll_protocol = htons(ETH_P_ALL);
  bind_to.sll_ifindex = static_cast<int>(ifindex);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&bind_to), sizeof bind_to) != 0)
    die(std::string("bind: ") + std::strerror(errno));
  { std::ofstream(a.ready) << "ready\n"; }

  long forged = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(a.timeout_ms);
  std::vector<std::uint8_t> buf(65536);
  while (forged < a.count) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    sockaddr_ll from{};
    socklen_t from_len = sizeof from;
    ssize_t n = ::recvfrom(fd, buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&from), &from_len);
    if (n <= 0 || from.sll_pkttype == PACKET_OUTGOING) continue;
    auto d = packet::decode_ip(std::span<const std::uint8_t>(buf.data(), static_cast<std::size_t>(n)));
    if (d.l4 != packet::L4::tcp || !(d.ip.dst == a.server) || d.tcp.dport != a.port) continue;
    if ((d.tcp.flags & (packet::kTcpSyn | packet::kTcpAck)) != packet::kTcpSyn) continue;
    auto reply = forge(a, d);
    // Straight back to the client's MAC, as a device in the path would: no routing, no netfilter.
    sockaddr_ll to{};
    to.sll_family = AF_PACKET;
    to.sll_protocol = htons(d.ip.is_v4() ? ETH_P_IP : ETH_P_IPV6);
    to.sll_ifindex = static_cast<int>(ifindex);
    to.sll_halen = from.sll_halen;
    std::memcpy(to.sll_addr, from.sll_addr, sizeof to.sll_addr);
    if (::sendto(fd, reply.data(), reply.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to) < 0)
      die(std::string("sendto: ") + std::strerror(errno));
    ++forged;
  }
  std::printf("forged %ld\n", forged);
  ::close(fd);
  return 0;
}
