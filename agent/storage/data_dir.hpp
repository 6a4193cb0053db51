// The agent's data directory (--data-dir): where run captures wait for RUN_END (threat T26;
// attack-report row R5). The agent never changes the mode of a directory and never empties one:
//   * missing: created with mode 0700 (parents as needed, with the process umask);
//   * present: must be a directory (not a symlink) owned by the agent's user and not writable by
//     group or others, else start-up is refused with the reason (a shared folder such as /tmp is
//     never taken over);
//   * files: the agent removes only files it writes, recognised by name: kRunFilePrefix +
//     "<run id>.<role>.pcapng" (a file of that name left by a crashed agent is removed at start).
#pragma once

#include <filesystem>
#include <string>

#include "common/base/result.hpp"

namespace tandem::agent {

inline constexpr const char* kRunFilePrefix = "tandem-run-";

// Errc::environment with a one-line reason if the directory cannot be created or is not safe.
Status prepare_data_dir(const std::filesystem::path& dir);
// "<dir>/tandem-run-<run id>.<role>.pcapng"
std::filesystem::path run_file(const std::filesystem::path& dir, const std::string& run_id, const std::string& role);
// True for names run_file() produces (and only those).
bool is_run_file(const std::filesystem::path& name);

}  // namespace tandem::agent
