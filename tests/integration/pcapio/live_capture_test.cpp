// Integration: real libpcap on the loopback device and in a private network namespace. Needs root
// (or CAP_NET_RAW + CAP_SYS_ADMIN for the namespace test); skips loudly otherwise.
#include "common/pcapio/capture_session.hpp"
#include "common/pcapio/live_capture.hpp"

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

namespace tandem::pcapio {
namespace {

using namespace std::chrono_literals;

// A bound UDP receiver on 127.0.0.1 (so the kernel answers no ICMP) and its port.
class UdpSink {
 public:
  UdpSink() {
    fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return;
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
  }
  ~UdpSink() { ::close(fd_); }
  std::uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  std::uint16_t port_ = 0;
};

// Sends n datagrams of `size` bytes to 127.0.0.1:port; returns how many the kernel accepted.
int send_udp(std::uint16_t port, int n, std::size_t size = 32) {
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::vector<char> payload(size, 'p');
  int sent = 0;
  for (int i = 0; i < n; ++i) {
    payload[0] = static_cast<char>(i);
    if (::sendto(fd, payload.data(), payload.size(), 0, reinterpret_cast<sockaddr*>(&a), sizeof a) ==
        static_cast<ssize_t>(size)) {
      ++sent;
    }
  }
  ::close(fd);
  return sent;
}

std::string port_filter(std::uint16_t port) { return "udp and dst port " + std::to_string(port); }

class LiveCaptureTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "SKIPPING: live capture needs root / CAP_NET_RAW";
  }
};

TEST_F(LiveCaptureTest, LoopbackUdpWithFilterNanosecondsAndStats) {
  UdpSink sink, other;
  LiveCaptureConfig cfg;
  cfg.device = "lo";
  cfg.filter = port_filter(sink.port());
  auto cap = LiveCapture::open(cfg);
  ASSERT_TRUE(cap) << cap.error().text();
  EXPECT_EQ(cap->linktype(), linktype::kEthernet);
  EXPECT_EQ(cap->snaplen(), kDefaultSnaplen);
  EXPECT_EQ(cap->precision(), TsPrecision::nano);
  EXPECT_GE(cap->selectable_fd(), 0);

  constexpr int kCount = 20;
  const Nanos before = realtime_ns();
  ASSERT_EQ(send_udp(sink.port(), kCount, 400), kCount);
  ASSERT_EQ(send_udp(other.port(), 7), 7);  // must be filtered out
  const Nanos after = realtime_ns();

  std::vector<PacketView> seen;  // views are copied into `frames` while valid
  std::vector<std::vector<std::uint8_t>> frames;
  int sub_us = 0;
  bool in_window = true;
  const auto deadline = std::chrono::steady_clock::now() + 3s;
  while (static_cast<int>(frames.size()) < kCount && std::chrono::steady_clock::now() < deadline) {
    auto n = cap->dispatch(-1, [&](const PacketView& v) {
      frames.emplace_back(v.data.begin(), v.data.end());
      EXPECT_EQ(v.origlen, 14u + 20u + 8u + 400u);  // Ethernet + IPv4 + UDP + payload
      EXPECT_EQ(v.caplen(), static_cast<std::uint32_t>(kDefaultSnaplen));
      in_window = in_window && v.ts_ns >= before && v.ts_ns <= after;
      if (v.ts_ns % 1000 != 0) ++sub_us;
    });
    ASSERT_TRUE(n) << n.error().text();
    if (*n == 0) std::this_thread::sleep_for(5ms);
  }
  EXPECT_EQ(frames.size(), static_cast<std::size_t>(kCount));
  EXPECT_TRUE(in_window) << "timestamps outside [" << before << ", " << after << "]";
  // With real nanosecond stamps, nearly every stamp has non-zero sub-microsecond digits.
  EXPECT_GT(sub_us, kCount / 2);
  // Nothing left over from the other port.
  auto extra = cap->dispatch(-1, [&](const PacketView&) { ADD_FAILURE() << "unfiltered packet"; });
  ASSERT_TRUE(extra);

  const CaptureStats st = cap->stats();
  ASSERT_TRUE(st.available) << st.unavailable_reason;
  EXPECT_GE(st.received, static_cast<std::uint64_t>(kCount));
  EXPECT_EQ(st.dropped, 0u);
}

TEST_F(LiveCaptureTest, NoSuchDeviceIsEnvironmentError) {
  LiveCaptureConfig cfg;
  cfg.device = "tdmnodev0";
  auto cap = LiveCapture::open(cfg);
  ASSERT_FALSE(cap);
  EXPECT_EQ(cap.error().code, Errc::environment);
  EXPECT_NE(cap.error().text().find("tdmnodev0"), std::string::npos) << cap.error().text();
  EXPECT_EQ(cap.error().subsystem, "pcap");
}

TEST_F(LiveCaptureTest, BadFilterIsUsageErrorQuotingFilter) {
  LiveCaptureConfig cfg;
  cfg.device = "lo";
  cfg.filter = "udp and port nonsense-port-name";
  auto cap = LiveCapture::open(cfg);
  ASSERT_FALSE(cap);
  EXPECT_EQ(cap.error().code, Errc::usage);
  EXPECT_NE(cap.error().text().find("nonsense-port-name"), std::string::npos) << cap.error().text();
}

TEST_F(LiveCaptureTest, WithoutPrivilegesIsPermissionError) {
  // Drop to nobody in a child process so the test process keeps its privileges.
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(10);
    LiveCaptureConfig cfg;
    cfg.device = "lo";
    auto cap = LiveCapture::open(cfg);
    if (cap) ::_exit(11);
    if (cap.error().code != Errc::permission) ::_exit(12);
    if (cap.error().text().find("CAP_NET_RAW") == std::string::npos) ::_exit(13);
    ::_exit(0);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "10 setuid failed, 11 opened, 12 wrong code, 13 no hint";
}

TEST_F(LiveCaptureTest, SessionCapturesRightAfterStartAndDrains) {
  UdpSink sink;
  std::atomic<int> callbacks{0};
  std::atomic<bool> on_capture_thread{true};
  const auto caller = std::this_thread::get_id();
  CaptureSessionConfig cfg;  // device "any": Linux cooked frames carry the direction
  cfg.capture.filter = port_filter(sink.port());
  cfg.on_packet = [&](const PacketView&) {
    if (std::this_thread::get_id() == caller) on_capture_thread = false;
    callbacks.fetch_add(1);
  };
  CaptureSession session(cfg);
  auto started = session.start();
  ASSERT_TRUE(started) << started.error().text();
  EXPECT_TRUE(session.running());
  EXPECT_TRUE(is_linux_cooked(session.linktype()));
  EXPECT_FALSE(session.start());  // already running

  constexpr int kCount = 50;
  ASSERT_EQ(send_udp(sink.port(), kCount), kCount);  // no sleep: start() promised readiness
  auto res = session.stop(200ms);
  ASSERT_TRUE(res) << res.error().text();
  EXPECT_FALSE(session.running());
  EXPECT_FALSE(res->error.has_value()) << res->error->text();
  EXPECT_EQ(res->packets.size(), static_cast<std::size_t>(kCount));
  EXPECT_EQ(callbacks.load(), kCount);
  EXPECT_TRUE(on_capture_thread.load());
  EXPECT_EQ(res->seen, static_cast<std::uint64_t>(kCount));
  EXPECT_EQ(res->cap_dropped, 0u);
  ASSERT_TRUE(res->stats.available) << res->stats.unavailable_reason;
  ASSERT_TRUE(res->dropped_total().has_value());
  EXPECT_EQ(*res->dropped_total(), 0u);
  EXPECT_EQ(res->precision, TsPrecision::nano);
  EXPECT_EQ(res->linktype, session.linktype());
  Nanos last = 0;
  for (PacketView v : res->packets) {
    EXPECT_GE(v.ts_ns, res->started_ns);
    EXPECT_LE(v.ts_ns, res->stopped_ns);
    EXPECT_GE(v.ts_ns, last);
    last = v.ts_ns;
  }
  EXPECT_FALSE(session.stop());  // not running any more
}

TEST_F(LiveCaptureTest, SessionCapOverflowCountedAsDropped) {
  UdpSink sink;
  std::atomic<int> callbacks{0};
  CaptureSessionConfig cfg;
  cfg.capture.device = "lo";
  cfg.capture.filter = port_filter(sink.port());
  cfg.max_packets = 5;
  cfg.on_packet = [&](const PacketView&) { callbacks.fetch_add(1); };
  CaptureSession session(cfg);
  ASSERT_TRUE(session.start());
  ASSERT_EQ(send_udp(sink.port(), 20), 20);
  auto res = session.stop(200ms);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->packets.size(), 5u);
  EXPECT_EQ(res->cap_dropped, 15u);
  EXPECT_EQ(callbacks.load(), 20);  // the live hook still sees every packet
  ASSERT_TRUE(res->dropped_total().has_value());
  EXPECT_GE(*res->dropped_total(), 15u);

  // The byte cap works the same way, and the session can be restarted.
  CaptureSessionConfig bcfg;
  bcfg.capture.device = "lo";
  bcfg.capture.filter = port_filter(sink.port());
  bcfg.max_bytes = 3 * 100;  // 100-byte frames on lo: 14 + 20 + 8 + 58
  CaptureSession bytes_session(bcfg);
  for (int round = 0; round < 2; ++round) {
    ASSERT_TRUE(bytes_session.start());
    ASSERT_EQ(send_udp(sink.port(), 10, 58), 10);
    auto r = bytes_session.stop(200ms);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->packets.size(), 3u) << "round " << round;
    EXPECT_EQ(r->cap_dropped, 7u) << "round " << round;
  }
}

TEST_F(LiveCaptureTest, AnyDeviceCanDeliverSll2) {
  UdpSink sink;
  LiveCaptureConfig cfg;
  cfg.prefer_sll2 = true;
  cfg.filter = port_filter(sink.port());  // compiled for SLL2 offsets, so it must still match
  auto cap = LiveCapture::open(cfg);
  ASSERT_TRUE(cap) << cap.error().text();
  EXPECT_EQ(cap->linktype(), linktype::kLinuxSll2);
  ASSERT_EQ(send_udp(sink.port(), 3), 3);
  int n = 0;
  const auto deadline = std::chrono::steady_clock::now() + 3s;
  while (n < 3 && std::chrono::steady_clock::now() < deadline) {
    auto d = cap->dispatch(-1, [&](const PacketView& v) {
      ++n;
      ASSERT_GE(v.caplen(), 20u);
      EXPECT_EQ(v.data[10], 0);  // SLL2 pkttype: PACKET_HOST (loopback keeps only the incoming copy)
    });
    ASSERT_TRUE(d);
    if (*d == 0) std::this_thread::sleep_for(5ms);
  }
  EXPECT_EQ(n, 3);
}

TEST_F(LiveCaptureTest, DestructorStopsRunningSession) {
  CaptureSessionConfig cfg;
  cfg.capture.device = "lo";
  cfg.capture.filter = "udp and port 9";
  auto session = std::make_unique<CaptureSession>(cfg);
  ASSERT_TRUE(session->start());
  session.reset();  // must join the thread promptly, not hang
}

// Runs a shell command, returns its exit status.
int sh(const std::string& cmd) { return std::system((cmd + " >/dev/null 2>&1").c_str()); }

TEST_F(LiveCaptureTest, AnyDeviceInsidePrivateNetworkNamespace) {
  if (sh("command -v ip") != 0) GTEST_SKIP() << "SKIPPING: iproute2 (ip) not installed";
  const std::string ns = "tdmtest-pcapio-" + std::to_string(::getpid());
  ASSERT_EQ(sh("ip netns add " + ns), 0) << "cannot create namespace " << ns;
  struct Cleanup {
    std::string ns;
    ~Cleanup() { sh("ip netns delete " + ns); }
  } cleanup{ns};
  ASSERT_EQ(sh("ip -n " + ns + " link set lo up"), 0);

  // Both the pcap socket and the sender are created by a thread that joined the namespace; the
  // capture thread inherits nothing from it and needs nothing: the socket is bound to the netns.
  std::string failure;
  std::optional<CaptureResult> result;
  std::uint16_t host_port = 0;
  std::thread in_ns([&] {
    const int nsfd = ::open(("/run/netns/" + ns).c_str(), O_RDONLY | O_CLOEXEC);
    if (nsfd < 0 || ::setns(nsfd, CLONE_NEWNET) != 0) {
      failure = "setns failed";
      return;
    }
    ::close(nsfd);
    UdpSink sink;
    host_port = sink.port();
    CaptureSessionConfig cfg;  // "any" inside the namespace
    cfg.capture.filter = port_filter(sink.port());
    CaptureSession session(cfg);
    if (auto s = session.start(); !s) {
      failure = s.error().text();
      return;
    }
    send_udp(sink.port(), 10);
    auto r = session.stop(200ms);
    if (!r) {
      failure = r.error().text();
      return;
    }
    result = std::move(r).value();
  });
  in_ns.join();
  ASSERT_TRUE(failure.empty()) << failure;
  ASSERT_TRUE(result.has_value());
  EXPECT_TRUE(is_linux_cooked(result->linktype));
  EXPECT_EQ(result->packets.size(), 10u);
  ASSERT_TRUE(result->stats.available);
  (void)host_port;
}

}  // namespace
}  // namespace tandem::pcapio
