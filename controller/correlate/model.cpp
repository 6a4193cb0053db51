#include "controller/correlate/model.hpp"

#include <array>

namespace tandem::correlate {
namespace {
constexpr std::array<std::string_view, kFateCount> kFateNames = {
    "answered", "lost_forward", "unanswered", "reply_lost", "injected", "icmp_error", "not_sent", "unknown"};
}  // namespace

std::string_view fate_name(Fate f) { return kFateNames[static_cast<std::size_t>(f)]; }

std::optional<Fate> fate_from_name(std::string_view name) {
  for (std::size_t i = 0; i < kFateNames.size(); ++i) {
    if (kFateNames[i] == name) return static_cast<Fate>(i);
  }
  return std::nullopt;
}

std::string_view direction_name(Direction d) { return d == Direction::forward ? "forward" : "reverse"; }

}  // namespace tandem::correlate
