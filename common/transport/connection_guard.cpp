#include "common/transport/connection_guard.hpp"

#include <arpa/inet.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <deque>
#include <map>
#include <optional>
#include <mutex>
#include <thread>

#include <zmq.h>

#include "common/base/log.hpp"

namespace tandem::transport {
namespace {

using Clock = std::chrono::steady_clock;

// libzmq's events are emitted for the endpoint's connections; the events we watch.
constexpr int kEvents = ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                        ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL;
constexpr std::size_t kMaxPendingFailures = 64;

std::string peer_of(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return {};
  char host[INET6_ADDRSTRLEN] = {};
  unsigned port = 0;
  if (ss.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
    ::inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
    port = ntohs(a->sin_port);
    return std::string(host) + ":" + std::to_string(port);
  }
  if (ss.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
    ::inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
    port = ntohs(a->sin6_port);
    return "[" + std::string(host) + "]:" + std::to_string(port);
  }
  return {};
}

// Bytes the kernel has received on a TCP socket; nullopt if `fd` is not one (any more).
std::optional<std::uint64_t> bytes_received(int fd) {
  tcp_info ti{};
  socklen_t len = sizeof ti;
  if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0) return std::nullopt;
  if (len < offsetof(tcp_info, tcpi_bytes_received) + sizeof ti.tcpi_bytes_received) return std::nullopt;
  return ti.tcpi_bytes_received;
}

std::string protocol_reason(int code) {
  if (code == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH) return "security mechanism mismatch (CURVE required)";
  if (code == ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC) return "CURVE handshake failed (wrong server key?)";
  if (code >= ZMQ_PROTOCOL_ERROR_ZMTP_UNSPECIFIED && code < ZMQ_PROTOCOL_ERROR_ZAP_UNSPECIFIED)
    return "ZMTP protocol error 0x" + [code] {
      char b[16];
      std::snprintf(b, sizeof b, "%x", static_cast<unsigned>(code));
      return std::string(b);
    }();
  return "handshake protocol error " + std::to_string(code);
}

struct Tracked {
  std::string peer;
  std::uint64_t baseline = 0;  // tcpi_bytes_received when a whole message was last delivered
  Clock::time_point since;
  bool delivered_any = false;
  bool dropped = false;
};

}  // namespace

struct ConnectionGuard::Impl {
  void* ctx = nullptr;
  void* router = nullptr;
  std::string monitor_endpoint;
  GuardLimits limits;
  GuardSink sink;
  std::thread thread;
  std::atomic<bool> stop{false};
  mutable std::mutex mu;
  std::map<int, Tracked> conns;
  std::deque<std::string> pending_failures;  // handshake failures not yet paired with a disconnect
  std::shared_ptr<spdlog::logger> log = tandem::log::get("transport");

  void report(const GuardEvent& e) {
    if (!sink) return;
    try {
      sink(e);
    } catch (const std::exception& ex) {
      log->error("guard: sink threw: {}", ex.what());
    }
  }

  void on_event(std::uint16_t event, std::int32_t value) {
    std::optional<GuardEvent> out;
    {
      std::lock_guard lock(mu);
      if (event == ZMQ_EVENT_ACCEPTED) {
        Tracked t;
        t.peer = peer_of(value);
        t.baseline = bytes_received(value).value_or(0);
        t.since = Clock::now();
        conns[value] = std::move(t);
      } else if (event == ZMQ_EVENT_DISCONNECTED) {
        auto it = conns.find(value);
        if (it != conns.end()) {
          if (!it->second.delivered_any && !it->second.dropped && !pending_failures.empty()) {
            out = GuardEvent{GuardEvent::Kind::handshake_failed, it->second.peer.empty() ? "unknown" : it->second.peer,
                             pending_failures.front(), 0};
            pending_failures.pop_front();
          }
          conns.erase(it);
        }
      } else if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL || event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) {
        std::string why = event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL
                              ? protocol_reason(value)
                              : std::string("handshake failed: ") + std::strerror(value);
        if (pending_failures.size() >= kMaxPendingFailures) pending_failures.pop_front();
        pending_failures.push_back(std::move(why));
      }
    }
    if (out) report(*out);
  }

  // Shuts down connections holding too many undelivered bytes. Called every period.
  void enforce() {
    std::vector<GuardEvent> drops;
    {
      std::lock_guard lock(mu);
      const auto now = Clock::now();
      std::vector<std::pair<std::uint64_t, int>> held;  // (bytes, fd)
      std::uint64_t total = 0;
      for (auto& [fd, t] : conns) {
        if (t.dropped) continue;
        auto got = bytes_received(fd);
        if (!got) continue;
        const auto secs = std::chrono::duration_cast<std::chrono::seconds>(now - t.since).count();
        const std::uint64_t allowance = static_cast<std::uint64_t>(secs) * limits.overhead_bytes_per_s;
        const std::uint64_t h = *got > t.baseline + allowance ? *got - t.baseline - allowance : 0;
        held.emplace_back(h, fd);
        total += h;
      }
      std::sort(held.begin(), held.end(), std::greater<>());
      for (const auto& [h, fd] : held) {
        const bool over_one = h > limits.per_connection_bytes;
        const bool over_all = total > limits.total_bytes && h > 0;
        if (!over_one && !over_all) continue;
        Tracked& t = conns[fd];
        // The fd may have been closed by libzmq and reused since the last event: only a socket
        // with the same peer is ours.
        if (peer_of(fd) != t.peer) continue;
        ::shutdown(fd, SHUT_RDWR);
        t.dropped = true;
        total -= h;
        drops.push_back(GuardEvent{GuardEvent::Kind::connection_dropped, t.peer.empty() ? "unknown" : t.peer,
                                   over_one ? "connection held " + std::to_string(h) + " undelivered bytes (bound " +
                                                  std::to_string(limits.per_connection_bytes) + ")"
                                            : "all connections held over " + std::to_string(limits.total_bytes) +
                                                  " undelivered bytes; the largest was dropped",
                                   h});
      }
    }
    for (const auto& d : drops) report(d);
  }

  void loop() {
    void* mon = zmq_socket(ctx, ZMQ_PAIR);
    if (mon == nullptr || zmq_connect(mon, monitor_endpoint.c_str()) != 0) {
      log->critical("guard: cannot connect the socket monitor: {}", zmq_strerror(zmq_errno()));
      if (mon) zmq_close(mon);
      return;
    }
    const int linger = 0;
    zmq_setsockopt(mon, ZMQ_LINGER, &linger, sizeof linger);
    while (!stop) {
      zmq_pollitem_t item{mon, 0, ZMQ_POLLIN, 0};
      const int rc = zmq_poll(&item, 1, static_cast<long>(limits.period.count()));
      if (rc < 0 && zmq_errno() != EINTR) break;
      while (item.revents & ZMQ_POLLIN) {
        zmq_msg_t head;
        zmq_msg_init(&head);
        if (zmq_msg_recv(&head, mon, ZMQ_DONTWAIT) < 0) {
          zmq_msg_close(&head);
          break;
        }
        std::uint16_t ev = 0;
        std::int32_t value = 0;
        if (zmq_msg_size(&head) >= 6) {
          const auto* p = static_cast<const std::uint8_t*>(zmq_msg_data(&head));
          std::memcpy(&ev, p, 2);
          std::memcpy(&value, p + 2, 4);
        }
        bool more = zmq_msg_more(&head) != 0;
        zmq_msg_close(&head);
        while (more) {  // the endpoint frame
          zmq_msg_t part;
          zmq_msg_init(&part);
          if (zmq_msg_recv(&part, mon, 0) < 0) more = false;
          else more = zmq_msg_more(&part) != 0;
          zmq_msg_close(&part);
        }
        on_event(ev, value);
      }
      enforce();
    }
    zmq_close(mon);
  }
};

ConnectionGuard::ConnectionGuard(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

ConnectionGuard::~ConnectionGuard() {
  impl_->stop = true;
  if (impl_->thread.joinable()) impl_->thread.join();
}

Result<std::unique_ptr<ConnectionGuard>> ConnectionGuard::start(void* context, void* router, GuardLimits limits,
                                                                 GuardSink sink) {
  auto impl = std::make_unique<Impl>();
  impl->ctx = context;
  impl->router = router;
  impl->limits = limits;
  impl->sink = std::move(sink);
  impl->monitor_endpoint = "inproc://tandem-guard-" + std::to_string(reinterpret_cast<std::uintptr_t>(router));
  if (zmq_socket_monitor(router, impl->monitor_endpoint.c_str(), kEvents) != 0)
    return make_error(Errc::internal, "transport",
                      std::string("cannot attach the socket monitor: ") + zmq_strerror(zmq_errno()));
  Impl* raw = impl.get();
  impl->thread = std::thread([raw] { raw->loop(); });
  return std::unique_ptr<ConnectionGuard>(new ConnectionGuard(std::move(impl)));
}

void ConnectionGuard::delivered(int fd) {
  auto now = bytes_received(fd);
  std::lock_guard lock(impl_->mu);
  auto it = impl_->conns.find(fd);
  if (it == impl_->conns.end() || !now) return;
  it->second.baseline = *now;
  it->second.since = Clock::now();
  it->second.delivered_any = true;
}

std::size_t ConnectionGuard::connections() const {
  std::lock_guard lock(impl_->mu);
  return impl_->conns.size();
}

}  // namespace tandem::transport
