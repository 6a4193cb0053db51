#include "common/transport/curve.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <sstream>

#include <zmq.h>

namespace tandem::transport {
namespace {

constexpr std::size_t kMaxKeyFileBytes = 4096;

std::string errno_text(int e) { return std::strerror(e); }

Error config_error(const std::string& path, const std::string& what) {
  return make_error(Errc::config, "key", path + ": " + what);
}

// The single non-comment line of a key file.
Result<std::string> key_line(const std::string& path, const std::string& content) {
  std::istringstream in(content);
  std::string line, found;
  int keys = 0;
  while (std::getline(in, line)) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) line.pop_back();
    std::size_t start = line.find_first_not_of(" \t");
    if (start == std::string::npos || line[start] == '#') continue;
    found = line.substr(start);
    ++keys;
  }
  if (keys != 1) return config_error(path, "expected exactly one key line, found " + std::to_string(keys));
  if (!is_z85_key(found)) return config_error(path, "not a 40-character Z85 CurveZMQ key");
  return found;
}

Result<std::string> read_small_fd(int fd, const std::string& path) {
  std::string content;
  std::array<char, 1024> buf{};
  for (;;) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return config_error(path, std::string("read: ") + errno_text(errno));
    }
    if (n == 0) break;
    content.append(buf.data(), static_cast<std::size_t>(n));
    if (content.size() > kMaxKeyFileBytes) return config_error(path, "larger than a key file can be");
  }
  return content;
}

Status write_all(int fd, const std::string& data, const std::string& path) {
  std::size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return make_error(Errc::environment, "keygen", "write " + path + ": " + errno_text(errno));
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) return make_error(Errc::environment, "keygen", "fsync " + path + ": " + errno_text(errno));
  return ok_status();
}

Status create_exclusive(const std::string& path, mode_t mode, const std::string& content) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
  if (fd < 0) {
    if (errno == EEXIST) return make_error(Errc::usage, "keygen", path + " already exists (use --force to replace it)");
    return make_error(errno == EACCES ? Errc::permission : Errc::environment, "keygen",
                      "create " + path + ": " + errno_text(errno));
  }
  Status st = write_all(fd, content, path);
  if (::close(fd) != 0 && st.ok())
    st = make_error(Errc::environment, "keygen", "close " + path + ": " + errno_text(errno));
  if (!st.ok()) ::unlink(path.c_str());
  return st;
}

// Which half a key file holds, as far as its name and keygen's comment line tell: a Z85 line alone
// cannot say (both halves are 32 random bytes), so the other half given by mistake would fail only
// later, at the handshake, as "wrong key or agent down?".
enum class KeyHalf { unknown, public_half, secret_half };
KeyHalf key_half(const std::string& path, const std::string& content) {
  auto ends_with = [&](std::string_view suffix) {
    return path.size() >= suffix.size() && path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  if (content.find("CurveZMQ public key") != std::string::npos || ends_with(".pub")) return KeyHalf::public_half;
  if (content.find("CurveZMQ SECRET key") != std::string::npos || ends_with(".key")) return KeyHalf::secret_half;
  return KeyHalf::unknown;
}

bool exists_nofollow(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

}  // namespace

Status curve_available() {
  if (zmq_has("curve") != 1) {
    return make_error(Errc::environment, "transport",
                      "this libzmq was built without CURVE security (zmq_has(\"curve\") is false); "
                      "install a libzmq with libsodium support");
  }
  return ok_status();
}

bool is_z85_key(std::string_view key) {
  if (key.size() != kZ85KeyLen) return false;
  std::array<char, kZ85KeyLen + 1> text{};
  std::memcpy(text.data(), key.data(), kZ85KeyLen);
  std::array<std::uint8_t, 32> bin{};
  return zmq_z85_decode(bin.data(), text.data()) != nullptr;
}

Result<CurveKeypair> CurveKeypair::generate() {
  if (auto st = curve_available(); !st) return st.error();
  std::array<char, kZ85KeyLen + 1> pub{}, sec{};
  if (zmq_curve_keypair(pub.data(), sec.data()) != 0)
    return make_error(Errc::environment, "key", std::string("zmq_curve_keypair: ") + zmq_strerror(zmq_errno()));
  return CurveKeypair{std::string(pub.data()), std::string(sec.data())};
}

Result<CurveKeypair> CurveKeypair::load_secret_file(const std::string& path) {
  // O_NOFOLLOW + fstat on the opened descriptor: the checks apply to the file we actually read.
  int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return config_error(path, std::string("open: ") + errno_text(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    return config_error(path, std::string("stat: ") + errno_text(e));
  }
  auto refuse = [&](const std::string& why) -> Result<CurveKeypair> {
    ::close(fd);
    return config_error(path, why);
  };
  if (!S_ISREG(st.st_mode)) return refuse("secret key is not a regular file");
  // Reading before the owner/mode checks is safe (we only look at it), and says the real problem
  // at once when the public half was given: "chmod 600" advice would be wrong for a .pub file.
  auto content = read_small_fd(fd, path);
  if (!content) {
    ::close(fd);
    return content.error();
  }
  if (key_half(path, *content) == KeyHalf::public_half) {
    return refuse("this is a public key file; a secret key is needed here (PREFIX.key from `tandem keygen`, "
                  "not PREFIX.pub)");
  }
  if (st.st_uid != ::geteuid())
    return refuse("secret key is owned by uid " + std::to_string(st.st_uid) + ", not by this user (uid " +
                  std::to_string(::geteuid()) + "); refusing to use it");
  if ((st.st_mode & 0077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return refuse(std::string("secret key has mode ") + mode + " (readable by others); run: chmod 600 " + path);
  }
  ::close(fd);
  auto secret = key_line(path, *content);
  if (!secret) return secret.error();
  if (auto avail = curve_available(); !avail) return avail.error();
  std::array<char, kZ85KeyLen + 1> pub{};
  if (zmq_curve_public(pub.data(), secret->c_str()) != 0)
    return config_error(path, std::string("cannot derive the public key: ") + zmq_strerror(zmq_errno()));
  return CurveKeypair{std::string(pub.data()), std::move(*secret)};
}

Result<std::string> load_public_key_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return config_error(path, std::string("open: ") + errno_text(errno));
  auto content = read_small_fd(fd, path);
  ::close(fd);
  if (!content) return content.error();
  if (key_half(path, *content) == KeyHalf::secret_half) {
    return config_error(path, "this is a secret key file; a public key is needed here (PREFIX.pub, never the "
                              "secret PREFIX.key)");
  }
  return key_line(path, *content);
}

Status save_keypair(const CurveKeypair& kp, const std::string& prefix, bool force) {
  if (!is_z85_key(kp.public_z85) || !is_z85_key(kp.secret_z85))
    return make_error(Errc::internal, "keygen", "refusing to save a malformed key pair");
  const std::string key_path = prefix + ".key";
  const std::string pub_path = prefix + ".pub";
  for (const auto& p : {key_path, pub_path}) {
    if (!exists_nofollow(p)) continue;
    if (!force) return make_error(Errc::usage, "keygen", p + " already exists (use --force to replace it)");
    if (::unlink(p.c_str()) != 0 && errno != ENOENT)
      return make_error(Errc::environment, "keygen", "remove " + p + ": " + errno_text(errno));
  }
  Status st = create_exclusive(
      key_path, 0600,
      "# tandem CurveZMQ SECRET key (Z85). Keep it private: mode 0600, never send it to anyone.\n" +
          kp.secret_z85 + "\n");
  if (!st) return st;
  st = create_exclusive(pub_path, 0644,
                        "# tandem CurveZMQ public key (Z85). Send this line to the other side's operator.\n" +
                            kp.public_z85 + "\n");
  if (!st) ::unlink(key_path.c_str());  // all or nothing
  return st;
}

}  // namespace tandem::transport
