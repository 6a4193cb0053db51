#include "agent/audit.hpp"

#include <fcntl.h>
#include <cerrno>
#include <cstring>
#include <unistd.h>

#include <chrono>
#include <map>
#include <mutex>

#include <fmt/format.h>
#include <spdlog/sinks/rotating_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace tandem::agent {

struct Audit::State {
  std::shared_ptr<spdlog::logger> logger;
  AuditLimits limits;
  struct Bucket {
    double tokens = 0;
    std::chrono::steady_clock::time_point last;
    std::uint64_t suppressed = 0;
  };
  std::mutex mu;
  std::map<std::string, Bucket, std::less<>> buckets;

  void write(std::string_view event, std::string_view key, std::string_view detail) {
    logger->info("\"event\":{},\"key\":{},\"detail\":{}}}", json_string(event), json_string(key.empty() ? "-" : key),
                 json_string(detail));
  }
  // Caller holds mu.
  void flush_locked() {
    for (auto& [name, b] : buckets) {
      if (b.suppressed == 0) continue;
      logger->info("\"event\":\"suppressed\",\"key\":\"-\",\"suppressed_event\":{},\"count\":{}}}", json_string(name),
                   b.suppressed);
      b.suppressed = 0;
    }
  }
};

std::string json_string(std::string_view text) {
  std::string out = "\"";
  for (unsigned char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        // Control bytes and everything outside ASCII are escaped byte by byte (\u00XX): a
        // controller's bytes need not be UTF-8, and the line must stay valid JSON.
        if (c < 0x20 || c >= 0x7f) out += fmt::format("\\u{:04x}", c);
        else out += static_cast<char>(c);
    }
  }
  out += '"';
  return out;
}

Result<Audit> Audit::open(const std::string& file, bool to_stderr, AuditLimits limits) {
  std::vector<spdlog::sink_ptr> sinks;
  if (to_stderr) sinks.push_back(std::make_shared<spdlog::sinks::stderr_sink_mt>());
  if (!file.empty()) {
    // Created owner-only before spdlog opens it (its fopen would use the process umask).
    int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) return make_error(Errc::environment, "audit", "cannot open " + file + ": " + std::strerror(errno));
    ::close(fd);
    try {
      sinks.push_back(std::make_shared<spdlog::sinks::rotating_file_sink_mt>(file, limits.max_file_bytes,
                                                                             limits.max_files, false));
    } catch (const spdlog::spdlog_ex& e) {
      return make_error(Errc::environment, "audit", "cannot open " + file + ": " + e.what());
    }
  }
  Audit a;
  a.state_ = std::make_shared<State>();
  a.state_->limits = limits;
  // Not registered in spdlog's registry: tests run several daemons in one process.
  auto& lg = a.state_->logger;
  lg = std::make_shared<spdlog::logger>("audit", sinks.begin(), sinks.end());
  lg->set_pattern("{\"time\":\"%Y-%m-%dT%H:%M:%S.%e%z\",%v");
  lg->set_level(spdlog::level::info);
  lg->flush_on(spdlog::level::info);
  return a;
}

void Audit::record(std::string_view event, std::string_view key, std::string_view detail) const {
  if (!state_) return;
  State& s = *state_;
  std::lock_guard lock(s.mu);
  const auto now = std::chrono::steady_clock::now();
  auto it = s.buckets.find(event);
  if (it == s.buckets.end()) it = s.buckets.emplace(std::string(event), State::Bucket{s.limits.burst, now, 0}).first;
  auto& b = it->second;
  const double elapsed = std::chrono::duration<double>(now - b.last).count();
  b.tokens = std::min(s.limits.burst, b.tokens + elapsed * s.limits.per_second);
  b.last = now;
  if (b.tokens < 1) {
    ++b.suppressed;
    return;
  }
  b.tokens -= 1;
  s.flush_locked();
  s.write(event, key, detail);
}

void Audit::flush_suppressed() const {
  if (!state_) return;
  std::lock_guard lock(state_->mu);
  state_->flush_locked();
}

}  // namespace tandem::agent
