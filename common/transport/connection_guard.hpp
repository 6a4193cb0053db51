// The agent socket's guard thread: what libzmq does not bound or report on its own (threats T5, T9,
// T22; issue 10 "Bounded everything", attack-report rows M10 and A10).
//
// 1. Memory. ZMQ_MAXMSGSIZE bounds one frame and ZMQ_RCVHWM counts whole messages, so one multipart
//    message of many frames is buffered whole inside libzmq (its pipe makes a message visible to the
//    reader only once the last frame arrived): the application cannot read it frame by frame and
//    drop the rest. The guard therefore bounds what it CAN see: for every accepted TCP connection
//    (socket monitor ZMQ_EVENT_ACCEPTED gives the fd) it compares the bytes the kernel received on
//    it (TCP_INFO tcpi_bytes_received) with the point where the application last took a whole
//    message from it (delivered(fd), fd from the message's "__fd" property). Bytes received and not
//    yet delivered are held somewhere in the kernel or libzmq; when they exceed the per-connection
//    bound, or their sum over all connections exceeds the total bound (largest first), the
//    connection is shut down (shutdown(2) on libzmq's fd: libzmq then sees EOF, closes it and drops
//    the incomplete message). Checked every `period`, so the memory held is bounded by the limits
//    plus what one connection can push through CURVE decryption in one period.
// 2. Audit. Refusals that happen before ZAP (plaintext/NULL or PLAIN clients, a wrong server key,
//    garbage) are reported by the monitor as ZMQ_EVENT_HANDSHAKE_FAILED_{NO_DETAIL,PROTOCOL}; the
//    guard reports each with the peer of the connection that closes next without having delivered a
//    message (libzmq's events carry no fd for handshake failures: the pairing is best effort when
//    several handshakes fail at once). ZAP refusals are already reported by the ZAP handler.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/base/result.hpp"

namespace tandem::transport {

struct GuardLimits {
  // Bytes one connection may have received without the application having taken them as whole
  // messages. Must exceed the largest request plus CURVE framing (kMaxMessageSize + a few KiB).
  std::uint64_t per_connection_bytes = 1u << 20;
  std::uint64_t total_bytes = 16u << 20;  // the same summed over all connections
  // Allowance for traffic that never becomes a message (ZMTP heartbeats, CURVE handshake).
  std::uint64_t overhead_bytes_per_s = 256;
  std::chrono::milliseconds period{5};
};

struct GuardEvent {
  enum class Kind : std::uint8_t { handshake_failed, connection_dropped };
  Kind kind = Kind::handshake_failed;
  std::string peer;    // "ADDR:PORT" or "unknown"
  std::string reason;  // "mechanism mismatch", "bytes over bound (1048576)", ...
  std::uint64_t bytes = 0;  // connection_dropped: bytes held
};
using GuardSink = std::function<void(const GuardEvent&)>;

class ConnectionGuard {
 public:
  // `router` is a libzmq socket handle (void*) of `context`; call from the socket's thread before
  // the socket is used elsewhere. Errc::internal if the monitor cannot be attached.
  static Result<std::unique_ptr<ConnectionGuard>> start(void* context, void* router, GuardLimits limits, GuardSink sink);
  ~ConnectionGuard();
  ConnectionGuard(const ConnectionGuard&) = delete;
  ConnectionGuard& operator=(const ConnectionGuard&) = delete;

  // The application has taken a whole message that arrived on `fd` (any thread).
  void delivered(int fd);
  // Connections currently tracked (tests).
  std::size_t connections() const;

  struct Impl;

 private:
  explicit ConnectionGuard(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tandem::transport
