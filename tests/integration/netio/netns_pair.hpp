// Two network namespaces joined by a veth pair, created for one test binary and removed on exit:
//   <prefix>-c  10.77.91.1/24  fd77:91::1/64  on <veth_c>     (no default route: 192.0.2.1 is unroutable)
//   <prefix>-s  10.77.91.2/24  fd77:91::2/64  on <veth_s>
// The prefix carries the pid, so concurrent runs never share or delete each other's namespaces.
// ScopedNetns moves only the calling thread into a namespace (setns is per thread) and back.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

namespace tandem::netio::test {

inline int sh(const std::string& cmd) { return std::system((cmd + " >/dev/null 2>&1").c_str()); }

// Runs cmd; on failure remembers it in *failed (first failure only) and returns false.
inline bool step(const std::string& cmd, std::string* failed) {
  if (!failed->empty()) return false;
  if (sh(cmd) == 0) return true;
  *failed = cmd;
  return false;
}

class ScopedNetns {
 public:
  explicit ScopedNetns(const std::string& name) {
    self_ = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    const int target = ::open(("/run/netns/" + name).c_str(), O_RDONLY | O_CLOEXEC);
    ok_ = self_ >= 0 && target >= 0 && ::setns(target, CLONE_NEWNET) == 0;
    if (target >= 0) ::close(target);
  }
  ScopedNetns(const ScopedNetns&) = delete;
  ScopedNetns& operator=(const ScopedNetns&) = delete;
  ~ScopedNetns() {
    if (self_ >= 0) {
      (void)::setns(self_, CLONE_NEWNET);
      ::close(self_);
    }
  }
  bool ok() const { return ok_; }

 private:
  int self_ = -1;
  bool ok_ = false;
};

struct NetnsPair {
  static constexpr const char* kMacC = "02:77:91:00:00:01";
  static constexpr const char* kMacS = "02:77:91:00:00:02";
  std::string client, server, veth_c, veth_s;
  bool up = false;
  std::string failed_step;  // first command that failed, for the test's failure message

  NetnsPair() {
    const std::string id = std::to_string(::getpid());
    client = "tdmnio-" + id + "-c";
    server = "tdmnio-" + id + "-s";
    veth_c = "tnioc" + id;
    veth_s = "tnios" + id;
    std::string* f = &failed_step;
    step("ip netns add " + client, f);
    step("ip netns add " + server, f);
    // Fixed MACs so the neighbour entries below can be written without asking the kernel.
    step("ip link add " + veth_c + " address " + kMacC + " netns " + client + " type veth peer name " + veth_s +
             " address " + kMacS + " netns " + server, f);
    for (const auto& [ns, dev, v4, v6] :
         {std::tuple{client, veth_c, "10.77.91.1/24", "fd77:91::1/64"},
          std::tuple{server, veth_s, "10.77.91.2/24", "fd77:91::2/64"}}) {
      const std::string x = "ip netns exec " + ns + " ";
      step(x + "ip link set lo up", f);
      step(x + "ip addr add " + v4 + " dev " + dev, f);
      step(x + "ip -6 addr add " + v6 + " dev " + dev + " nodad", f);
      step(x + "ip link set " + dev + " up", f);
    }
    // Static neighbours: ARP/ND is not what these tests are about and would delay the first packets.
    for (const auto& [ns, dev, v4, v6, mac] :
         {std::tuple{client, veth_c, "10.77.91.2", "fd77:91::2", kMacS},
          std::tuple{server, veth_s, "10.77.91.1", "fd77:91::1", kMacC}}) {
      const std::string x = "ip netns exec " + ns + " ip neigh replace ";
      step(x + v4 + " lladdr " + mac + " dev " + dev + " nud permanent", f);
      step(x + v6 + " lladdr " + mac + " dev " + dev + " nud permanent", f);
    }
    up = failed_step.empty();
  }
  NetnsPair(const NetnsPair&) = delete;
  NetnsPair& operator=(const NetnsPair&) = delete;
  ~NetnsPair() {
    // Deleting a namespace destroys its end of the veth and with it the peer.
    sh("ip netns del " + client);
    sh("ip netns del " + server);
  }
};

// A raw AF_PACKET (cooked, SOCK_DGRAM) socket on one interface that collects incoming IP packets.
class PacketTap {
 public:
  // Opens in the calling thread's current namespace.
  explicit PacketTap(const std::string& ifname) {
    fd_ = ::socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, htons(ETH_P_ALL));
    if (fd_ < 0) return;
    const int rcvbuf = 16 << 20;
    (void)::setsockopt(fd_, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf);
    timeval tv{0, 200'000};
    (void)::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_ll sll{};
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = htons(ETH_P_ALL);
    sll.sll_ifindex = static_cast<int>(::if_nametoindex(ifname.c_str()));
    ok_ = sll.sll_ifindex > 0 && ::bind(fd_, reinterpret_cast<sockaddr*>(&sll), sizeof sll) == 0;
  }
  PacketTap(const PacketTap&) = delete;
  PacketTap& operator=(const PacketTap&) = delete;
  ~PacketTap() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool ok() const { return ok_; }

  // Incoming packets of `proto` (IP protocol number, last header) until `want` are collected or
  // a 200 ms silence.
  std::vector<std::vector<std::uint8_t>> collect(std::size_t want, std::uint8_t proto) {
    std::vector<std::vector<std::uint8_t>> got;
    std::vector<std::uint8_t> buf(65536);
    while (got.size() < want) {
      sockaddr_ll from{};
      socklen_t len = sizeof from;
      const ssize_t n = ::recvfrom(fd_, buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&from), &len);
      if (n < 0) break;
      if (from.sll_pkttype != PACKET_HOST || n < 20) continue;
      const bool v4 = (buf[0] >> 4) == 4;
      const std::uint8_t p = v4 ? buf[9] : (n >= 40 ? buf[6] : 0);
      if (p != proto) continue;
      got.emplace_back(buf.begin(), buf.begin() + n);
    }
    return got;
  }

 private:
  int fd_ = -1;
  bool ok_ = false;
};

}  // namespace tandem::netio::test
