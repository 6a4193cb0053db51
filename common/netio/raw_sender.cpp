#include "common/netio/raw_sender.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <string>

namespace tandem::netio {

namespace {

constexpr const char* kSubsystem = "raw-send";

std::string errno_text(int err) { return std::strerror(err); }

struct SockAddr {
  sockaddr_storage storage{};
  socklen_t len = 0;
};

SockAddr to_sockaddr(const IpAddr& dst) {
  SockAddr s;
  if (dst.is_v4()) {
    auto* sin = reinterpret_cast<sockaddr_in*>(&s.storage);
    sin->sin_family = AF_INET;
    std::memcpy(&sin->sin_addr, dst.bytes.data(), 4);
    s.len = sizeof(sockaddr_in);
  } else {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&s.storage);
    sin6->sin6_family = AF_INET6;
    // sin6_port must stay 0: for IPPROTO_RAW sockets a non-zero port is read as a protocol number
    // and rejected with EINVAL.
    std::memcpy(&sin6->sin6_addr, dst.bytes.data(), 16);
    s.len = sizeof(sockaddr_in6);
  }
  return s;
}

void pause_ns(Nanos ns) {
  timespec ts{static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
  nanosleep(&ts, nullptr);
}

}  // namespace

SendErrorClass classify_send_errno(int err) {
  switch (err) {
    case ENOBUFS:
    case EAGAIN:
#if EWOULDBLOCK != EAGAIN
    case EWOULDBLOCK:
#endif
    case EINTR:
      return SendErrorClass::transient;
    case EMSGSIZE:
    case EINVAL:
    case EAFNOSUPPORT:
    case EDESTADDRREQ:
    case EFAULT:
      return SendErrorClass::usage;
    default:
      return SendErrorClass::environment;
  }
}

Error send_error(int err, const IpAddr& dst) {
  const std::string to = dst.to_string();
  switch (err) {
    case ENETUNREACH:
    case EHOSTUNREACH:
      return make_error(Errc::environment, kSubsystem, "no route to " + to + ": " + errno_text(err));
    case EMSGSIZE:
      return make_error(Errc::usage, kSubsystem,
                        "send to " + to + ": packet larger than the path MTU: " + errno_text(err));
    case ENOBUFS:
    case EAGAIN:
      return make_error(Errc::environment, kSubsystem,
                        "send to " + to + ": still out of buffer space after retries: " + errno_text(err));
    case EPERM:
    case EACCES:
      return make_error(Errc::environment, kSubsystem,
                        "send to " + to + ": rejected locally (firewall output rule?): " + errno_text(err));
    default:
      break;
  }
  const Errc code = classify_send_errno(err) == SendErrorClass::usage ? Errc::usage : Errc::environment;
  return make_error(code, kSubsystem, "send to " + to + ": " + errno_text(err));
}

Result<RawSender> RawSender::open(IpVersion version, const RawSenderOptions& options) {
  const bool v4 = version == IpVersion::v4;
  const int family = v4 ? AF_INET : AF_INET6;
  const char* fam = v4 ? "IPv4" : "IPv6";
  const int fd = ::socket(family, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
  if (fd < 0) {
    const int err = errno;
    if (err == EPERM || err == EACCES) {
      return make_error(Errc::permission, kSubsystem,
                        std::string("open ") + fam + " raw socket: " + errno_text(err) +
                            " (raw socket needs CAP_NET_RAW: run as root or setcap cap_net_raw+ep)");
    }
    return make_error(Errc::environment, kSubsystem,
                      std::string("open ") + fam + " raw socket: " + errno_text(err));
  }
  RawSender sender(fd, version, 0, options.retry);

  if (!v4) {
    // IPPROTO_RAW implies header-included on Linux for v6 as it does for v4; verify rather than
    // trust it, because sending a header-included buffer through a socket that prepends its own
    // header would put garbage on the wire.
    int hdrincl = 0;
    socklen_t len = sizeof hdrincl;
    if (::getsockopt(fd, IPPROTO_IPV6, IPV6_HDRINCL, &hdrincl, &len) != 0 || hdrincl != 1) {
      return make_error(Errc::environment, kSubsystem,
                        "open IPv6 raw socket: kernel does not report IPV6_HDRINCL for IPPROTO_RAW");
    }
  }

  // Without RECVERR the kernel turns ENOBUFS (queue full) into success: silent loss.
  const int one = 1;
  const int recverr_level = v4 ? IPPROTO_IP : IPPROTO_IPV6;
  const int recverr_opt = v4 ? IP_RECVERR : IPV6_RECVERR;
  if (::setsockopt(fd, recverr_level, recverr_opt, &one, sizeof one) != 0) {
    return make_error(Errc::environment, kSubsystem,
                      std::string("enable RECVERR on ") + fam + " raw socket: " + errno_text(errno));
  }

  if (!options.bind_device.empty()) {
    const std::string& dev = options.bind_device;
    if (::setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, dev.c_str(), static_cast<socklen_t>(dev.size())) != 0) {
      const int err = errno;
      return make_error(err == EPERM ? Errc::permission : Errc::environment, kSubsystem,
                        std::string("bind ") + fam + " raw socket to " + dev + ": " + errno_text(err));
    }
  }

  // A big send buffer absorbs catch-up bursts. SO_SNDBUFFORCE ignores wmem_max but needs
  // CAP_NET_ADMIN; fall back to SO_SNDBUF (capped at wmem_max) without it.
  const int want = options.sndbuf_bytes;
  if (want > 0 && ::setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &want, sizeof want) != 0) {
    (void)::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &want, sizeof want);
  }
  int got = 0;
  socklen_t got_len = sizeof got;
  if (::getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &got, &got_len) == 0) sender.sndbuf_ = got;
  return sender;
}

RawSender::RawSender(RawSender&& other) noexcept
    : fd_(other.fd_), version_(other.version_), sndbuf_(other.sndbuf_), retry_(other.retry_),
      counters_(other.counters_) {
  other.fd_ = -1;
}

RawSender& RawSender::operator=(RawSender&& other) noexcept {
  if (this != &other) {
    close_fd();
    fd_ = other.fd_;
    version_ = other.version_;
    sndbuf_ = other.sndbuf_;
    retry_ = other.retry_;
    counters_ = other.counters_;
    other.fd_ = -1;
  }
  return *this;
}

RawSender::~RawSender() { close_fd(); }

void RawSender::close_fd() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

Result<Nanos> RawSender::send(std::span<const std::uint8_t> ip_packet, const IpAddr& dst) {
  if (dst.version != version_) {
    ++counters_.failed;
    return make_error(Errc::usage, kSubsystem,
                      "send to " + dst.to_string() + ": address family does not match the socket");
  }
  const SockAddr sa = to_sockaddr(dst);
  for (int attempt = 0;; ++attempt) {
    ++counters_.syscalls;
    const ssize_t n = ::sendto(fd_, ip_packet.data(), ip_packet.size(), 0,
                               reinterpret_cast<const sockaddr*>(&sa.storage), sa.len);
    const Nanos now = realtime_ns();
    if (n >= 0) {
      ++counters_.sent;
      return now;
    }
    const int err = errno;
    if (classify_send_errno(err) == SendErrorClass::transient && attempt < retry_.max_retries) {
      ++counters_.retries;
      if (err != EINTR) pause_ns(retry_.backoff_ns);
      continue;
    }
    ++counters_.failed;
    return send_error(err, dst);
  }
}

BatchResult RawSender::send_batch(std::span<const OutPacket> packets, std::span<PacketStatus> status,
                                  bool stop_at_error) {
  std::array<mmsghdr, kMaxBatch> msgs{};
  std::array<iovec, kMaxBatch> iovs{};
  std::array<SockAddr, kMaxBatch> addrs{};
  std::size_t accepted = 0;
  std::size_t pos = 0;
  int retries_here = 0;
  while (pos < packets.size() && pos < status.size()) {
    const std::size_t n = std::min({kMaxBatch, packets.size() - pos, status.size() - pos});
    // A family mismatch is the caller's bug for that one packet; mark it and keep going.
    std::size_t m = 0;
    for (; m < n; ++m) {
      const OutPacket& p = packets[pos + m];
      if (p.dst.version != version_) break;
      addrs[m] = to_sockaddr(p.dst);
      iovs[m].iov_base = const_cast<std::uint8_t*>(p.bytes.data());
      iovs[m].iov_len = p.bytes.size();
      msgs[m] = mmsghdr{};
      msgs[m].msg_hdr.msg_name = &addrs[m].storage;
      msgs[m].msg_hdr.msg_namelen = addrs[m].len;
      msgs[m].msg_hdr.msg_iov = &iovs[m];
      msgs[m].msg_hdr.msg_iovlen = 1;
    }
    if (m == 0) {
      status[pos] = PacketStatus{0, EAFNOSUPPORT};
      ++counters_.failed;
      ++pos;
      if (stop_at_error) break;
      continue;
    }
    ++counters_.syscalls;
    const int r = ::sendmmsg(fd_, msgs.data(), static_cast<unsigned>(m), 0);
    const Nanos now = realtime_ns();
    if (r > 0) {
      for (int k = 0; k < r; ++k) status[pos + static_cast<std::size_t>(k)] = PacketStatus{now, 0};
      accepted += static_cast<std::size_t>(r);
      counters_.sent += static_cast<std::uint64_t>(r);
      pos += static_cast<std::size_t>(r);
      retries_here = 0;
      continue;
    }
    // r <= 0: packet `pos` itself failed (sendmmsg reports an error only for its first message).
    const int err = r < 0 ? errno : EAGAIN;
    if (classify_send_errno(err) == SendErrorClass::transient && retries_here < retry_.max_retries) {
      ++retries_here;
      ++counters_.retries;
      if (err != EINTR) pause_ns(retry_.backoff_ns);
      continue;
    }
    status[pos] = PacketStatus{0, err};
    ++counters_.failed;
    ++pos;
    retries_here = 0;
    if (stop_at_error && classify_send_errno(err) != SendErrorClass::transient) break;
  }
  return BatchResult{accepted, pos};
}

}  // namespace tandem::netio
