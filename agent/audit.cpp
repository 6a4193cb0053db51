#include "agent/audit.hpp"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace tandem::agent {

Result<Audit> Audit::open(const std::string& file, bool to_stderr) {
  std::vector<spdlog::sink_ptr> sinks;
  if (to_stderr) sinks.push_back(std::make_shared<spdlog::sinks::stderr_sink_mt>());
  if (!file.empty()) {
    try {
      sinks.push_back(std::make_shared<spdlog::sinks::basic_file_sink_mt>(file, false));
    } catch (const spdlog::spdlog_ex& e) {
      return make_error(Errc::environment, "audit", "cannot open " + file + ": " + e.what());
    }
  }
  Audit a;
  // Not registered in spdlog's registry: tests run several daemons in one process.
  a.logger_ = std::make_shared<spdlog::logger>("audit", sinks.begin(), sinks.end());
  a.logger_->set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %v");
  a.logger_->set_level(spdlog::level::info);
  a.logger_->flush_on(spdlog::level::info);
  return a;
}

void Audit::record(std::string_view event, std::string_view key, std::string_view detail) const {
  if (!logger_) return;
  logger_->info("audit {} key={} {}", event, key.empty() ? std::string_view("-") : key, detail);
}

}  // namespace tandem::agent
