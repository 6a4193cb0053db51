// SendLoop argument checks. They fail or stop before the first send, but run() needs an open
// RawSender, so they skip (rather than fail) where CAP_NET_RAW is missing.
#include <gtest/gtest.h>

#include <atomic>

#include "common/netio/send_loop.hpp"

namespace tandem::netio {
namespace {

TEST(SendLoopConfig, UnboundedRunNeedsAStopCondition) {
  auto sender = RawSender::open(IpVersion::v4);
  if (!sender) GTEST_SKIP() << sender.error().text();
  SendLoopConfig c;
  c.count = 0;
  SendLoop loop(std::vector<PrebuiltPacket>{PrebuiltPacket{{0x45}, *IpAddr::parse("127.0.0.1")}}, c);
  auto r = loop.run(*sender);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::usage);
}

TEST(SendLoopConfig, ZeroBatchIsUsage) {
  auto sender = RawSender::open(IpVersion::v4);
  if (!sender) GTEST_SKIP() << sender.error().text();
  SendLoopConfig c;
  c.max_batch = 0;
  SendLoop loop(std::vector<PrebuiltPacket>{PrebuiltPacket{{0x45}, *IpAddr::parse("127.0.0.1")}}, c);
  auto r = loop.run(*sender);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::usage);
}

TEST(SendLoopConfig, StopFlagAlreadySetSendsNothing) {
  auto sender = RawSender::open(IpVersion::v4);
  if (!sender) GTEST_SKIP() << sender.error().text();
  std::atomic<bool> stop{true};
  SendLoopConfig c;
  c.count = 10;
  c.stop = &stop;
  SendLoop loop(std::vector<PrebuiltPacket>{PrebuiltPacket{{0x45}, *IpAddr::parse("127.0.0.1")}}, c);
  auto r = loop.run(*sender);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->attempted, 0u);
  EXPECT_TRUE(r->stopped);
}

}  // namespace
}  // namespace tandem::netio
