#include "controller/correlate/correlate.hpp"

namespace tandem::correlate {

Result<Correlation> correlate(const CaptureSide&, const CaptureSide&, const RunManifest&) {
  return make_error(Errc::internal, "correlate", "not implemented yet");
}

std::vector<Finding> aggregate_findings(const std::vector<ProbeRecord>&) { return {}; }

std::string reply_kind_text(std::uint8_t, std::uint8_t, std::uint8_t, std::uint8_t) { return {}; }

}  // namespace tandem::correlate
