#include "common/base/log.hpp"

#include <mutex>
#include <string>

#include <spdlog/sinks/stdout_color_sinks.h>

namespace tandem::log {
namespace {
std::mutex g_mu;
spdlog::level::level_enum g_level = spdlog::level::warn;
}  // namespace

std::shared_ptr<spdlog::logger> get(std::string_view subsystem) {
  std::lock_guard lock(g_mu);
  std::string name(subsystem);
  if (auto existing = spdlog::get(name)) return existing;
  auto logger = spdlog::stderr_color_mt(name);
  logger->set_level(g_level);
  logger->set_pattern("%^%l%$ [%n] %v");
  return logger;
}

void set_verbosity(int level) {
  std::lock_guard lock(g_mu);
  g_level = level <= 0 ? spdlog::level::warn
            : level == 1 ? spdlog::level::info
            : level == 2 ? spdlog::level::debug
                         : spdlog::level::trace;
  spdlog::apply_all([](const std::shared_ptr<spdlog::logger>& l) { l->set_level(g_level); });
}

}  // namespace tandem::log
