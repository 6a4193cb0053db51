// libFuzzer target for the wire decoder (tandem::proto::decode). Also linked into the unit test
// tandem_proto_test, which replays tests/fuzz/corpus/wire/* through this entry point.
//
// Properties checked beyond "no crash, no sanitizer report, no OOM":
//   * whatever decodes re-encodes, and the re-encoding decodes to the same message
//     (the encoder and the decoder apply the same limits and rules);
//   * peek_header never disagrees with decode about the request id.
// Run (clang 14): see docs/wire-protocol.md §9.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "common/proto/wire.hpp"

namespace {
[[noreturn]] void property_broken() { std::abort(); }
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace tandem::proto;
  const std::span<const std::uint8_t> in(data, size);
  const Decoded d = decode(in);
  if (!d.ok()) return 0;
  const auto header = peek_header(in);
  if (!header || header->request_id != d.value().header.request_id) property_broken();
  auto again = encode(d.value().message, d.value().header.request_id, d.value().header.version);
  if (!again.ok()) property_broken();
  const Decoded d2 = decode(*again);
  if (!d2.ok() || !(d2.value().message == d.value().message)) property_broken();
  return 0;
}
