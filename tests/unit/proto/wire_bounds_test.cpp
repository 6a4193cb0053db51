// Per-message bounds of the wire protocol at their edge (docs/wire-protocol.md "Limits"): the
// largest allowed value passes, one more is refused. Added for a mutant of tests/mutation/mutants.txt
// that no test noticed (FETCH_CAPTURE.max_bytes unbounded above).
#include <gtest/gtest.h>

#include "common/proto/wire.hpp"

namespace tandem::proto {
namespace {

TEST(WireBounds, FetchCaptureMaxBytesIsOneToMaxChunk) {
  EXPECT_FALSE(encode(FetchCapture{0, 0}, 1).ok());
  EXPECT_TRUE(encode(FetchCapture{0, 1}, 1).ok());
  auto at_max = encode(FetchCapture{0, kMaxChunkBytes}, 1);
  ASSERT_TRUE(at_max.ok()) << at_max.error().text();
  auto back = decode(*at_max);
  ASSERT_TRUE(back.ok()) << back.error().to_error().text();
  ASSERT_TRUE(std::holds_alternative<FetchCapture>(back.value().message));
  EXPECT_EQ(std::get<FetchCapture>(back.value().message).max_bytes, kMaxChunkBytes);
  auto over = encode(FetchCapture{0, kMaxChunkBytes + 1}, 1);
  ASSERT_FALSE(over.ok());
  EXPECT_NE(over.error().message.find("max_bytes"), std::string::npos) << over.error().text();
}

}  // namespace
}  // namespace tandem::proto
