// The scenarios `tandem demo` runs: deploy/scenarios/*.toml, embedded at build time so the demo
// needs no file next to the binary (CMake generates builtin_scenarios.cpp from that folder).
#pragma once

#include <span>
#include <string_view>

namespace tandem::cli {

struct BuiltinScenario {
  std::string_view name;  // file name without .toml
  std::string_view toml;
};

std::span<const BuiltinScenario> builtin_scenarios();

}  // namespace tandem::cli
