// Fuzz entry points, shared by the libFuzzer binaries (TANDEM_FUZZ=ON, clang) and the corpus replay
// test that runs in every default build. Each returns 0 and aborts (via __builtin_trap) only when
// an invariant of the code under test breaks: that is a bug, never a property of the input.
#pragma once

#include <cstddef>
#include <cstdint>

namespace tandem::fuzz {

// Input: byte 0 selects the link type (kLinkTypes[b % size], including one unsupported type),
// byte 1 is how many bytes the snaplen cut off (0: none), the rest is the frame.
int decode_one(const std::uint8_t* data, std::size_t size);

// Input: text of a --tcp-options list. Parses it; on success formats, re-parses, and checks the
// round trip and that the list serializes and builds into a SYN.
int tcp_options_syntax_one(const std::uint8_t* data, std::size_t size);

}  // namespace tandem::fuzz
