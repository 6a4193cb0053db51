#include "agent/storage/data_dir.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace tandem::agent {

Status prepare_data_dir(const std::filesystem::path& dir) {
  const std::string d = dir.string();
  struct stat st {};
  if (::lstat(d.c_str(), &st) != 0) {
    if (errno != ENOENT) return make_error(Errc::environment, "agent", "data dir " + d + ": " + std::strerror(errno));
    std::error_code ec;
    if (dir.has_parent_path()) std::filesystem::create_directories(dir.parent_path(), ec);
    if (::mkdir(d.c_str(), 0700) != 0)
      return make_error(Errc::environment, "agent", "data dir " + d + ": cannot create: " + std::strerror(errno));
    return ok_status();
  }
  if (S_ISLNK(st.st_mode))
    return make_error(Errc::environment, "agent", "data dir " + d + " is a symbolic link; give the real directory");
  if (!S_ISDIR(st.st_mode)) return make_error(Errc::environment, "agent", "data dir " + d + " is not a directory");
  if (st.st_uid != ::geteuid())
    return make_error(Errc::environment, "agent",
                      fmt::format("data dir {} is owned by uid {}, not by the agent's user (uid {}); use a directory of "
                                  "its own (a missing one is created 0700)",
                                  d, st.st_uid, ::geteuid()));
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0)
    return make_error(Errc::environment, "agent",
                      fmt::format("data dir {} has mode {:04o}: writable by group or others; the agent does not "
                                  "share its directory (use mode 0700, or a missing one is created 0700)",
                                  d, st.st_mode & 07777));
  if (::access(d.c_str(), W_OK) != 0) return make_error(Errc::environment, "agent", "data dir " + d + " is not writable");
  return ok_status();
}

std::filesystem::path run_file(const std::filesystem::path& dir, const std::string& run_id, const std::string& role) {
  return dir / (std::string(kRunFilePrefix) + run_id + "." + role + ".pcapng");
}

bool is_run_file(const std::filesystem::path& name) {
  const std::string n = name.filename().string();
  auto ends = [&](const std::string& suffix) {
    return n.size() > suffix.size() && n.compare(n.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  return n.rfind(kRunFilePrefix, 0) == 0 && (ends(".client.pcapng") || ends(".server.pcapng"));
}

}  // namespace tandem::agent
