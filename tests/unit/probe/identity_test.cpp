#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "common/probe/identity.hpp"

namespace tandem::probe {
namespace {

// splitmix64: deterministic pseudo-random keys and values for the round-trip sweeps.
std::uint64_t splitmix(std::uint64_t& s) {
  std::uint64_t z = (s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

TEST(Permute32, UnpermuteInvertsForManyKeysAndValues) {
  std::uint64_t s = 42;
  const std::uint32_t edge_values[] = {0, 1, 2, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff};
  for (int k = 0; k < 200; ++k) {
    auto key = static_cast<std::uint32_t>(splitmix(s));
    if (k == 0) key = 0;
    if (k == 1) key = 0xffffffff;
    for (auto v : edge_values) {
      EXPECT_EQ(unpermute32(key, permute32(key, v)), v) << key;
      EXPECT_EQ(permute32(key, unpermute32(key, v)), v) << key;
    }
    for (int i = 0; i < 500; ++i) {
      auto v = static_cast<std::uint32_t>(splitmix(s));
      ASSERT_EQ(unpermute32(key, permute32(key, v)), v) << "key " << key << " value " << v;
    }
  }
}

TEST(Permute32, KeyChangesTheMapping) {
  int same = 0;
  for (std::uint32_t v = 0; v < 1000; ++v) same += permute32(1, v) == permute32(2, v) ? 1 : 0;
  EXPECT_LE(same, 1);
}

TEST(Permute32, FirstIndicesAreDistinct) {
  std::vector<std::uint32_t> out;
  for (std::uint32_t i = 0; i < 100000; ++i) out.push_back(permute32(0xdeadbeef, i));
  std::sort(out.begin(), out.end());
  EXPECT_EQ(std::adjacent_find(out.begin(), out.end()), out.end());
}

// Golden values: the agent and the controller of different versions must map indices to sequence
// numbers (and back) identically. If this test fails, the permutation changed: that is a wire
// compatibility break, not a test to update casually.
TEST(Permute32, GoldenValues) {
  struct Case {
    std::uint32_t key, value, expected;
  };
  const Case cases[] = {
      {0x00000000u, 0x00000000u, 0xd9756438u}, {0x00000000u, 0x00000001u, 0xa69c0057u},
      {0x00000000u, 0x00000002u, 0x20399b76u}, {0x00000000u, 0x12345678u, 0x6af0de3au},
      {0x00000000u, 0xffffffffu, 0x0982629fu}, {0x00000001u, 0x00000000u, 0xe884439bu},
      {0x00000001u, 0x00000001u, 0x1b409653u}, {0x00000001u, 0x00000002u, 0xb8614cd4u},
      {0x00000001u, 0x12345678u, 0x68b0de69u}, {0x00000001u, 0xffffffffu, 0xcbd6cd4eu},
      {0xdeadbeefu, 0x00000000u, 0xbe82534au}, {0xdeadbeefu, 0x00000001u, 0x9d5e7454u},
      {0xdeadbeefu, 0x00000002u, 0xff5c8085u}, {0xdeadbeefu, 0x12345678u, 0x6e3993f4u},
      {0xdeadbeefu, 0xffffffffu, 0x7521d0b8u},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(permute32(c.key, c.value), c.expected) << std::hex << c.key << " " << c.value;
    EXPECT_EQ(unpermute32(c.key, c.expected), c.value) << std::hex << c.key << " " << c.value;
  }
  RunKey k{0xdeadbeefu};
  EXPECT_EQ(k.tcp_seq(2), 0xff5c8085u);
  EXPECT_EQ(k.index_from_seq(0xff5c8085u), 2u);
  EXPECT_EQ(k.ip_id(7), 58848);
  EXPECT_EQ(k.flow_label(7), 517600u);
  const std::uint32_t below_1000[] = {181, 187, 896, 402, 703, 683, 196, 200};
  const std::uint32_t below_64512[] = {48763, 36618, 53353, 52246, 11069, 18424, 58922, 27987};
  for (std::uint32_t i = 0; i < 8; ++i) {
    EXPECT_EQ(permute_below(0xdeadbeefu, i, 1000), below_1000[i]) << i;
    EXPECT_EQ(permute_below(0xdeadbeefu, i, 64512), below_64512[i]) << i;
  }
}

TEST(RunKey, IpIdAndFlowLabelAreTheSaltedPermutation) {
  RunKey k{0x01020304};
  for (std::uint32_t i = 0; i < 1000; ++i) {
    std::uint32_t p = permute32(k.key ^ kIpIdSalt, i);
    EXPECT_EQ(k.ip_id(i), static_cast<std::uint16_t>(p));
    EXPECT_EQ(k.flow_label(i), p & 0xfffffu);
    EXPECT_LE(k.flow_label(i), 0xfffffu);
  }
  EXPECT_EQ(k.icmp_ident(), 0x0304);
}

class PermuteBelow : public ::testing::TestWithParam<std::uint64_t> {};

TEST_P(PermuteBelow, IsABijectionOnRange) {
  const std::uint64_t n = GetParam();
  for (std::uint32_t key : {0u, 1u, 0xdeadbeefu, 0x5bd1e995u ^ 0x27d4eb2fu}) {
    std::vector<bool> hit(n, false);
    for (std::uint64_t v = 0; v < n; ++v) {
      std::uint32_t out = permute_below(key, static_cast<std::uint32_t>(v), n);
      ASSERT_LT(out, n) << "key " << key << " value " << v;
      ASSERT_FALSE(hit[out]) << "key " << key << ": " << v << " collides on " << out;
      hit[out] = true;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Sizes, PermuteBelow, ::testing::Values(1, 2, 3, 10, 1000, 64512, 65536));

TEST(PermuteBelowLarge, DistinctForFirstIndices) {
  // Ranges whose covering power of 4 is far above them, and the full 32-bit range.
  for (std::uint64_t n : {std::uint64_t{65537}, std::uint64_t{1} << 20, std::uint64_t{3000000000},
                          std::uint64_t{1} << 32}) {
    std::vector<std::uint32_t> out;
    for (std::uint32_t i = 0; i < 20000; ++i) {
      std::uint32_t v = permute_below(0xfeedface, i, n);
      ASSERT_LT(v, n);
      out.push_back(v);
    }
    std::sort(out.begin(), out.end());
    EXPECT_EQ(std::adjacent_find(out.begin(), out.end()), out.end()) << n;
  }
}

TEST(PermuteBelowLarge, FullRangeIsPermute32) {
  for (std::uint32_t v : {0u, 5u, 0xffffffffu}) EXPECT_EQ(permute_below(9, v, std::uint64_t{1} << 32), permute32(9, v));
}

TEST(RunKey, SportSlotShufflesTheRange) {
  RunKey k{0xabcdef01};
  std::vector<bool> hit(500, false);
  for (std::uint32_t i = 0; i < 500; ++i) {
    std::uint32_t s = k.sport_slot(i, 500);
    ASSERT_LT(s, 500u);
    EXPECT_FALSE(hit[s]) << i;
    hit[s] = true;
  }
  // After n probes the shuffle starts again from the beginning.
  EXPECT_EQ(k.sport_slot(500, 500), k.sport_slot(0, 500));
  EXPECT_EQ(k.sport_slot(7, 1), 0u);
}

TEST(PayloadTag, LayoutAndRoundTrip) {
  RunKey k{0x11223344};
  auto tag = k.payload_tag(0xa0b0c0d0);
  const std::array<std::uint8_t, kPayloadTagSize> expected = {'T', 'N', 'D', 'M', 0x11, 0x22,
                                                              0x33, 0x44, 0xa0, 0xb0, 0xc0, 0xd0};
  EXPECT_EQ(tag, expected);
  for (std::uint32_t i : {0u, 1u, 255u, 65536u, 0xffffffffu}) {
    auto t = k.payload_tag(i);
    EXPECT_EQ(k.index_from_payload(t), i);
    // Longer payloads (the tag followed by padding) carry the same index.
    std::vector<std::uint8_t> longer(t.begin(), t.end());
    longer.resize(100, 0xee);
    EXPECT_EQ(k.index_from_payload(longer), i);
  }
}

TEST(PayloadTag, RejectsOtherKeysShortPayloadsAndOtherMagic) {
  RunKey k{0x11223344};
  RunKey other{0x11223345};
  auto tag = k.payload_tag(3);
  EXPECT_EQ(other.index_from_payload(tag), std::nullopt);
  EXPECT_EQ(k.index_from_payload(std::span<const std::uint8_t>(tag.data(), kPayloadTagSize - 1)), std::nullopt);
  EXPECT_EQ(k.index_from_payload({}), std::nullopt);
  auto bad = tag;
  bad[0] = 't';
  EXPECT_EQ(k.index_from_payload(bad), std::nullopt);
  std::vector<std::uint8_t> zeros(64, 0);
  EXPECT_EQ(k.index_from_payload(zeros), std::nullopt);
}

TEST(RunKey, RandomKeysDiffer) {
  // getrandom: two draws colliding has probability 2^-32; five in a row all equal means it is broken.
  RunKey first = random_run_key();
  bool differs = false;
  for (int i = 0; i < 5 && !differs; ++i) differs = random_run_key().key != first.key;
  EXPECT_TRUE(differs);
}

}  // namespace
}  // namespace tandem::probe
