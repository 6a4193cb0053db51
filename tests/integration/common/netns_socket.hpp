// Kernel sockets inside a lab namespace, for integration tests whose oracle is the real kernel
// (a connect() that succeeds, an errno, a datagram echoed back). Link `tandem_lab_fixture`.
#pragma once

#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <string>

namespace tandem::testing {

// A socket created inside /run/netns/<netns> (setns() in a short-lived thread: it affects only the
// calling thread, and a socket stays in the namespace it was created in). -1 on failure (errno set).
int socket_in(const std::string& netns, int domain, int type, int protocol);

// sockaddr for an IPv4 or IPv6 literal and a port; `len` receives its size.
sockaddr_storage make_addr(const std::string& ip, std::uint16_t port, socklen_t& len);

// TCP connect from the namespace, bound to `source` first unless it is empty: 0 on success, else
// the errno (ETIMEDOUT when nothing answers within `wait`).
int tcp_connect(const std::string& netns, const std::string& ip, std::uint16_t port,
                std::chrono::milliseconds wait = std::chrono::seconds(3), const std::string& source = {});

// Sends one UDP datagram from the namespace (bound to `source` unless empty) and waits up to `wait`
// for a reply. 0 when a reply with the same payload came back, ETIMEDOUT when none did, else errno.
int udp_echo(const std::string& netns, const std::string& ip, std::uint16_t port, const std::string& payload,
             std::chrono::milliseconds wait = std::chrono::seconds(2), const std::string& source = {});

}  // namespace tandem::testing
