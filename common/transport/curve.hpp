// CurveZMQ keys: generation, Z85 key files, and the libzmq capability check.
//
// Key files (docs/wire-protocol.md §7): PREFIX.pub holds one line with the 40-character Z85 public
// key; PREFIX.key holds the Z85 secret key. Lines starting with '#' are comments. The secret file is
// created with O_EXCL and mode 0600 (never chmod-ed afterwards, so there is no window in which it is
// readable) and is refused on load unless it is a regular file owned by the effective user with no
// group/other permission bits (threat T25).
#pragma once

#include <string>
#include <string_view>

#include "common/base/result.hpp"

namespace tandem::transport {

inline constexpr std::size_t kZ85KeyLen = 40;

// Errc::environment unless this libzmq was built with CURVE (zmq_has("curve")).
Status curve_available();

// True if `key` is 40 characters of the Z85 alphabet that decode to 32 bytes.
bool is_z85_key(std::string_view key);

struct CurveKeypair {
  std::string public_z85;
  std::string secret_z85;

  static Result<CurveKeypair> generate();
  // Loads PREFIX.key (secret; permission-checked) and derives the public half from it.
  static Result<CurveKeypair> load_secret_file(const std::string& path);
};

// Reads a public key file (one Z85 line, '#' comments allowed). Errc::config on any defect.
Result<std::string> load_public_key_file(const std::string& path);

// Writes PREFIX.key (0600, O_EXCL) and PREFIX.pub (0644). Without `force`, refuses (Errc::usage)
// if either file exists; with it, removes them first and still creates with O_EXCL.
Status save_keypair(const CurveKeypair& kp, const std::string& prefix, bool force);

}  // namespace tandem::transport
