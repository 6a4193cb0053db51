// libFuzzer target: decode() over every link type. Built only with TANDEM_FUZZ=ON (clang).
#include "tests/fuzz/fuzz_targets.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return tandem::fuzz::decode_one(data, size);
}
