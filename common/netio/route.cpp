#include "common/netio/route.hpp"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>

namespace tandem::netio {

namespace {

constexpr const char* kSubsystem = "route";

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

// Reads the address out of a sockaddr of either family; nullopt for other families.
std::optional<packet::IpAddr> from_sockaddr(const sockaddr* sa) {
  if (sa == nullptr) return std::nullopt;
  if (sa->sa_family == AF_INET) {
    sockaddr_in sin{};
    std::memcpy(&sin, sa, sizeof sin);
    return packet::IpAddr::v4_bytes(reinterpret_cast<const std::uint8_t*>(&sin.sin_addr));
  }
  if (sa->sa_family == AF_INET6) {
    sockaddr_in6 sin6{};
    std::memcpy(&sin6, sa, sizeof sin6);
    return packet::IpAddr::v6_bytes(reinterpret_cast<const std::uint8_t*>(&sin6.sin6_addr));
  }
  return std::nullopt;
}

}  // namespace

Result<packet::IpAddr> source_address_for(const packet::IpAddr& dst, const std::string& device) {
  const bool v4 = dst.is_v4();
  Fd fd(::socket(v4 ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) {
    return make_error(Errc::environment, kSubsystem,
                      "source address for " + dst.to_string() + ": socket: " + std::strerror(errno));
  }
  if (!device.empty() &&
      ::setsockopt(fd.get(), SOL_SOCKET, SO_BINDTODEVICE, device.c_str(), static_cast<socklen_t>(device.size())) != 0) {
    const int err = errno;
    return make_error(err == EPERM ? Errc::permission : Errc::environment, kSubsystem,
                      "source address for " + dst.to_string() + " via " + device + ": " + std::strerror(err));
  }
  sockaddr_storage ss{};
  socklen_t len = 0;
  if (v4) {
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_port = htons(9);  // any non-zero port: connect() on UDP only routes, sends nothing
    std::memcpy(&sin.sin_addr, dst.bytes.data(), 4);
    std::memcpy(&ss, &sin, sizeof sin);
    len = sizeof sin;
  } else {
    sockaddr_in6 sin6{};
    sin6.sin6_family = AF_INET6;
    sin6.sin6_port = htons(9);
    std::memcpy(&sin6.sin6_addr, dst.bytes.data(), 16);
    std::memcpy(&ss, &sin6, sizeof sin6);
    len = sizeof sin6;
  }
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&ss), len) != 0) {
    const int err = errno;
    const char* what = (err == ENETUNREACH || err == EHOSTUNREACH) ? "no route to " : "route lookup for ";
    const std::string via = device.empty() ? "" : " via " + device;
    return make_error(Errc::environment, kSubsystem, what + dst.to_string() + via + ": " + std::strerror(err));
  }
  sockaddr_storage local{};
  socklen_t local_len = sizeof local;
  if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&local), &local_len) != 0) {
    return make_error(Errc::environment, kSubsystem,
                      "source address for " + dst.to_string() + ": getsockname: " + std::strerror(errno));
  }
  auto addr = from_sockaddr(reinterpret_cast<const sockaddr*>(&local));
  if (!addr) {
    return make_error(Errc::internal, kSubsystem, "source address for " + dst.to_string() + ": unexpected family");
  }
  return *addr;
}

Result<std::string> interface_for(const packet::IpAddr& dst) {
  auto src = source_address_for(dst);
  if (!src) return src.error();
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) {
    return make_error(Errc::environment, kSubsystem,
                      "interface for " + dst.to_string() + ": getifaddrs: " + std::strerror(errno));
  }
  std::optional<std::string> name;
  for (const ifaddrs* it = list; it != nullptr && !name; it = it->ifa_next) {
    const auto a = from_sockaddr(it->ifa_addr);
    if (a && *a == *src) name = it->ifa_name;
  }
  ::freeifaddrs(list);
  if (!name) {
    return make_error(Errc::environment, kSubsystem,
                      "interface for " + dst.to_string() + ": no interface holds source address " +
                          src->to_string());
  }
  return *name;
}

Result<std::vector<packet::IpAddr>> local_addresses() {
  auto all = interface_addresses();
  if (!all) return all.error();
  std::vector<packet::IpAddr> out;
  out.reserve(all->size());
  for (const auto& ia : *all) out.push_back(ia.addr);
  return out;
}

Result<std::vector<InterfaceAddress>> interface_addresses() {
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0)
    return make_error(Errc::environment, kSubsystem, std::string("local addresses: getifaddrs: ") + std::strerror(errno));
  std::vector<InterfaceAddress> out;
  for (const ifaddrs* it = list; it != nullptr; it = it->ifa_next) {
    if (auto a = from_sockaddr(it->ifa_addr)) out.push_back(InterfaceAddress{it->ifa_name, *a});
  }
  ::freeifaddrs(list);
  return out;
}

bool interface_exists(const std::string& name) {
  return !name.empty() && name.size() < IF_NAMESIZE && ::if_nametoindex(name.c_str()) != 0;
}

}  // namespace tandem::netio
