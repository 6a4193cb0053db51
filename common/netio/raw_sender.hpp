// RawSender: sends complete, caller-built IP packets (IP header included) through a raw socket.
//
//   v4: socket(AF_INET,  SOCK_RAW, IPPROTO_RAW). IP_HDRINCL is implied by IPPROTO_RAW. The kernel
//       still fills in the IPv4 total length and header checksum, the source address when it is
//       0.0.0.0 and the IP id when it is 0 (raw(7)); everything else goes out as given.
//   v6: socket(AF_INET6, SOCK_RAW, IPPROTO_RAW). Linux sets the socket's hdrincl flag for
//       IPPROTO_RAW in rawv6_init_sk() (visible as getsockopt(IPV6_HDRINCL) == 1, which open()
//       checks), so the buffer must start with the IPv6 header. Unlike v4 the kernel changes
//       nothing in the packet: payload length and L4 checksum are the caller's job. Link-local
//       destinations are not supported (no scope id is passed).
//
// The destination given to send() only selects the route; it should equal the packet's own
// destination address. IP_RECVERR / IPV6_RECVERR are switched on because without them the kernel
// reports a packet dropped for lack of buffer space (ENOBUFS) as success, which would be silent loss.
//
// Threading: a RawSender is a move-only socket owner; use one instance from one thread at a time.
// Two senders (e.g. v4 and v6, or two threads) are independent.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "common/base/clock.hpp"
#include "common/base/result.hpp"
#include "common/packet/addr.hpp"

namespace tandem::netio {

using packet::IpAddr;
using packet::IpVersion;

// What the caller should do about a failed send (decided by errno alone, see classify_send_errno).
enum class SendErrorClass : std::uint8_t {
  transient,    // ENOBUFS, EAGAIN, EWOULDBLOCK, EINTR: retry after a short pause; counted
  environment,  // ENETUNREACH, EHOSTUNREACH, ENETDOWN, EADDRNOTAVAIL, EPERM/EACCES at send time
                // (a local firewall rejected it), ...: the host's network state is the cause
  usage,        // EMSGSIZE, EINVAL, EAFNOSUPPORT, EDESTADDRREQ: the packet or address is wrong
};

SendErrorClass classify_send_errno(int err);

// The Error a failed send maps to: ENETUNREACH to dst -> {environment, "raw-send",
// "no route to 192.0.2.1: Network is unreachable"}; EMSGSIZE -> usage; ENOBUFS -> environment
// ("... still out of buffer space after N retries").
Error send_error(int err, const IpAddr& dst);

// How long send()/send_batch() insist when the kernel is out of buffer space (ENOBUFS/EAGAIN).
// Every retry is counted in SendCounters::retries; a packet that still fails after max_retries is
// reported as failed with its errno, never dropped silently.
struct RetryPolicy {
  int max_retries = 200;
  Nanos backoff_ns = 20'000;  // pause between retries (CLOCK_MONOTONIC sleep)
};

struct RawSenderOptions {
  int sndbuf_bytes = 4 << 20;  // SO_SNDBUFFORCE (needs CAP_NET_ADMIN), falling back to SO_SNDBUF
  RetryPolicy retry;
  // Non-empty: SO_BINDTODEVICE, so every packet leaves through this interface (routes through
  // others are ignored; with no route through it an IPv4 destination is treated as on-link, as
  // `ping -I IF` does). Empty: the routing table decides.
  std::string bind_device;
};

// One packet handed to send_batch(). The bytes must stay valid for the duration of the call.
struct OutPacket {
  std::span<const std::uint8_t> bytes;  // complete IP packet
  IpAddr dst;                           // routing destination; version must match the sender
};

// Per-packet result of send()/send_batch().
struct PacketStatus {
  Nanos sent_ns = 0;  // CLOCK_REALTIME right after the syscall that carried it returned; 0 if failed
  int err = 0;        // errno if the packet was not accepted by the kernel, else 0
};

struct BatchResult {
  std::size_t accepted = 0;   // packets the kernel took
  std::size_t processed = 0;  // packets with a status written (accepted + failed)
};

struct SendCounters {
  std::uint64_t sent = 0;      // packets the kernel accepted
  std::uint64_t failed = 0;    // packets given up on (err != 0)
  std::uint64_t retries = 0;   // ENOBUFS/EAGAIN/EINTR retries (not failures)
  std::uint64_t syscalls = 0;  // sendto + sendmmsg calls
};

class RawSender {
 public:
  // Opens the raw socket. Errors: Errc::permission when the process lacks CAP_NET_RAW (EPERM/EACCES,
  // message carries the hint), Errc::environment for anything else (e.g. EAFNOSUPPORT when IPv6 is
  // off, or a bind_device that does not exist: "bind raw socket to eth9: No such device").
  static Result<RawSender> open(IpVersion version, const RawSenderOptions& options = {});

  RawSender(RawSender&& other) noexcept;
  RawSender& operator=(RawSender&& other) noexcept;
  RawSender(const RawSender&) = delete;
  RawSender& operator=(const RawSender&) = delete;
  ~RawSender();

  // Sends one packet (sendto). On success returns the CLOCK_REALTIME ns taken right after sendto
  // returned. Transient errors are retried per RetryPolicy; the Error is send_error(errno, dst).
  Result<Nanos> send(std::span<const std::uint8_t> ip_packet, const IpAddr& dst);

  // Sends packets with as few sendmmsg calls as the kernel allows. status[i] receives packet i's
  // outcome (status.size() must be >= packets.size()); all packets carried by one sendmmsg share
  // its timestamp. A packet failing with a non-transient error is marked; then the call returns
  // (stop_at_error) or skips it and sends the rest. Packets at or beyond `processed` were not
  // attempted and their status is untouched.
  BatchResult send_batch(std::span<const OutPacket> packets, std::span<PacketStatus> status,
                         bool stop_at_error = false);

  IpVersion version() const { return version_; }
  int fd() const { return fd_; }
  int sndbuf_bytes() const { return sndbuf_; }  // what the kernel granted (getsockopt)
  const SendCounters& counters() const { return counters_; }

  // Largest batch one sendmmsg call carries (UIO_MAXIOV limits it to 1024; we use 64 like synblast).
  static constexpr std::size_t kMaxBatch = 64;

 private:
  RawSender(int fd, IpVersion version, int sndbuf, RetryPolicy retry)
      : fd_(fd), version_(version), sndbuf_(sndbuf), retry_(retry) {}
  void close_fd();

  int fd_ = -1;
  IpVersion version_ = IpVersion::v4;
  int sndbuf_ = 0;
  RetryPolicy retry_;
  SendCounters counters_;
};

}  // namespace tandem::netio
