// The audit log: one line per decision the agent takes on a controller's behalf (key accepted or
// refused, handshake failed before ZAP, run accepted or refused and why, capture started/stopped
// with counts, probes sent, lease end, files deleted). Lines go to stderr and, with --audit-log, to
// that file (created 0600, flushed per line so a crash loses nothing, rotated by size).
//
// Format: JSON lines, one object per line (docs/agent.md "Audit log"):
//     {"time":"2026-12-06T18:30:25.495+00:00","event":"hello","key":"<Z85 or ->","detail":"<text>"}
// Every field is a JSON string, so a controller-supplied value (a name with a newline, a quote)
// stays inside its field: no line can be forged (threat T23, attack-report row M11).
//
// Rate limit (T24): each event name has its own token bucket (burst, then a steady rate); lines
// over it are counted, not written, and the next line written after that (of any event) is preceded
// by {"event":"suppressed","suppressed_event":"<name>","count":N}. A flood of one kind of refusal
// therefore cannot hide the other events or fill the disk.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/base/result.hpp"

namespace spdlog {
class logger;
}

namespace tandem::agent {

struct AuditLimits {
  std::uint64_t max_file_bytes = 10u << 20;  // rotate the file at this size
  std::size_t max_files = 5;                 // rotated files kept (audit.1.log ... audit.5.log for audit.log)
  double burst = 100;                        // lines of one event written back to back
  double per_second = 10;                    // steady lines per second per event
};

class Audit {
 public:
  // file empty: stderr only. Errc::environment if the file cannot be opened for appending.
  static Result<Audit> open(const std::string& file, bool to_stderr = true, AuditLimits limits = {});
  // Writes one line (or counts it as suppressed). Thread-safe; copies share one log and one limiter.
  void record(std::string_view event, std::string_view key, std::string_view detail) const;
  // Writes the pending "suppressed" lines now (e.g. at shutdown).
  void flush_suppressed() const;

  struct State;

 private:
  std::shared_ptr<State> state_;
};

// `text` as a JSON string literal, quotes included (exposed for tests and tools).
std::string json_string(std::string_view text);

}  // namespace tandem::agent
