// The agent's table of controller connections (sessions by ROUTER routing id), bounded so that no
// controller can crowd out another's run (threat T29; attack-report row L8).
//
// libzmq does not tell the application when a connection closes, so the table forgets sessions only
// by eviction. The rules: a key has at most `per_key` sessions (its own least recently seen goes
// first); the table holds at most `total`, and when full the least recently seen session of a key
// that does NOT hold the run goes. The run holder's sessions are therefore never evicted by another
// key, only by the holder itself opening more than `per_key`.
#pragma once

#include <cstddef>
#include <map>
#include <string>

#include "agent/session/session.hpp"

namespace tandem::agent {

class ConnectionTable {
 public:
  static constexpr std::size_t kDefaultTotal = 256;
  static constexpr std::size_t kDefaultPerKey = 16;
  explicit ConnectionTable(std::size_t total = kDefaultTotal, std::size_t per_key = kDefaultPerKey)
      : total_(total), per_key_(per_key) {}

  // The session of `routing_id`, created for `key` if new (evicting as above); never null.
  // `run_owner`: the key holding the run, empty if none.
  Connection& admit(const std::string& routing_id, const std::string& key, const std::string& run_owner);
  void erase(const std::string& routing_id) { sessions_.erase(routing_id); }
  std::size_t size() const { return sessions_.size(); }
  std::size_t count(const std::string& key) const;

 private:
  void evict_oldest(const std::string& of_key, const std::string& except_key);
  std::size_t total_, per_key_;
  std::map<std::string, Connection> sessions_;
};

}  // namespace tandem::agent
