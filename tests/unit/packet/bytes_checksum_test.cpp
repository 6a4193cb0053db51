#include <gtest/gtest.h>

#include "common/packet/bytes.hpp"
#include "common/packet/checksum.hpp"
#include "tests/unit/packet/hex.hpp"

namespace tandem::packet {
namespace {

using test::from_hex;

TEST(ByteReader, ReadsBigEndianAndStopsAtEnd) {
  const auto b = from_hex("01 0203 04050607 08");
  ByteReader r(b);
  EXPECT_EQ(r.u8(), 0x01);
  EXPECT_EQ(r.u16(), 0x0203);
  EXPECT_EQ(r.u32(), 0x04050607u);
  EXPECT_EQ(r.remaining(), 1u);
  std::uint16_t v16 = 0xdead;
  EXPECT_FALSE(r.read_u16(v16));
  EXPECT_EQ(v16, 0xdead);  // failed read leaves the output alone
  EXPECT_EQ(r.remaining(), 1u);  // ... and the cursor too
  EXPECT_FALSE(r.u32().has_value());
  EXPECT_FALSE(r.skip(2));
  EXPECT_TRUE(r.skip(1));
  EXPECT_TRUE(r.empty());
  EXPECT_FALSE(r.u8().has_value());
}

TEST(ByteReader, SpansAndPeek) {
  const auto b = from_hex("aabbccdd");
  ByteReader r(b);
  std::span<const std::uint8_t> s;
  EXPECT_FALSE(r.read_span(5, s));
  ASSERT_TRUE(r.read_span(2, s));
  EXPECT_EQ(s.size(), 2u);
  EXPECT_EQ(s[1], 0xbb);
  EXPECT_EQ(r.rest().size(), 2u);
  EXPECT_TRUE(r.peek(0, 2).has_value());
  EXPECT_FALSE(r.peek(1, 2).has_value());
  EXPECT_FALSE(r.peek(3, 0).has_value());
  EXPECT_TRUE(r.peek(2, 0).has_value());
  EXPECT_FALSE(r.peek(SIZE_MAX, 1).has_value());  // no overflow in offset + n
}

TEST(ByteWriter, AppendsAndBackPatches) {
  std::vector<std::uint8_t> v;
  ByteWriter w(v);
  w.put_u8(1);
  w.put_u16(0x0203);
  w.put_u32(0x04050607);
  w.put_zeros(2);
  EXPECT_TRUE(w.put_u16_at(7, 0xbeef));
  EXPECT_FALSE(w.put_u16_at(8, 0));  // would write past the end
  EXPECT_FALSE(w.put_u32_at(SIZE_MAX, 0));
  EXPECT_TRUE(w.put_u32_at(0, 0xa1a2a3a4));
  EXPECT_EQ(v, from_hex("a1a2a3a4 050607 beef"));
}

TEST(Checksum, Rfc1071Example) {
  // RFC 1071 §3: the sum of 0001 f203 f4f5 f6f7 is ddf2, checksum 220d.
  const auto b = from_hex("0001f203f4f5f6f7");
  EXPECT_EQ(internet_checksum(b), 0x220d);
}

TEST(Checksum, OddLengthPadsWithZero) {
  EXPECT_EQ(internet_checksum(from_hex("0001f203f4f5f6")),
            internet_checksum(from_hex("0001f203f4f5f600")));
  EXPECT_EQ(internet_checksum(from_hex("ff")), 0x00ff);
}

TEST(Checksum, ChunkedEqualsWhole) {
  std::vector<std::uint8_t> big(1501);
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<std::uint8_t>(i * 37 + 11);
  const std::span<const std::uint8_t> all(big);
  std::uint32_t s = checksum_add(0, all.first(40));
  s = checksum_add(s, all.subspan(40, 602));
  s = checksum_add(s, all.subspan(642));
  EXPECT_EQ(checksum_finish(s), internet_checksum(big));
}

TEST(Checksum, ValidIpv4HeaderSumsToZero) {
  // A header with its checksum field included verifies to 0.
  const auto hdr = from_hex("45b8003c12344000400610330a4d01020a4d0202");
  EXPECT_EQ(internet_checksum(hdr), 0);
}

TEST(Checksum, AdjustMatchesRecompute) {
  auto hdr = from_hex("45b8003c12344000400610330a4d01020a4d0202");
  const std::uint16_t adjusted = checksum_adjust(0x1033, 0x1234, 0xfedc);
  store_be16(hdr.data() + 4, 0xfedc);
  store_be16(hdr.data() + 10, 0);
  EXPECT_EQ(adjusted, internet_checksum(hdr));
}

TEST(Checksum, PseudoHeaderV4AndV6) {
  const auto s4 = *IpAddr::parse("10.77.1.2"), d4 = *IpAddr::parse("10.77.2.2");
  // 0a4d + 0102 + 0a4d + 0202 + 0006 + 0014
  EXPECT_EQ(checksum_finish(pseudo_header_sum(s4, d4, 6, 20)),
            static_cast<std::uint16_t>(~(0x0a4d + 0x0102 + 0x0a4d + 0x0202 + 6 + 20)));
  const auto s6 = *IpAddr::parse("::1"), d6 = *IpAddr::parse("::2");
  EXPECT_EQ(checksum_finish(pseudo_header_sum(s6, d6, 58, 0x10008)),
            static_cast<std::uint16_t>(~(1 + 2 + 1 + 8 + 58)));
}

}  // namespace
}  // namespace tandem::packet
