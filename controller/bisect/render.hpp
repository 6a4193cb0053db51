// The bisect experiment rendered for people and programs: report.json's "bisect" block (DESIGN.md
// §5), the one-sentence verdict, the multi-line report, the live variant table, and whose network a
// failure fate points at.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "controller/bisect/experiment.hpp"

namespace tandem::bisect {

// The report.json "bisect" block (DESIGN.md §5, docs/bisect.md).
nlohmann::ordered_json bisect_block(const Experiment& e, const BisectResult& r);
// One plain sentence for the verdict, and the multi-line human report.
std::string verdict_sentence(const Experiment& e, const BisectResult& r);
std::string human_report(const Experiment& e, const BisectResult& r);
// The live table (one line per variant sent so far).
std::string variant_table(const Experiment& e);
// Whose network a failure fate points at.
std::string_view fate_advice(std::string_view fate);

}  // namespace tandem::bisect
