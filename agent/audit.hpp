// The audit log: one line per decision the agent takes on a controller's behalf (key accepted or
// refused, run accepted or refused and why, capture started/stopped with counts, probes sent, lease
// end, files deleted). Lines go to stderr and, with --audit-log, to that file (appended, flushed
// per line so a crash loses nothing). Format after spdlog's time stamp:
//     audit <event> key=<Z85 or -> <key=value details...>
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "common/base/result.hpp"

namespace spdlog {
class logger;
}

namespace tandem::agent {

class Audit {
 public:
  // file empty: stderr only. Errc::environment if the file cannot be opened for appending.
  static Result<Audit> open(const std::string& file, bool to_stderr = true);
  void record(std::string_view event, std::string_view key, std::string_view detail) const;

 private:
  std::shared_ptr<spdlog::logger> logger_;
};

}  // namespace tandem::agent
