// Replays the regression corpus (tests/fuzz/corpus/<target>/) through the fuzz entry points in the
// default build, so past crashers and the seed packets are checked on every test run, no clang
// needed.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

#include "tests/fuzz/fuzz_targets.hpp"

namespace tandem::fuzz {
namespace {

namespace fs = std::filesystem;

std::vector<fs::path> corpus(const char* target) {
  std::vector<fs::path> files;
  const fs::path dir = fs::path(TANDEM_SOURCE_DIR) / "tests/fuzz/corpus" / target;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file()) files.push_back(e.path());
  return files;
}

std::vector<std::uint8_t> read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void replay(const char* target, int (*entry)(const std::uint8_t*, std::size_t)) {
  const auto files = corpus(target);
  ASSERT_GE(files.size(), 10u) << "corpus for " << target << " went missing";
  for (const auto& f : files) {
    SCOPED_TRACE(f.filename().string());
    const auto bytes = read(f);
    // A heap copy of exactly the input size, so ASan builds catch over-reads as libFuzzer would.
    std::unique_ptr<std::uint8_t[]> exact(new std::uint8_t[bytes.size()]);
    std::copy(bytes.begin(), bytes.end(), exact.get());
    EXPECT_EQ(entry(exact.get(), bytes.size()), 0);
  }
}

TEST(FuzzCorpus, Decode) { replay("fuzz_decode", decode_one); }
TEST(FuzzCorpus, TcpOptionsSyntax) { replay("fuzz_tcp_options_syntax", tcp_options_syntax_one); }

}  // namespace
}  // namespace tandem::fuzz
