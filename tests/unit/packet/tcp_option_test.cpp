#include <gtest/gtest.h>

#include "common/packet/tcp_option.hpp"
#include "tests/unit/packet/hex.hpp"

namespace tandem::packet {
namespace {

using test::from_hex;
using test::to_hex;

std::vector<TcpOption> linux_syn() {
  return {TcpOption::mss(1460), TcpOption::sack_perm(), TcpOption::timestamp(0x01020304, 0),
          TcpOption::nop(), TcpOption::wscale(7)};
}

TEST(TcpOption, Names) {
  EXPECT_EQ(option_name(0), "eol");
  EXPECT_EQ(option_name(1), "nop");
  EXPECT_EQ(option_name(2), "mss");
  EXPECT_EQ(option_name(3), "wscale");
  EXPECT_EQ(option_name(4), "sack_perm");
  EXPECT_EQ(option_name(5), "sack");
  EXPECT_EQ(option_name(8), "timestamp");
  EXPECT_EQ(option_name(30), "kind30");
  EXPECT_EQ(option_name(255), "kind255");
}

TEST(TcpOption, Constructors) {
  EXPECT_EQ(TcpOption::mss(1460).data, from_hex("05b4"));
  EXPECT_EQ(TcpOption::wscale(14).data, from_hex("0e"));
  EXPECT_TRUE(TcpOption::sack_perm().data.empty());
  const SackBlock blocks[] = {{1, 2}, {0xffffffff, 0x10}};
  EXPECT_EQ(TcpOption::sack(blocks).data, from_hex("00000001 00000002 ffffffff 00000010"));
  EXPECT_EQ(TcpOption::timestamp(0xa, 0xb).data, from_hex("0000000a 0000000b"));
  EXPECT_EQ(TcpOption::nop().wire_size(), 1u);
  EXPECT_EQ(TcpOption::eol().wire_size(), 1u);
  EXPECT_EQ(TcpOption::raw(30, {0x0a, 0x0b}).wire_size(), 4u);
}

TEST(TcpOption, SerializeLinuxSynIsGolden) {
  auto b = serialize_tcp_options(linux_syn());
  ASSERT_TRUE(b.ok());
  // Same bytes as the Linux SYN and as scapy writes them.
  EXPECT_EQ(to_hex(*b), "020405b40402080a010203040000000001030307");
}

TEST(TcpOption, SerializePadsWithZeroBytes) {
  auto b = serialize_tcp_options(std::vector{TcpOption::mss(1460), TcpOption::wscale(7)});
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(to_hex(*b), "020405b403030700");
  auto empty = serialize_tcp_options({});
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
  auto one = serialize_tcp_options(std::vector{TcpOption::nop()});
  EXPECT_EQ(to_hex(*one), "01000000");
}

TEST(TcpOption, FortyBytesFitFortyOneDoNot) {
  std::vector<TcpOption> v(40, TcpOption::nop());
  auto ok = serialize_tcp_options(v);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->size(), 40u);
  v.push_back(TcpOption::nop());
  auto bad = serialize_tcp_options(v);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, Errc::usage);
  EXPECT_EQ(bad.error().message, "options take 41 bytes, more than the 40-byte TCP option space");
  // A raw option filling the space exactly.
  auto full = serialize_tcp_options(std::vector{TcpOption::raw(99, std::vector<std::uint8_t>(38))});
  EXPECT_TRUE(full.ok());
}

TEST(TcpOption, SerializeRejectsDataOnSingleByteKinds) {
  auto bad = serialize_tcp_options(std::vector{TcpOption::raw(1, {0xff})});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message, "nop is a single-byte option and cannot carry data");
}

TEST(TcpOptionReader, WalksAllKinds) {
  const auto raw = from_hex("020405b40402080a010203040000000001030307 1e040a0b 00 ffff");
  std::vector<std::uint8_t> kinds;
  std::vector<std::size_t> sizes;
  const bool ok = for_each_tcp_option(raw, [&](const TcpOptionView& v) {
    kinds.push_back(v.kind);
    sizes.push_back(v.data.size());
  });
  EXPECT_TRUE(ok);
  EXPECT_EQ(kinds, (std::vector<std::uint8_t>{2, 4, 8, 1, 3, 30, 0}));  // stops at EOL
  EXPECT_EQ(sizes, (std::vector<std::size_t>{2, 0, 8, 0, 1, 2, 0}));
}

TEST(TcpOptionReader, RoundTripsSerialize) {
  auto b = serialize_tcp_options(linux_syn());
  ASSERT_TRUE(b.ok());
  bool malformed = true;
  auto back = parse_tcp_option_bytes(*b, &malformed);
  EXPECT_FALSE(malformed);
  EXPECT_EQ(back, linux_syn());  // no padding emitted: 20 bytes need none
}

struct BadOptions {
  const char* hex;
  std::size_t good_before;
};

class TcpOptionMalformed : public ::testing::TestWithParam<BadOptions> {};

TEST_P(TcpOptionMalformed, ReportsAndStops) {
  const auto raw = from_hex(GetParam().hex);
  std::size_t n = 0;
  EXPECT_FALSE(for_each_tcp_option(raw, [&](const TcpOptionView&) { ++n; }));
  EXPECT_EQ(n, GetParam().good_before);
}

INSTANTIATE_TEST_SUITE_P(
    Lengths, TcpOptionMalformed,
    ::testing::Values(BadOptions{"02", 0},            // length byte missing
                      BadOptions{"0200", 0},          // length 0 (would loop forever)
                      BadOptions{"0201", 0},          // length 1 (shorter than kind+len)
                      BadOptions{"020505b4", 0},      // length past the end by one
                      BadOptions{"0101 0204ffff 08ff", 3},  // huge length after good ones
                      BadOptions{"01 0303", 1}));     // wscale cut short

}  // namespace
}  // namespace tandem::packet
