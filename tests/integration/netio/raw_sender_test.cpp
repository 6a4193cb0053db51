// RawSender / SendLoop / route against the real kernel: packets sent from one namespace of a veth
// pair are read back on the other end with an AF_PACKET socket and compared byte for byte.
#include <gtest/gtest.h>

#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <memory>
#include <set>

#include "common/netio/raw_sender.hpp"
#include "common/netio/route.hpp"
#include "common/netio/send_loop.hpp"
#include "tests/integration/netio/handmade_packets.hpp"
#include "tests/integration/netio/netns_pair.hpp"

namespace tandem::netio {
namespace {

using test::NetnsPair;
using test::PacketTap;
using test::ScopedNetns;

IpAddr ip(const char* text) { return *IpAddr::parse(text); }

class NetioNetns : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (::geteuid() == 0) pair_ = std::make_unique<NetnsPair>();
  }
  static void TearDownTestSuite() { pair_.reset(); }
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (network namespaces, raw sockets)";
    ASSERT_TRUE(pair_ && pair_->up) << "could not build the namespace pair: " << (pair_ ? pair_->failed_step : "");
  }

  // Sends `packets` with a SendLoop from the client namespace at `pps`, returns what the server saw.
  static std::vector<std::vector<std::uint8_t>> send_and_capture(const std::vector<PrebuiltPacket>& packets,
                                                                 double pps, std::uint8_t proto,
                                                                 SendReport* report_out) {
    std::unique_ptr<PacketTap> tap;
    {
      ScopedNetns in_server(pair_->server);
      if (!in_server.ok()) return {};
      tap = std::make_unique<PacketTap>(pair_->veth_s);
    }
    if (!tap->ok()) return {};
    ScopedNetns in_client(pair_->client);
    auto sender = RawSender::open(packets.front().dst.version);
    EXPECT_TRUE(sender.ok()) << (sender ? "" : sender.error().text());
    if (!sender) return {};
    SendLoopConfig c;
    c.count = packets.size();
    c.schedule = *Schedule::from_rate(pps);
    SendLoop loop(packets, c);
    auto report = loop.run(*sender);
    EXPECT_TRUE(report.ok());
    if (!report) return {};
    *report_out = *report;
    return tap->collect(packets.size(), proto);
  }

  static std::unique_ptr<NetnsPair> pair_;
};
std::unique_ptr<NetnsPair> NetioNetns::pair_;

void expect_same_multiset(const std::vector<PrebuiltPacket>& sent, const std::vector<std::vector<std::uint8_t>>& got) {
  ASSERT_EQ(got.size(), sent.size());
  std::multiset<std::vector<std::uint8_t>> a, b;
  for (const auto& p : sent) a.insert(p.bytes);
  for (const auto& p : got) b.insert(p);
  EXPECT_TRUE(a == b) << "captured bytes differ from the bytes sent";
}

void expect_clean_report(const SendReport& r, std::size_t n) {
  EXPECT_EQ(r.attempted, n);
  EXPECT_EQ(r.sent, n);
  EXPECT_EQ(r.failed, 0u);
  EXPECT_TRUE(r.errors_by_errno.empty());
  EXPECT_FALSE(r.stopped);
  ASSERT_EQ(r.send_ns.size(), n);
  for (std::size_t i = 1; i < n; ++i) EXPECT_LE(r.send_ns[i - 1], r.send_ns[i]);
  EXPECT_GT(r.first_send_ns, 0);
  EXPECT_GE(r.last_send_ns, r.first_send_ns);
}

TEST_F(NetioNetns, Ipv4SynsArriveIntact) {
  std::vector<PrebuiltPacket> pk;
  for (std::uint16_t i = 0; i < 200; ++i) {
    pk.push_back({test::syn(ip("10.77.91.1"), ip("10.77.91.2"), static_cast<std::uint16_t>(40000 + i), 81,
                            0x1000u * i + 7, static_cast<std::uint16_t>(i + 1)),
                  ip("10.77.91.2")});
  }
  SendReport r;
  const auto got = send_and_capture(pk, 20'000, 6, &r);
  expect_clean_report(r, pk.size());
  expect_same_multiset(pk, got);
}

TEST_F(NetioNetns, Ipv4UdpArrivesIntact) {
  std::vector<PrebuiltPacket> pk;
  for (std::uint16_t i = 0; i < 100; ++i) {
    pk.push_back({test::udp(ip("10.77.91.1"), ip("10.77.91.2"), static_cast<std::uint16_t>(50000 + i), 33434,
                            i % 40, static_cast<std::uint16_t>(i + 1)),
                  ip("10.77.91.2")});
  }
  SendReport r;
  const auto got = send_and_capture(pk, 5'000, 17, &r);
  expect_clean_report(r, pk.size());
  expect_same_multiset(pk, got);
}

TEST_F(NetioNetns, Ipv6SynsAndUdpArriveIntact) {
  std::vector<PrebuiltPacket> syns, udps;
  for (std::uint16_t i = 0; i < 100; ++i) {
    syns.push_back({test::syn(ip("fd77:91::1"), ip("fd77:91::2"), static_cast<std::uint16_t>(41000 + i), 81,
                              0x3000u * i + 1),
                    ip("fd77:91::2")});
    udps.push_back({test::udp(ip("fd77:91::1"), ip("fd77:91::2"), static_cast<std::uint16_t>(51000 + i), 33434,
                              i % 30),
                    ip("fd77:91::2")});
  }
  SendReport r;
  auto got = send_and_capture(syns, 20'000, 6, &r);
  expect_clean_report(r, syns.size());
  expect_same_multiset(syns, got);
  got = send_and_capture(udps, 20'000, 17, &r);
  expect_clean_report(r, udps.size());
  expect_same_multiset(udps, got);
}

TEST_F(NetioNetns, Ipv6SocketIsHeaderIncluded) {
  ScopedNetns in_client(pair_->client);
  auto s = RawSender::open(IpVersion::v6);
  ASSERT_TRUE(s.ok()) << s.error().text();
  int v = 0;
  socklen_t len = sizeof v;
  ASSERT_EQ(::getsockopt(s->fd(), IPPROTO_IPV6, IPV6_HDRINCL, &v, &len), 0);
  EXPECT_EQ(v, 1);
  EXPECT_GT(s->sndbuf_bytes(), 1 << 20);
}

TEST_F(NetioNetns, SingleSendAndMaxRateBatch) {
  std::unique_ptr<PacketTap> tap;
  {
    ScopedNetns in_server(pair_->server);
    tap = std::make_unique<PacketTap>(pair_->veth_s);
  }
  ASSERT_TRUE(tap->ok());
  ScopedNetns in_client(pair_->client);
  auto s = RawSender::open(IpVersion::v4);
  ASSERT_TRUE(s.ok()) << s.error().text();
  const auto one = test::syn(ip("10.77.91.1"), ip("10.77.91.2"), 39999, 81, 1);
  auto t = s->send(one, ip("10.77.91.2"));
  ASSERT_TRUE(t.ok()) << t.error().text();
  EXPECT_GT(*t, 0);

  // Unlimited schedule: everything is due at once and goes out in sendmmsg batches of 64.
  SendLoopConfig c;
  c.count = 1000;
  std::uint64_t callbacks = 0;
  c.on_sent = [&](std::uint64_t index, const PacketStatus& st) {
    EXPECT_EQ(index, callbacks);
    EXPECT_EQ(st.err, 0);
    ++callbacks;
  };
  const IpAddr src = ip("10.77.91.1"), dst = ip("10.77.91.2");
  SendLoop loop([&](std::uint64_t i, std::vector<std::uint8_t>& out) {
                  out = test::syn(src, dst, static_cast<std::uint16_t>(1024 + i), 81, static_cast<std::uint32_t>(i),
                                  static_cast<std::uint16_t>(i + 1));
                  return dst;
                },
                c);
  auto r = loop.run(*s);
  ASSERT_TRUE(r.ok());
  expect_clean_report(*r, 1000);
  EXPECT_EQ(callbacks, 1000u);
  EXPECT_LE(r->syscalls, 1000u / 64 + 1 + r->retries);
  EXPECT_EQ(tap->collect(1001, 6).size(), 1001u);
}

TEST_F(NetioNetns, UntilPredicateEndsUnboundedRun) {
  ScopedNetns in_client(pair_->client);
  auto s = RawSender::open(IpVersion::v4);
  ASSERT_TRUE(s.ok());
  std::atomic<std::uint64_t> seen{0};
  SendLoopConfig c;
  c.count = 0;
  c.schedule = *Schedule::from_rate(10'000);
  c.on_sent = [&](std::uint64_t, const PacketStatus&) { seen.fetch_add(1); };
  c.until = [&] { return seen.load() >= 25; };
  c.max_batch = 1;  // `until` is checked per batch; a catch-up batch after a stall would overshoot
  int progress_calls = 0;
  bool saw_final = false;
  c.on_progress = [&](const SendProgress& p) {
    ++progress_calls;
    saw_final = saw_final || p.final;
  };
  SendLoop loop(std::vector<PrebuiltPacket>{{test::syn(ip("10.77.91.1"), ip("10.77.91.2"), 40000, 81, 9), ip("10.77.91.2")}},
                c);
  auto r = loop.run(*s);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->stopped);
  EXPECT_EQ(r->sent, 25u);
  EXPECT_TRUE(saw_final);
  EXPECT_GE(progress_calls, 1);
}

TEST_F(NetioNetns, NoRouteIsEnvironmentError) {
  ScopedNetns in_client(pair_->client);  // the client namespace has no default route
  auto s = RawSender::open(IpVersion::v4);
  ASSERT_TRUE(s.ok());
  const IpAddr dst = ip("192.0.2.1");
  auto t = s->send(test::syn(ip("10.77.91.1"), dst, 40000, 81, 1), dst);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.error().code, Errc::environment);
  EXPECT_EQ(t.error().text(), "raw-send: no route to 192.0.2.1: Network is unreachable");

  auto src = source_address_for(dst);
  ASSERT_FALSE(src.ok());
  EXPECT_EQ(src.error().code, Errc::environment);
  EXPECT_EQ(src.error().text(), "route: no route to 192.0.2.1: Network is unreachable");
  auto src6 = source_address_for(ip("2001:db8::1"));
  ASSERT_FALSE(src6.ok());
  EXPECT_EQ(src6.error().code, Errc::environment);

  // In a loop the first such failure ends the run and is reported, not lost.
  SendLoopConfig c;
  c.count = 5;
  SendLoop loop(std::vector<PrebuiltPacket>{{test::syn(ip("10.77.91.1"), dst, 40000, 81, 1), dst}}, c);
  auto r = loop.run(*s);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->stopped);
  EXPECT_EQ(r->failed, 1u);
  EXPECT_EQ(r->errors_by_errno.at(ENETUNREACH), 1u);
  ASSERT_TRUE(r->first_error.has_value());
  EXPECT_EQ(r->first_error->code, Errc::environment);
}

TEST_F(NetioNetns, OversizedPacketIsUsageError) {
  ScopedNetns in_client(pair_->client);
  auto s = RawSender::open(IpVersion::v4);
  ASSERT_TRUE(s.ok());
  const IpAddr dst = ip("10.77.91.2");
  auto t = s->send(test::udp(ip("10.77.91.1"), dst, 40000, 9, 3000), dst);  // MTU is 1500
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.error().code, Errc::usage);
  EXPECT_NE(t.error().message.find("Message too long"), std::string::npos);
}

TEST_F(NetioNetns, RouteQueries) {
  ScopedNetns in_client(pair_->client);
  auto src = source_address_for(ip("10.77.91.2"));
  ASSERT_TRUE(src.ok()) << src.error().text();
  EXPECT_EQ(src->to_string(), "10.77.91.1");
  auto ifn = interface_for(ip("10.77.91.2"));
  ASSERT_TRUE(ifn.ok()) << ifn.error().text();
  EXPECT_EQ(*ifn, pair_->veth_c);
  auto src6 = source_address_for(ip("fd77:91::2"));
  ASSERT_TRUE(src6.ok()) << src6.error().text();
  EXPECT_EQ(src6->to_string(), "fd77:91::1");
  auto lo = interface_for(ip("127.0.0.1"));
  ASSERT_TRUE(lo.ok());
  EXPECT_EQ(*lo, "lo");
}

// Runs fn in a forked child and returns its exit status (the child must not touch gtest state).
int in_child(int (*fn)()) {
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(fn());
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 100;
}

int open_expecting_permission_error() {
  for (IpVersion v : {IpVersion::v4, IpVersion::v6}) {
    auto s = RawSender::open(v);
    if (s.ok()) return 10;
    if (s.error().code != Errc::permission) return 11;
    if (s.error().message.find("CAP_NET_RAW") == std::string::npos) return 12;
    if (s.error().message.find("setcap cap_net_raw+ep") == std::string::npos) return 13;
  }
  return 0;
}

TEST(RawSenderPermission, WithoutCapNetRawOpenFailsWithHint) {
  if (::geteuid() != 0) {
    EXPECT_EQ(open_expecting_permission_error(), 0);
    return;
  }
  // Root minus CAP_NET_RAW: clear it from the effective, permitted and inheritable sets.
  const int status = in_child([] {
    __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[2]{};
    if (::syscall(SYS_capget, &hdr, data) != 0) return 20;
    const unsigned bit = 1u << CAP_NET_RAW;  // CAP_NET_RAW (13) lives in data[0]
    data[0].effective &= ~bit;
    data[0].permitted &= ~bit;
    data[0].inheritable &= ~bit;
    if (::syscall(SYS_capset, &hdr, data) != 0) return 21;
    return open_expecting_permission_error();
  });
  EXPECT_EQ(status, 0);
}

TEST(RawSenderPermission, AsNobodyOpenFailsWithHint) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to switch to nobody";
  const int status = in_child([] {
    if (::setgid(65534) != 0 || ::setuid(65534) != 0) return 30;
    return open_expecting_permission_error();
  });
  EXPECT_EQ(status, 0);
}

// RawSenderOptions::bind_device (SO_BINDTODEVICE): the packets leave through that interface and no
// other, whatever the routes say; an unknown interface is an error naming it.
TEST_F(NetioNetns, BindDeviceSendsThroughThatInterfaceOnly) {
  // A second veth pair inside the client namespace: no route to the server goes through it.
  const std::string x = "ip netns exec " + pair_->client + " ";
  ASSERT_EQ(test::sh(x + "ip link add tnio-side type veth peer name tnio-peer"), 0);
  ASSERT_EQ(test::sh(x + "ip link set tnio-side up"), 0);
  ASSERT_EQ(test::sh(x + "ip link set tnio-peer up"), 0);
  std::unique_ptr<PacketTap> tap;
  {
    ScopedNetns in_server(pair_->server);
    tap = std::make_unique<PacketTap>(pair_->veth_s);
  }
  ASSERT_TRUE(tap->ok());
  ScopedNetns in_client(pair_->client);
  const auto dst = ip("10.77.91.2");

  RawSenderOptions on_veth;
  on_veth.bind_device = pair_->veth_c;
  auto s = RawSender::open(IpVersion::v4, on_veth);
  ASSERT_TRUE(s.ok()) << s.error().text();
  char bound[IF_NAMESIZE] = {};
  socklen_t len = sizeof bound;
  ASSERT_EQ(::getsockopt(s->fd(), SOL_SOCKET, SO_BINDTODEVICE, bound, &len), 0);
  EXPECT_EQ(std::string(bound), pair_->veth_c);
  ASSERT_TRUE(s->send(test::syn(ip("10.77.91.1"), dst, 39001, 81, 1), dst).ok());
  EXPECT_EQ(tap->collect(1, 6).size(), 1u);

  RawSenderOptions on_side;
  on_side.bind_device = "tnio-side";
  auto d = RawSender::open(IpVersion::v4, on_side);
  ASSERT_TRUE(d.ok()) << d.error().text();
  // Accepted (the kernel takes the target as on-link there, as `ping -I` does) but it never
  // reaches the server's veth.
  ASSERT_TRUE(d->send(test::syn(ip("10.77.91.1"), dst, 39002, 81, 2), dst).ok());
  EXPECT_EQ(tap->collect(1, 6).size(), 0u);

  RawSenderOptions nowhere;
  nowhere.bind_device = "tdmnodev0";
  auto n = RawSender::open(IpVersion::v6, nowhere);
  ASSERT_FALSE(n.ok());
  EXPECT_EQ(n.error().code, Errc::environment);
  EXPECT_EQ(n.error().text(), "raw-send: bind IPv6 raw socket to tdmnodev0: No such device");
}

}  // namespace
}  // namespace tandem::netio
