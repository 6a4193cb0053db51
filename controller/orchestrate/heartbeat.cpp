#include "controller/orchestrate/heartbeat.hpp"

#include <cstdio>

#include "common/transport/controller_client.hpp"

namespace tandem::orchestrate {

struct Heartbeat::Link {
  std::unique_ptr<transport::ControllerClient> client;
};

AgentProgress parse_progress(const proto::StatusReply& status) {
  AgentProgress p;
  p.status = status;
  const std::string& d = status.detail;
  unsigned long long a = 0, b = 0;
  if (auto at = d.find("sent "); at != std::string::npos && std::sscanf(d.c_str() + at, "sent %llu/%llu", &a, &b) == 2) {
    p.sent = a;
    p.total = b;
  }
  if (auto at = d.find("captured "); at != std::string::npos && std::sscanf(d.c_str() + at, "captured %llu", &a) == 1) {
    p.captured = a;
  }
  return p;
}

Result<std::unique_ptr<Heartbeat>> Heartbeat::start(HeartbeatOptions options) {
  std::unique_ptr<Heartbeat> hb(new Heartbeat(std::move(options)));
  const HeartbeatOptions& o = hb->opt_;
  auto named = [&](const Error& e) {
    return make_error(e.code, "trace", o.role + " agent: heartbeat: " + e.message);
  };
  transport::ClientOptions co;
  co.agent = o.agent;
  co.keypair = o.controller_key;
  co.timeout = o.timeout;
  auto c = transport::ControllerClient::connect(std::move(co));
  if (!c) return named(c.error());
  proto::Hello h;
  h.controller_name = o.controller_name;
  h.capabilities = {"heartbeat"};
  // The first exchange includes the CURVE handshake: allow it the usual request time.
  auto ok = (*c)->request_as<proto::HelloOk>(h, std::max(o.timeout, std::chrono::milliseconds(5000)));
  if (!ok) return named(ok.error());
  hb->link_ = std::make_unique<Link>(Link{std::move(c).value()});
  hb->thread_ = std::thread([p = hb.get()] { p->run(); });
  return hb;
}

Heartbeat::Heartbeat(HeartbeatOptions options) : opt_(std::move(options)) {}
Heartbeat::~Heartbeat() { stop(); }

void Heartbeat::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::optional<Error> Heartbeat::failure() const {
  std::lock_guard lock(mu_);
  return failure_;
}

std::optional<AgentProgress> Heartbeat::progress() const {
  std::lock_guard lock(mu_);
  return progress_;
}

void Heartbeat::run() {
  auto next = std::chrono::steady_clock::now();
  for (;;) {
    {
      std::unique_lock lock(mu_);
      if (cv_.wait_until(lock, next, [&] { return stopping_; })) return;
    }
    next += opt_.period;
    auto r = link_->client->request_as<proto::StatusReply>(proto::StatusRequest{}, opt_.timeout);
    std::lock_guard lock(mu_);
    if (stopping_) return;  // the run is being ended: what the agent says now is no loss
    if (!r) {
      failure_ = make_error(r.error().code, "trace", opt_.role + " agent lost: heartbeat: " + r.error().message);
      return;
    }
    if (r->state == proto::AgentState::idle) {
      failure_ = make_error(Errc::peer, "trace",
                            opt_.role + " agent " + opt_.agent.endpoint +
                                ": the run ended on the agent (lease expired, key removed or agent restarted): " +
                                r->detail);
      return;
    }
    AgentProgress p = parse_progress(*r);
    p.at_mono = monotonic_ns();
    progress_ = std::move(p);
    // A heartbeat late by more than a period (a slow reply) is sent at once, not skipped.
    if (next < std::chrono::steady_clock::now()) next = std::chrono::steady_clock::now();
  }
}

}  // namespace tandem::orchestrate
