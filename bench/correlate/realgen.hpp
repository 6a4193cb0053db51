// tandem-corrgen --real: a capture pair shaped like real kernel traffic (see realgen.cpp).
#pragma once

#include <cstdint>
#include <string>

namespace tandem::bench {

// Writes DIR/client.pcap, DIR/server.pcap and DIR/truth.txt for `connections` connection
// attempts; returns the process exit code (0, or 2 after printing the error).
int generate_real(const std::string& dir, std::uint32_t connections);

}  // namespace tandem::bench
