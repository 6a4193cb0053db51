#include "common/pcapio/file_out.hpp"

#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <unistd.h>

namespace tandem::pcapio::detail {

namespace {
constexpr const char* kSubsystem = "pcap";
}

Result<int> open_for_write(const std::string& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    return make_error(Errc::environment, kSubsystem, "create " + path + ": " + std::strerror(errno));
  }
  return fd;
}

Status write_all(int fd, const std::string& path, std::span<const std::uint8_t> data) {
  std::size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return make_error(Errc::environment, kSubsystem, "write " + path + ": " + std::strerror(errno));
    }
    done += static_cast<std::size_t>(n);
  }
  return ok_status();
}

Status sync_and_close(int fd, const std::string& path) {
  Status result = ok_status();
  // EINVAL/EROFS: the target cannot be synced (a pipe, /dev/null); that is not a data loss.
  if (::fsync(fd) != 0 && errno != EINVAL && errno != EROFS) {
    result = make_error(Errc::environment, kSubsystem, "fsync " + path + ": " + std::strerror(errno));
  }
  if (::close(fd) != 0 && result.ok()) {
    result = make_error(Errc::environment, kSubsystem, "close " + path + ": " + std::strerror(errno));
  }
  return result;
}

}  // namespace tandem::pcapio::detail
