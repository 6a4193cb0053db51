// Logging: spdlog with one named logger per subsystem ("pcap", "raw-send", "lab", ...), all writing
// to stderr so that stdout stays the report. Verbosity is set once by the executable.
#pragma once

#include <memory>
#include <string_view>

#include <spdlog/spdlog.h>

namespace tandem::log {

// Returns (creating on first use) the logger for a subsystem. Thread-safe.
std::shared_ptr<spdlog::logger> get(std::string_view subsystem);

// 0 = warnings and errors only (default), 1 = info, 2 = debug, 3+ = trace.
void set_verbosity(int level);

}  // namespace tandem::log
