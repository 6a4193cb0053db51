// libFuzzer target: the --tcp-options text syntax. Built only with TANDEM_FUZZ=ON (clang).
#include "tests/fuzz/fuzz_targets.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return tandem::fuzz::tcp_options_syntax_one(data, size);
}
