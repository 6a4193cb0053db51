// Result<T>: the value-or-error type for every likely environment failure (no CAP_NET_RAW, no
// interface, peer gone, timeout, bad input). Exceptions are kept for the control plane and are caught
// at the executable boundary, where Error::code maps to the documented exit code (see exit_code()).
#pragma once

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace tandem {

// What kind of failure; decides the process exit code (DESIGN.md §3).
enum class Errc {
  usage,        // bad command line / bad value given by the user          -> exit 1
  config,       // bad scenario / policy / key file                         -> exit 1
  environment,  // missing interface, route, tool, namespace, disk          -> exit 2
  permission,   // no CAP_NET_RAW / CAP_NET_ADMIN / root                    -> exit 2
  peer,         // agent unreachable, gone, refused                         -> exit 3
  protocol,     // malformed or unexpected wire message                     -> exit 3
  internal,     // a bug: an invariant broke                                -> exit 3
};

// Exit code contract of the tandem CLI (DESIGN.md §3): 0 clean, 1 usage/config, 2 environment,
// 3 peer/protocol, 4 run completed and found a problem.
inline int exit_code(Errc c) {
  switch (c) {
    case Errc::usage:
    case Errc::config: return 1;
    case Errc::environment:
    case Errc::permission: return 2;
    case Errc::peer:
    case Errc::protocol:
    case Errc::internal: return 3;
  }
  return 3;
}
inline constexpr int kExitProblemFound = 4;

// An error names the subsystem, the operation and the cause: "pcap: activate eth0: permission denied".
struct Error {
  Errc code = Errc::internal;
  std::string subsystem;  // "pcap", "raw-send", "lab", "probe-spec", ...
  std::string message;    // operation and cause

  std::string text() const { return subsystem.empty() ? message : subsystem + ": " + message; }
};

inline Error make_error(Errc code, std::string subsystem, std::string message) {
  return Error{code, std::move(subsystem), std::move(message)};
}

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}      // NOLINT(google-explicit-constructor)
  Result(Error error) : v_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { assert(ok()); return std::get<0>(v_); }
  const T& value() const& { assert(ok()); return std::get<0>(v_); }
  T&& value() && { assert(ok()); return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  const Error& error() const { assert(!ok()); return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

// Result<void>: success carries nothing.
struct Ok {};
using Status = Result<Ok>;
inline Status ok_status() { return Ok{}; }

}  // namespace tandem
