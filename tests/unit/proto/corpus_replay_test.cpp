// Replays the libFuzzer regression corpus tests/fuzz/corpus/wire/* through the same entry point
// the fuzzer uses, so every input that ever crashed stays fixed in the normal test run.
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace {

TEST(WireFuzzCorpus, ReplaysEveryFile) {
  const std::filesystem::path dir = std::filesystem::path(TANDEM_SOURCE_DIR) / "tests/fuzz/corpus/wire";
  ASSERT_TRUE(std::filesystem::is_directory(dir)) << dir;
  std::size_t n = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    SCOPED_TRACE(entry.path().filename().string());
    EXPECT_EQ(LLVMFuzzerTestOneInput(bytes.data(), bytes.size()), 0);
    ++n;
  }
  EXPECT_GE(n, 18u) << "the seed corpus has one file per message type";
}

}  // namespace
