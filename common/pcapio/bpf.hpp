// BPF filter validation without privileges or a device: compile against a dead handle of the given
// link type, so generated filters can be checked in unit tests and before a run starts.
#pragma once

#include <string>

#include "common/base/result.hpp"

namespace tandem::pcapio {

// OK if `filter` compiles (with optimisation, as LiveCapture compiles it) for `linktype`
// (LINKTYPE_*, see packet.hpp). Errc::usage with libpcap's message and the filter text otherwise.
Status check_filter(int linktype, const std::string& filter, int snaplen = 262144);

}  // namespace tandem::pcapio
