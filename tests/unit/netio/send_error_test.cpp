#include <gtest/gtest.h>

#include <cerrno>

#include "common/netio/raw_sender.hpp"

namespace tandem::netio {
namespace {

const IpAddr kDst = *IpAddr::parse("192.0.2.1");

TEST(SendError, Classification) {
  EXPECT_EQ(classify_send_errno(ENOBUFS), SendErrorClass::transient);
  EXPECT_EQ(classify_send_errno(EAGAIN), SendErrorClass::transient);
  EXPECT_EQ(classify_send_errno(EINTR), SendErrorClass::transient);
  EXPECT_EQ(classify_send_errno(ENETUNREACH), SendErrorClass::environment);
  EXPECT_EQ(classify_send_errno(EHOSTUNREACH), SendErrorClass::environment);
  EXPECT_EQ(classify_send_errno(ENETDOWN), SendErrorClass::environment);
  EXPECT_EQ(classify_send_errno(EPERM), SendErrorClass::environment);
  EXPECT_EQ(classify_send_errno(EMSGSIZE), SendErrorClass::usage);
  EXPECT_EQ(classify_send_errno(EINVAL), SendErrorClass::usage);
}

TEST(SendError, NoRouteNamesDestinationAndCause) {
  const Error e = send_error(ENETUNREACH, kDst);
  EXPECT_EQ(e.code, Errc::environment);
  EXPECT_EQ(e.subsystem, "raw-send");
  EXPECT_EQ(e.text(), "raw-send: no route to 192.0.2.1: Network is unreachable");
  const Error h = send_error(EHOSTUNREACH, *IpAddr::parse("2001:db8::1"));
  EXPECT_EQ(h.code, Errc::environment);
  EXPECT_EQ(h.message, "no route to 2001:db8::1: No route to host");
}

TEST(SendError, MessageTooLongIsUsage) {
  const Error e = send_error(EMSGSIZE, kDst);
  EXPECT_EQ(e.code, Errc::usage);
  EXPECT_NE(e.message.find("Message too long"), std::string::npos);
}

TEST(SendError, BufferExhaustionIsEnvironment) {
  const Error e = send_error(ENOBUFS, kDst);
  EXPECT_EQ(e.code, Errc::environment);
  EXPECT_NE(e.message.find("retries"), std::string::npos);
}

TEST(SendError, OtherErrnosKeepStrerror) {
  const Error e = send_error(ENETDOWN, kDst);
  EXPECT_EQ(e.code, Errc::environment);
  EXPECT_EQ(e.message, "send to 192.0.2.1: Network is down");
  EXPECT_EQ(send_error(EINVAL, kDst).code, Errc::usage);
}

}  // namespace
}  // namespace tandem::netio
