#include "agent/session/connections.hpp"

#include <algorithm>

namespace tandem::agent {

std::size_t ConnectionTable::count(const std::string& key) const {
  return static_cast<std::size_t>(
      std::count_if(sessions_.begin(), sessions_.end(), [&](const auto& s) { return s.second.key == key; }));
}

// Evicts the least recently seen session whose key is `of_key` (if not empty) and is not
// `except_key` (if not empty).
void ConnectionTable::evict_oldest(const std::string& of_key, const std::string& except_key) {
  auto oldest = sessions_.end();
  for (auto it = sessions_.begin(); it != sessions_.end(); ++it) {
    if (!of_key.empty() && it->second.key != of_key) continue;
    if (!except_key.empty() && it->second.key == except_key) continue;
    if (oldest == sessions_.end() || it->second.last_seen_mono < oldest->second.last_seen_mono) oldest = it;
  }
  if (oldest != sessions_.end()) sessions_.erase(oldest);
}

Connection& ConnectionTable::admit(const std::string& routing_id, const std::string& key, const std::string& run_owner) {
  auto it = sessions_.find(routing_id);
  if (it != sessions_.end()) return it->second;
  if (count(key) >= per_key_) evict_oldest(key, "");
  // Only the holder's own sessions are left if everything else is gone: the holder is then capped
  // by per_key, so the table never grows past total + 1.
  if (sessions_.size() >= total_) evict_oldest("", run_owner);
  return sessions_.emplace(routing_id, Connection{key}).first->second;
}

}  // namespace tandem::agent
