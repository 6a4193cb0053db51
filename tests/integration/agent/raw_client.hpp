// A ZeroMQ DEALER written against libzmq directly (not tandem's ControllerClient), for attacks the
// real client would never make: plaintext, a wrong server key, many frames in one message.
#pragma once

#include <zmq.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/transport/curve.hpp"

namespace tandem::agent::test {

class RawClient {
 public:
  struct Curve {
    transport::CurveKeypair client;
    std::string server_public_z85;
  };
  // `ctx` null: the client owns a context of its own.
  RawClient(const std::string& endpoint, std::optional<Curve> curve, void* ctx = nullptr)
      : own_ctx_(ctx == nullptr ? zmq_ctx_new() : nullptr), sock_(zmq_socket(ctx ? ctx : own_ctx_, ZMQ_DEALER)) {
    int linger = 0;
    zmq_setsockopt(sock_, ZMQ_LINGER, &linger, sizeof linger);
    if (curve) {
      zmq_setsockopt(sock_, ZMQ_CURVE_SERVERKEY, curve->server_public_z85.c_str(), 40);
      zmq_setsockopt(sock_, ZMQ_CURVE_PUBLICKEY, curve->client.public_z85.c_str(), 40);
      zmq_setsockopt(sock_, ZMQ_CURVE_SECRETKEY, curve->client.secret_z85.c_str(), 40);
    }
    zmq_connect(sock_, endpoint.c_str());
  }
  ~RawClient() {
    zmq_close(sock_);
    if (own_ctx_) zmq_ctx_term(own_ctx_);
  }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  // One message of these frames (all but the last with ZMQ_SNDMORE).
  void send_frames(const std::vector<std::vector<std::uint8_t>>& frames) {
    for (std::size_t i = 0; i < frames.size(); ++i)
      zmq_send(sock_, frames[i].data(), frames[i].size(), i + 1 < frames.size() ? ZMQ_SNDMORE : 0);
  }
  // `count` frames of `size` bytes, then `last`, as one message, without holding them all here
  // more than libzmq does.
  void send_many(std::size_t count, std::size_t size, const std::vector<std::uint8_t>& last) {
    std::vector<std::uint8_t> filler(size, 0x5a);
    for (std::size_t i = 0; i < count; ++i) zmq_send(sock_, filler.data(), filler.size(), ZMQ_SNDMORE);
    zmq_send(sock_, last.data(), last.size(), 0);
  }
  // The first frame of the next message, or nullopt after `timeout`.
  std::optional<std::vector<std::uint8_t>> receive(std::chrono::milliseconds timeout) {
    zmq_pollitem_t item{sock_, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&item, 1, static_cast<long>(timeout.count())) <= 0) return std::nullopt;
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, sock_, 0) < 0) {
      zmq_msg_close(&m);
      return std::nullopt;
    }
    const auto* p = static_cast<const std::uint8_t*>(zmq_msg_data(&m));
    std::vector<std::uint8_t> out(p, p + zmq_msg_size(&m));
    while (zmq_msg_more(&m)) {
      zmq_msg_close(&m);
      zmq_msg_init(&m);
      zmq_msg_recv(&m, sock_, 0);
    }
    zmq_msg_close(&m);
    return out;
  }

 private:
  void* own_ctx_;
  void* sock_;
};

}  // namespace tandem::agent::test
