#include "common/transport/controller_client.hpp"

#include <cerrno>
#include <cmath>
#include <vector>

#include <zmq.hpp>

#include "common/base/clock.hpp"
#include "common/base/log.hpp"

namespace tandem::transport {

struct ControllerClient::Impl {
  zmq::context_t ctx{1};
  zmq::socket_t sock{ctx, zmq::socket_type::dealer};
  ClientOptions opt;
  std::uint32_t next_id = 1;
  std::shared_ptr<spdlog::logger> log = tandem::log::get("transport");

  std::string seconds(std::chrono::milliseconds t) const {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.3g", static_cast<double>(t.count()) / 1000.0);
    return buf;
  }
  Error no_reply(std::chrono::milliseconds t) const {
    return make_error(Errc::peer, "transport",
                      "agent " + opt.agent.endpoint + ": no reply within " + seconds(t) +
                          " s (wrong key or agent down?)");
  }
};

ControllerClient::ControllerClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ControllerClient::~ControllerClient() = default;

const AgentAddress& ControllerClient::agent() const { return impl_->opt.agent; }

Result<std::unique_ptr<ControllerClient>> ControllerClient::connect(ClientOptions options) {
  if (auto st = curve_available(); !st) return st.error();
  if (!is_z85_key(options.keypair.public_z85) || !is_z85_key(options.keypair.secret_z85))
    return make_error(Errc::config, "transport", "controller key pair is not a pair of Z85 CurveZMQ keys");
  if (!is_z85_key(options.agent.server_key))
    return make_error(Errc::config, "transport", "agent public key is not a Z85 CurveZMQ key");
  auto impl = std::make_unique<Impl>();
  impl->opt = std::move(options);
  try {
    auto& s = impl->sock;
    const Liveness& l = impl->opt.liveness;
    s.set(zmq::sockopt::curve_serverkey, impl->opt.agent.server_key);
    s.set(zmq::sockopt::curve_publickey, impl->opt.keypair.public_z85);
    s.set(zmq::sockopt::curve_secretkey, impl->opt.keypair.secret_z85);
    s.set(zmq::sockopt::maxmsgsize, kMaxMessageSize);
    s.set(zmq::sockopt::immediate, true);
    s.set(zmq::sockopt::linger, 0);
    s.set(zmq::sockopt::heartbeat_ivl, static_cast<int>(l.heartbeat_ivl.count()));
    s.set(zmq::sockopt::heartbeat_timeout, static_cast<int>(l.heartbeat_timeout.count()));
    s.set(zmq::sockopt::heartbeat_ttl, static_cast<int>(l.heartbeat_ttl.count()));
    s.set(zmq::sockopt::handshake_ivl, static_cast<int>(l.handshake_ivl.count()));
    s.connect(impl->opt.agent.endpoint);
  } catch (const zmq::error_t& e) {
    return make_error(Errc::usage, "transport", "connect " + impl->opt.agent.endpoint + ": " + e.what());
  }
  return std::unique_ptr<ControllerClient>(new ControllerClient(std::move(impl)));
}

Status ControllerClient::post(const proto::Message& message) {
  auto bytes = proto::encode(message, impl_->next_id++);
  if (!bytes) return bytes.error();
  try {
    impl_->sock.set(zmq::sockopt::sndtimeo, static_cast<int>(impl_->opt.timeout.count()));
    if (!impl_->sock.send(zmq::buffer(*bytes), zmq::send_flags::none)) return impl_->no_reply(impl_->opt.timeout);
  } catch (const zmq::error_t& e) {
    return make_error(Errc::environment, "transport", std::string("send: ") + e.what());
  }
  return ok_status();
}

Result<proto::Envelope> ControllerClient::request(const proto::Message& message,
                                                  std::optional<std::chrono::milliseconds> timeout) {
  using Clock = std::chrono::steady_clock;
  const auto budget = timeout.value_or(impl_->opt.timeout);
  const auto deadline = Clock::now() + budget;
  const std::uint32_t id = impl_->next_id++;
  auto bytes = proto::encode(message, id);
  if (!bytes) return bytes.error();
  auto left = [&] {
    return std::max(std::chrono::milliseconds(0),
                    std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()));
  };
  try {
    // With ZMQ_IMMEDIATE a send blocks until a connection has completed its CURVE handshake; a
    // refused key or an absent agent therefore ends here, at the deadline.
    impl_->sock.set(zmq::sockopt::sndtimeo, static_cast<int>(left().count()));
    if (!impl_->sock.send(zmq::buffer(*bytes), zmq::send_flags::none)) return impl_->no_reply(budget);
    const auto* abandon = impl_->opt.abandon;
    for (;;) {
      zmq::pollitem_t item{impl_->sock.handle(), 0, ZMQ_POLLIN, 0};
      auto wait = abandon ? std::min(left(), std::chrono::milliseconds(100)) : left();
      try {
        zmq::poll(&item, 1, wait);
      } catch (const zmq::error_t& e) {
        // A signal (Ctrl-C ending a trace cleanly) interrupts the wait, not the request.
        if (e.num() == EINTR) continue;
        throw;
      }
      if (!(item.revents & ZMQ_POLLIN)) {
        if (abandon && abandon->load(std::memory_order_acquire))
          return make_error(Errc::peer, "transport", "agent " + impl_->opt.agent.endpoint + ": request abandoned");
        if (left().count() > 0) continue;
        return impl_->no_reply(budget);
      }
      zmq::message_t reply;
      if (!impl_->sock.recv(reply, zmq::recv_flags::dontwait)) continue;
      bool extra = reply.more();
      while (extra) {  // the protocol has one frame per message; drop anything else
        zmq::message_t part;
        if (!impl_->sock.recv(part, zmq::recv_flags::none)) break;
        extra = part.more();
      }
      auto decoded = proto::decode({static_cast<const std::uint8_t*>(reply.data()), reply.size()});
      if (!decoded) {
        Error e = decoded.error().to_error();
        e.message = "agent " + impl_->opt.agent.endpoint + ": bad reply: " + e.message;
        return e;
      }
      if (decoded.value().header.request_id != id) {
        impl_->log->debug("dropping late reply to request {} (waiting for {})", decoded.value().header.request_id, id);
        continue;
      }
      return std::move(decoded.value());
    }
  } catch (const zmq::error_t& e) {
    return make_error(Errc::environment, "transport", "agent " + impl_->opt.agent.endpoint + ": " + e.what());
  }
}

Error ControllerClient::unexpected_reply(const proto::Message& got, proto::MsgType wanted) const {
  if (auto* err = std::get_if<proto::ErrorReply>(&got))
    return make_error(Errc::peer, "transport",
                      "agent " + impl_->opt.agent.endpoint + ": refused: error " +
                          std::to_string(static_cast<int>(err->code)) + ": " + err->text);
  return make_error(Errc::protocol, "transport",
                    "agent " + impl_->opt.agent.endpoint + ": answered " +
                        std::string(proto::message_name(proto::type_of(got))) + " where " +
                        std::string(proto::message_name(wanted)) + " was expected");
}

Result<proto::ClockEstimate> ControllerClient::sync_clock(int rounds) {
  std::vector<proto::ClockSample> samples;
  for (int i = 0; i < rounds; ++i) {
    const Nanos t1 = realtime_ns();
    auto reply = request_as<proto::ClockReply>(proto::ClockProbe{t1});
    const Nanos t4 = realtime_ns();
    if (!reply) return reply.error();
    if (reply->t1 != t1) continue;  // not an answer to this probe
    samples.push_back({t1, reply->t2, reply->t3, t4});
  }
  return proto::estimate_clock(samples);
}

}  // namespace tandem::transport
