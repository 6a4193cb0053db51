#include "common/pcapio/file_out.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include <fcntl.h>
#include <unistd.h>

#include "common/base/log.hpp"

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

Result<BufferedFile> BufferedFile::open(const std::string& path, std::size_t buffer_bytes) {
  auto fd = open_for_write(path);
  if (!fd) return fd.error();
  BufferedFile f;
  f.fd_ = *fd;
  f.path_ = path;
  f.buffer_bytes_ = std::max<std::size_t>(buffer_bytes, 4096);
  f.buf_.reserve(f.buffer_bytes_ + 4096);
  return f;
}

BufferedFile::BufferedFile(BufferedFile&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      path_(std::move(other.path_)),
      buf_(std::move(other.buf_)),
      buffer_bytes_(other.buffer_bytes_),
      failed_(other.failed_),
      first_error_(std::move(other.first_error_)) {}

BufferedFile& BufferedFile::operator=(BufferedFile&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) {
      if (auto s = close(); !s) log::get(kSubsystem)->error("{}", s.error().text());
    }
    fd_ = std::exchange(other.fd_, -1);
    path_ = std::move(other.path_);
    buf_ = std::move(other.buf_);
    buffer_bytes_ = other.buffer_bytes_;
    failed_ = other.failed_;
    first_error_ = std::move(other.first_error_);
  }
  return *this;
}

BufferedFile::~BufferedFile() {
  if (fd_ >= 0) {
    if (auto s = close(); !s) log::get(kSubsystem)->error("{}", s.error().text());
  }
}

Status BufferedFile::usable() const {
  if (failed_) return first_error_;
  if (fd_ < 0) return make_error(Errc::usage, kSubsystem, "write " + path_ + ": writer is closed");
  return ok_status();
}

Status BufferedFile::fail(Error e) {
  if (!failed_) {
    failed_ = true;
    first_error_ = e;
  }
  return e;
}

Status BufferedFile::flush() {
  if (auto s = usable(); !s) return s;
  if (buf_.empty()) return ok_status();
  auto s = write_all(fd_, path_, buf_);
  buf_.clear();
  if (!s) return fail(s.error());
  return ok_status();
}

Status BufferedFile::close() {
  if (fd_ < 0) return failed_ ? Status(first_error_) : ok_status();
  Status s = flush();
  Status c = sync_and_close(fd_, path_);
  fd_ = -1;
  if (!s) return s;
  if (!c) return fail(c.error());
  return ok_status();
}

}  // namespace tandem::pcapio::detail
