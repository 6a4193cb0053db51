#include "common/transport/agent_server.hpp"

#include <cerrno>
#include <cstdlib>

#include <atomic>
#include <mutex>
#include <set>
#include <thread>

#include <zmq.hpp>

#include "common/base/log.hpp"

namespace tandem::transport {
namespace {

constexpr const char* kZapEndpoint = "inproc://zeromq.zap.01";
// ZMQ_ZAP_ENFORCE_DOMAIN is a draft option in zmq.h (only under ZMQ_BUILD_DRAFT_API), but libzmq
// 4.3.x handles it unconditionally; without it a missing ZAP handler admits every client (T2).
constexpr int kZapEnforceDomain = 93;
constexpr auto kZapPoll = std::chrono::milliseconds(100);

std::string z85_of(const zmq::message_t& key) {
  if (key.size() != 32) return {};
  char text[kZ85KeyLen + 1] = {};
  if (!zmq_z85_encode(text, static_cast<const std::uint8_t*>(key.data()), 32)) return {};
  return text;
}

std::string msg_property(const zmq::message_t& m, const char* name) {
  // zmq_msg_gets() returns NULL for an absent property; cppzmq would throw.
  const char* v = zmq_msg_gets(m.handle(), name);
  return v ? std::string(v) : std::string();
}

}  // namespace

struct AgentServer::Impl {
  zmq::context_t ctx{1};
  zmq::socket_t zap{ctx, zmq::socket_type::rep};
  zmq::socket_t router{ctx, zmq::socket_type::router};
  std::thread zap_thread;
  std::atomic<bool> stop{false};
  std::atomic<bool> zap_ok{true};
  std::mutex keys_mu;
  std::set<std::string> allowed;
  AuditSink audit;
  std::string endpoint;
  std::unique_ptr<ConnectionGuard> guard;
  std::shared_ptr<spdlog::logger> log = tandem::log::get("transport");

  ~Impl() {
    // Close the listening socket first so no handshake waits on a handler that is going away.
    router.close();
    guard.reset();
    stop = true;
    if (zap_thread.joinable()) zap_thread.join();
  }

  bool key_allowed(const std::string& key) {
    std::lock_guard lock(keys_mu);
    return allowed.count(key) != 0;
  }

  void record(const AuthDecision& d) {
    if (d.accepted)
      log->info("zap: accepted controller key {} from {}", d.client_key, d.peer_address);
    else
      log->warn("zap: refused {} from {}: {}", d.client_key.empty() ? std::string("(no key)") : d.client_key,
                d.peer_address, d.reason);
    if (audit) {
      try {
        audit(d);
      } catch (const std::exception& e) {
        log->error("zap: audit sink threw: {}", e.what());
      }
    }
  }

  // One ZAP request -> one reply (RFC 27). Frames: version, request id, domain, address, identity,
  // mechanism, credentials...
  void handle_one() {
    std::vector<zmq::message_t> frames;
    for (;;) {
      zmq::message_t f;
      if (!zap.recv(f, zmq::recv_flags::none)) return;
      const bool more = f.more();
      if (frames.size() < 16) frames.push_back(std::move(f));  // never more than RFC 27 defines (+slack)
      if (!more) break;
    }
    AuthDecision d;
    std::string status = "400";
    const std::string request_id = frames.size() > 1 ? frames[1].to_string() : std::string();
    if (frames.size() < 6 || frames[0].to_string_view() != "1.0") {
      d.reason = "malformed ZAP request";
      status = "500";
    } else {
      d.peer_address = frames[3].to_string();
      const std::string mechanism = frames[5].to_string();
      if (frames[2].to_string_view() != kZapDomain) {
        d.reason = "wrong ZAP domain '" + frames[2].to_string() + "'";
      } else if (mechanism != "CURVE" || frames.size() < 7) {
        d.reason = "mechanism " + mechanism + " refused (CURVE required)";
      } else {
        d.client_key = z85_of(frames[6]);
        if (d.client_key.empty()) {
          d.reason = "malformed CURVE credentials";
        } else if (key_allowed(d.client_key)) {
          d.accepted = true;
          d.reason = "allowed";
          status = "200";
        } else {
          d.reason = "key not in allow list";
        }
      }
    }
    record(d);
    const std::string text = d.accepted ? "OK" : d.reason;
    zap.send(zmq::buffer(std::string_view("1.0")), zmq::send_flags::sndmore);
    zap.send(zmq::buffer(request_id), zmq::send_flags::sndmore);
    zap.send(zmq::buffer(status), zmq::send_flags::sndmore);
    zap.send(zmq::buffer(text), zmq::send_flags::sndmore);
    // User-Id: the authenticated key, so every message carries who sent it.
    zap.send(zmq::buffer(d.accepted ? d.client_key : std::string()), zmq::send_flags::sndmore);
    zap.send(zmq::message_t(), zmq::send_flags::none);
  }

  void zap_loop() {
    try {
      while (!stop) {
        zmq::pollitem_t item{zap.handle(), 0, ZMQ_POLLIN, 0};
        zmq::poll(&item, 1, kZapPoll);
        if (item.revents & ZMQ_POLLIN) handle_one();
      }
    } catch (const std::exception& e) {
      // With domain enforcement on, a dead handler means every new connection is refused.
      zap_ok = false;
      log->critical("zap: handler stopped ({}); new connections are refused until the agent restarts", e.what());
    }
    zap.close();
  }
};

AgentServer::AgentServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
AgentServer::~AgentServer() = default;

Result<std::unique_ptr<AgentServer>> AgentServer::start(ServerOptions options) {
  if (auto st = curve_available(); !st) return st.error();
  if (!is_z85_key(options.keypair.public_z85) || !is_z85_key(options.keypair.secret_z85))
    return make_error(Errc::config, "transport", "agent key pair is not a pair of Z85 CurveZMQ keys");
  for (const auto& k : options.allowed_keys)
    if (!is_z85_key(k)) return make_error(Errc::config, "transport", "allow list entry '" + k + "' is not a Z85 key");

  auto impl = std::make_unique<Impl>();
  impl->allowed.insert(options.allowed_keys.begin(), options.allowed_keys.end());
  impl->audit = std::move(options.audit);
  try {
    // RFC 27: "The handler SHALL start before any server starts."
    impl->zap.set(zmq::sockopt::linger, 0);
    impl->zap.bind(kZapEndpoint);
    Impl* raw = impl.get();
    impl->zap_thread = std::thread([raw] { raw->zap_loop(); });

    auto& s = impl->router;
    const Liveness& l = options.liveness;
    s.set(zmq::sockopt::curve_server, true);
    s.set(zmq::sockopt::curve_secretkey, options.keypair.secret_z85);
    s.set(zmq::sockopt::zap_domain, kZapDomain);
    int enforce = 1;
    if (zmq_setsockopt(s.handle(), kZapEnforceDomain, &enforce, sizeof enforce) != 0)
      return make_error(Errc::internal, "transport",
                        std::string("cannot enable ZAP domain enforcement (refusing to run fail-open): ") +
                            zmq_strerror(zmq_errno()));
    int readback = 0;
    size_t len = sizeof readback;
    if (zmq_getsockopt(s.handle(), kZapEnforceDomain, &readback, &len) != 0 || readback != 1)
      return make_error(Errc::internal, "transport", "ZAP domain enforcement did not stick; refusing to run fail-open");
    s.set(zmq::sockopt::maxmsgsize, kMaxMessageSize);
    s.set(zmq::sockopt::router_mandatory, true);
    s.set(zmq::sockopt::linger, 0);
    s.set(zmq::sockopt::sndhwm, 1000);
    s.set(zmq::sockopt::rcvhwm, 1000);
    s.set(zmq::sockopt::heartbeat_ivl, static_cast<int>(l.heartbeat_ivl.count()));
    s.set(zmq::sockopt::heartbeat_timeout, static_cast<int>(l.heartbeat_timeout.count()));
    s.set(zmq::sockopt::heartbeat_ttl, static_cast<int>(l.heartbeat_ttl.count()));
    s.set(zmq::sockopt::handshake_ivl, static_cast<int>(l.handshake_ivl.count()));
    auto sink = std::move(options.guard_events);
    auto log = impl->log;
    auto guard = ConnectionGuard::start(impl->ctx.handle(), s.handle(), options.guard,
                                        [sink, log](const GuardEvent& e) {
                                          log->warn("guard: {} {}: {}",
                                                    e.kind == GuardEvent::Kind::handshake_failed ? "handshake failed from"
                                                                                                  : "dropped connection",
                                                    e.peer, e.reason);
                                          if (sink) sink(e);
                                        });
    if (!guard) return guard.error();
    impl->guard = std::move(guard).value();
    s.bind(options.bind_endpoint);
    impl->endpoint = s.get(zmq::sockopt::last_endpoint);
  } catch (const zmq::error_t& e) {
    return make_error(Errc::environment, "transport", "bind " + options.bind_endpoint + ": " + e.what());
  }
  impl->log->info("listening on {} (CURVE, ZAP enforced, {} allowed controller keys)", impl->endpoint,
                  impl->allowed.size());
  return std::unique_ptr<AgentServer>(new AgentServer(std::move(impl)));
}

const std::string& AgentServer::endpoint() const { return impl_->endpoint; }

bool AgentServer::zap_healthy() const { return impl_->zap_ok; }

void AgentServer::set_allowed_keys(std::vector<std::string> keys) {
  std::lock_guard lock(impl_->keys_mu);
  impl_->allowed = std::set<std::string>(keys.begin(), keys.end());
}

Result<std::optional<Incoming>> AgentServer::receive(std::chrono::milliseconds timeout) {
  try {
    zmq::pollitem_t item{impl_->router.handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, timeout);
    if (!(item.revents & ZMQ_POLLIN)) return std::optional<Incoming>{};
    Incoming in;
    zmq::message_t id;
    if (!impl_->router.recv(id, zmq::recv_flags::dontwait)) return std::optional<Incoming>{};
    in.routing_id = id.to_string();
    in.frames = 0;
    bool more = id.more();
    while (more) {
      zmq::message_t part;
      if (!impl_->router.recv(part, zmq::recv_flags::none)) break;
      more = part.more();
      if (++in.frames == 1) {
        // "__fd" is libzmq's private property behind ZMQ_SRCFD: the connection the message came in on.
        if (const char* fd = zmq_msg_gets(part.handle(), "__fd")) impl_->guard->delivered(std::atoi(fd));
        in.user_id = msg_property(part, "User-Id");
        in.peer_address = msg_property(part, "Peer-Address");
        const auto* p = static_cast<const std::uint8_t*>(part.data());
        in.bytes.assign(p, p + part.size());
      }
      // Further parts are drained and dropped: the protocol allows one (T6).
    }
    if (in.frames != 1)
      impl_->log->warn("message from {} had {} payload frames (protocol allows 1)", in.user_id, in.frames);
    return std::optional<Incoming>{std::move(in)};
  } catch (const zmq::error_t& e) {
    // A signal (SIGTERM to stop, SIGHUP to reload) interrupts the poll: no message, not a failure.
    if (e.num() == EINTR) return std::optional<Incoming>{};
    return make_error(Errc::environment, "transport", std::string("receive: ") + e.what());
  }
}

Status AgentServer::send(const std::string& routing_id, std::span<const std::uint8_t> bytes) {
  try {
    if (!impl_->router.send(zmq::buffer(routing_id), zmq::send_flags::sndmore | zmq::send_flags::dontwait))
      return make_error(Errc::peer, "transport", "send: controller is not reading (queue full); reply dropped");
    if (!impl_->router.send(zmq::const_buffer(bytes.data(), bytes.size()), zmq::send_flags::dontwait))
      return make_error(Errc::peer, "transport", "send: controller is not reading (queue full); reply dropped");
  } catch (const zmq::error_t& e) {
    if (e.num() == EHOSTUNREACH) return make_error(Errc::peer, "transport", "send: controller has gone away");
    return make_error(Errc::environment, "transport", std::string("send: ") + e.what());
  }
  return ok_status();
}

Status AgentServer::reply(const Incoming& to, std::uint32_t request_id, const proto::Message& message) {
  auto bytes = proto::encode(message, request_id);
  if (!bytes) return bytes.error();
  return send(to.routing_id, *bytes);
}

}  // namespace tandem::transport
