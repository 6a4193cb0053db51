#include "tests/integration/common/netns_socket.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <thread>

namespace tandem::testing {
namespace {

bool is_v6(const std::string& ip) { return ip.find(':') != std::string::npos; }

// Binds fd to `source` (port 0) unless it is empty; 0 or errno.
int bind_source(int fd, const std::string& source) {
  if (source.empty()) return 0;
  socklen_t len = 0;
  auto ss = make_addr(source, 0, len);
  return ::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) == 0 ? 0 : errno;
}

}  // namespace

int socket_in(const std::string& netns, int domain, int type, int protocol) {
  int fd = -1;
  int err = 0;
  std::thread t([&] {
    const int ns = ::open(("/run/netns/" + netns).c_str(), O_RDONLY | O_CLOEXEC);
    if (ns < 0) {
      err = errno;
      return;
    }
    if (::setns(ns, CLONE_NEWNET) == 0) fd = ::socket(domain, type | SOCK_CLOEXEC, protocol);
    if (fd < 0) err = errno;
    ::close(ns);
  });
  t.join();
  if (fd < 0) errno = err;
  return fd;
}

sockaddr_storage make_addr(const std::string& ip, std::uint16_t port, socklen_t& len) {
  sockaddr_storage ss{};
  if (!is_v6(ip)) {
    auto* sa = reinterpret_cast<sockaddr_in*>(&ss);
    sa->sin_family = AF_INET;
    sa->sin_port = htons(port);
    ::inet_pton(AF_INET, ip.c_str(), &sa->sin_addr);
    len = sizeof(sockaddr_in);
  } else {
    auto* sa = reinterpret_cast<sockaddr_in6*>(&ss);
    sa->sin6_family = AF_INET6;
    sa->sin6_port = htons(port);
    ::inet_pton(AF_INET6, ip.c_str(), &sa->sin6_addr);
    len = sizeof(sockaddr_in6);
  }
  return ss;
}

int tcp_connect(const std::string& netns, const std::string& ip, std::uint16_t port, std::chrono::milliseconds wait,
                const std::string& source) {
  const int fd = socket_in(netns, is_v6(ip) ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (fd < 0) return errno;
  int result = bind_source(fd, source);
  if (result != 0) {
    ::close(fd);
    return result;
  }
  socklen_t len = 0;
  auto ss = make_addr(ip, port, len);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    result = errno;
    if (errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      if (::poll(&p, 1, static_cast<int>(wait.count())) == 0) {
        result = ETIMEDOUT;
      } else {
        socklen_t el = sizeof result;
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &result, &el);
      }
    }
  }
  ::close(fd);
  return result;
}

int udp_echo(const std::string& netns, const std::string& ip, std::uint16_t port, const std::string& payload,
             std::chrono::milliseconds wait, const std::string& source) {
  const int fd = socket_in(netns, is_v6(ip) ? AF_INET6 : AF_INET, SOCK_DGRAM, 0);
  if (fd < 0) return errno;
  int result = bind_source(fd, source);
  socklen_t len = 0;
  auto ss = make_addr(ip, port, len);
  if (result == 0 && ::sendto(fd, payload.data(), payload.size(), 0, reinterpret_cast<sockaddr*>(&ss), len) !=
                         static_cast<ssize_t>(payload.size())) {
    result = errno;
  }
  if (result == 0) {
    pollfd p{fd, POLLIN, 0};
    result = ETIMEDOUT;
    if (::poll(&p, 1, static_cast<int>(wait.count())) == 1) {
      char buf[2048];
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n < 0) result = errno;  // e.g. ECONNREFUSED from an ICMP port unreachable
      if (n == static_cast<ssize_t>(payload.size()) && std::string(buf, static_cast<std::size_t>(n)) == payload) result = 0;
    }
  }
  ::close(fd);
  return result;
}

}  // namespace tandem::testing
