#include "controller/orchestrate/trace_run.hpp"

#include <sodium.h>
#include <sys/stat.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <random>
#include <thread>

#include <fmt/format.h>

#include "common/base/clock.hpp"
#include "common/base/log.hpp"
#include "common/probe/plan.hpp"
#include "common/transport/controller_client.hpp"
#include "controller/orchestrate/heartbeat.hpp"

namespace tandem::orchestrate {
namespace {

using transport::ControllerClient;
using Ms = std::chrono::milliseconds;

Result<std::unique_ptr<ControllerClient>> connect(const TraceRequest& req, const transport::AgentAddress& agent,
                                                  const std::atomic<bool>* abandon = nullptr) {
  transport::ClientOptions o;
  o.agent = agent;
  o.keypair = req.controller_key;
  o.timeout = req.request_timeout;
  o.abandon = abandon;
  return ControllerClient::connect(std::move(o));
}

// One end of the run and what the controller holds about it.
struct End {
  std::string role;  // "client" / "server" for messages
  std::unique_ptr<ControllerClient> link;
  proto::HelloOk hello;
  proto::ClockEstimate clock;
  bool run_accepted = false;
  std::unique_ptr<Heartbeat> heartbeat;  // from RUN_SETUP accepted to RUN_END

  bool lost() const { return heartbeat && heartbeat->failure().has_value(); }
};

// Starts the end's heartbeat once it holds the run.
Status start_heartbeat(const TraceRequest& req, const transport::AgentAddress& agent, End& end) {
  HeartbeatOptions o;
  o.role = end.role;
  o.agent = agent;
  o.controller_key = req.controller_key;
  o.controller_name = req.controller_name;
  o.period = req.heartbeat_period;
  auto hb = Heartbeat::start(std::move(o));
  if (!hb) return hb.error();
  end.heartbeat = std::move(hb).value();
  return ok_status();
}

// The first lost agent of the run, if any.
std::optional<Error> lost_agent(const End& client, const std::optional<End>& server) {
  for (const End* e : {&client, server ? &*server : nullptr}) {
    if (e && e->heartbeat) {
      if (auto f = e->heartbeat->failure()) return f;
    }
  }
  return std::nullopt;
}

bool interrupted(const TraceRequest& req) { return req.interrupt && req.interrupt->load(std::memory_order_acquire); }

Status hello(const TraceRequest& req, End& end) {
  proto::Hello h;
  h.controller_name = req.controller_name;
  h.capabilities = {"trace", "bisect"};
  auto r = end.link->request_as<proto::HelloOk>(h);
  if (!r) return make_error(r.error().code, "trace", end.role + " agent: " + r.error().message);
  end.hello = std::move(r).value();
  auto c = end.link->sync_clock(8);
  if (!c) return make_error(c.error().code, "trace", end.role + " agent clock: " + c.error().message);
  end.clock = *c;
  return ok_status();
}

std::string new_run_id() {
  std::random_device rd;
  return fmt::format("run-{:x}-{:08x}", realtime_ns() / 1'000'000'000, rd());
}

// Fetches the whole capture in bounded chunks into `path`, checking the digest the agent sends with
// the last chunk against the bytes that arrived.
Status fetch_capture(End& end, const std::string& path) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) return make_error(Errc::environment, "trace", "cannot write " + path + ": " + std::strerror(errno));
  crypto_hash_sha256_state st;
  crypto_hash_sha256_init(&st);
  std::uint64_t offset = 0;
  for (;;) {
    proto::FetchCapture fc;
    fc.offset = offset;
    fc.max_bytes = static_cast<std::uint32_t>(proto::kMaxChunkBytes);
    auto chunk = end.link->request_as<proto::CaptureChunk>(fc, Ms(30'000));
    if (!chunk) return make_error(chunk.error().code, "trace", end.role + " agent: fetch capture: " + chunk.error().message);
    if (chunk->offset != offset || offset + chunk->bytes.size() > chunk->total) {
      return make_error(Errc::protocol, "trace", end.role + " agent sent a capture chunk out of order");
    }
    f.write(reinterpret_cast<const char*>(chunk->bytes.data()), static_cast<std::streamsize>(chunk->bytes.size()));  // NOLINT
    crypto_hash_sha256_update(&st, chunk->bytes.data(), chunk->bytes.size());
    offset += chunk->bytes.size();
    if (offset == chunk->total) {
      std::uint8_t digest[crypto_hash_sha256_BYTES];
      crypto_hash_sha256_final(&st, digest);
      if (chunk->sha256.size() != sizeof digest || std::memcmp(digest, chunk->sha256.data(), sizeof digest) != 0) {
        return make_error(Errc::protocol, "trace", end.role + " agent: capture digest mismatch (transfer corrupted)");
      }
      break;
    }
    if (chunk->bytes.empty()) return make_error(Errc::protocol, "trace", end.role + " agent sent an empty capture chunk");
  }
  f.close();
  if (!f) return make_error(Errc::environment, "trace", "cannot write " + path);
  return ok_status();
}

void end_run(End& end) {
  // Stopped first: once RUN_END is answered the agent no longer holds the run, which a heartbeat
  // would take for a loss.
  bool lost = end.lost();
  if (end.heartbeat) end.heartbeat->stop();
  if (!end.run_accepted || !end.link || lost) return;  // a lost agent ends its side by its lease
  static_cast<void>(end.link->request(proto::RunEnd{}, Ms(5000)));
  static_cast<void>(end.link->post(proto::Bye{}));
  end.run_accepted = false;
}

}  // namespace

correlate::RunManifest manifest_for(const TraceRequest& req, const proto::ProbePlan& plan,
                                    const std::optional<proto::ClockEstimate>& client_clock,
                                    const std::optional<proto::ClockEstimate>& server_clock) {
  correlate::RunManifest m;
  m.run_key = static_cast<std::uint32_t>(plan.seed);
  m.count = plan.count;
  m.client = req.client_source;
  m.target = req.target;
  m.dport = plan.dport;
  m.l4 = plan.l4 == proto::L4::udp ? "udp" : plan.l4 == proto::L4::icmp ? "icmp" : "tcp";
  m.reply_timeout_ns = static_cast<Nanos>(req.tail.count()) * 1'000'000;
  if (plan.variants.empty()) {
    m.variants.push_back(correlate::Variant{"default", plan.tcp_options, plan.tos, plan.sport, plan.ttl});
  } else {
    for (std::size_t i = 0; i < plan.variants.size(); ++i) {
      const auto& v = plan.variants[i];
      std::string name = i < req.variant_names.size() ? req.variant_names[i].name : fmt::format("v{}", i);
      m.variants.push_back(correlate::Variant{name, v.tcp_options, v.tos, v.sport.empty() ? plan.sport : v.sport,
                                                v.ttl != 0 ? v.ttl : plan.ttl});
    }
    m.probe_variant = probe::variant_schedule(plan.seed, plan.count, plan.variants.size());
  }
  if (client_clock && server_clock) {
    // Both offsets are agent minus controller; the server-minus-client offset is their difference
    // and the error bounds add up.
    m.clock = correlate::ClockEstimate{server_clock->offset_ns - client_clock->offset_ns,
                                       server_clock->error_ns + client_clock->error_ns, "clock-probe"};
  }
  return m;
}

Result<TraceEvidence> run_trace(const TraceRequest& req, const ProgressFn& progress) {
  auto logger = log::get("trace");
  auto say = [&](Progress p) {
    if (progress) progress(p);
  };
  if (sodium_init() < 0) return make_error(Errc::environment, "trace", "libsodium failed to initialise");
  if (::mkdir(req.out_dir.c_str(), 0755) != 0 && errno != EEXIST) {
    return make_error(Errc::environment, "trace", "cannot create " + req.out_dir + ": " + std::strerror(errno));
  }

  proto::ProbePlan plan = req.plan;
  plan.dst = req.target.to_string();
  plan.ip_version = req.target.is_v4() ? 4 : 6;
  if (plan.seed == 0) {
    std::random_device rd;
    plan.seed = (std::uint64_t{rd()} << 32) | rd();
  }

  TraceEvidence ev;
  ev.run_id = new_run_id();
  ev.started_ns = realtime_ns();
  // Set when the run is abandoned: a request still waiting on another thread gives up at once.
  std::atomic<bool> abandon{false};

  say({"connect", 0, plan.count, req.client.to_string()});
  End client{"client", nullptr, {}, {}, false, nullptr};
  std::optional<End> server;
  auto cl = connect(req, req.client, &abandon);
  if (!cl) return cl.error();
  client.link = std::move(cl).value();
  if (auto st = hello(req, client); !st) return st.error();
  if (req.server) {
    server.emplace(End{"server", nullptr, {}, {}, false, nullptr});
    auto sl = connect(req, *req.server, &abandon);
    if (!sl) return sl.error();
    server->link = std::move(sl).value();
    if (auto st = hello(req, *server); !st) return st.error();
  }
  say({"clock", 0, plan.count,
       fmt::format("client offset {} us ±{} us", client.clock.offset_ns / 1000, client.clock.error_ns / 1000)});

  // Everything after this point ends the run on both agents whatever happens.
  auto abort_all = [&](Error e) -> Result<TraceEvidence> {
    end_run(client);
    if (server) end_run(*server);
    return e;
  };
  // Between steps: a lost agent (its heartbeat failed) or an interrupt before sending abandons the run.
  auto check = [&]() -> std::optional<Error> {
    if (auto f = lost_agent(client, server)) return f;
    if (interrupted(req)) return make_error(Errc::usage, "trace", "interrupted before sending: run abandoned");
    return std::nullopt;
  };

  double rate = plan.rate_pps ? plan.rate_pps : (plan.interval_us ? 1e6 / plan.interval_us : 1.0);
  auto send_ms = static_cast<std::int64_t>(1000.0 * plan.count / rate);
  Nanos lease = realtime_ns() + (send_ms + req.tail.count() + 60'000) * 1'000'000;

  proto::Flow flow;
  flow.dst = plan.dst;
  flow.l4 = plan.l4;
  flow.dport = plan.dport;
  say({"setup", 0, plan.count, ev.run_id});
  if (server) {
    proto::RunSetup rs;
    rs.run_id = ev.run_id;
    rs.role = proto::Role::server;
    rs.lease_deadline_ns = lease + server->clock.offset_ns;
    proto::Flow sf = flow;
    if (req.server_sees_address) sf.dst = req.server_sees_address->to_string();
    if (req.server_sees_port) sf.dport = *req.server_sees_port;
    rs.flows = {sf};
    auto ok = server->link->request_as<proto::RunOk>(rs);
    if (!ok) return abort_all(make_error(ok.error().code, "trace", "server agent: run setup: " + ok.error().message));
    server->run_accepted = true;
    if (auto st = start_heartbeat(req, *req.server, *server); !st) return abort_all(st.error());
  }
  {
    proto::RunSetup rs;
    rs.run_id = ev.run_id;
    rs.role = proto::Role::client;
    rs.lease_deadline_ns = lease + client.clock.offset_ns;
    proto::Flow cf = flow;
    if (req.client_source) cf.src = req.client_source->to_string();
    rs.flows = {cf};
    rs.plan = plan;
    auto ok = client.link->request_as<proto::RunOk>(rs);
    if (!ok) return abort_all(make_error(ok.error().code, "trace", "client agent: run setup: " + ok.error().message));
    client.run_accepted = true;
    if (auto st = start_heartbeat(req, req.client, client); !st) return abort_all(st.error());
  }

  say({"capture", 0, plan.count, ""});
  if (server) {
    auto st = server->link->request_as<proto::CaptureStats>(proto::CaptureStart{}, Ms(15'000));
    if (!st) return abort_all(make_error(st.error().code, "trace", "server agent: capture start: " + st.error().message));
  }
  {
    auto st = client.link->request_as<proto::CaptureStats>(proto::CaptureStart{}, Ms(15'000));
    if (!st) return abort_all(make_error(st.error().code, "trace", "client agent: capture start: " + st.error().message));
  }
  if (auto e = check()) return abort_all(*e);

  // SEND_PLAN is answered when the plan is done (any length: the heartbeats keep both leases
  // alive). Meanwhile this thread reports progress from the heartbeats' STATUS replies, watches
  // for a lost agent, and on an interrupt stops the capture (which stops the plan) on a control
  // connection of its own (one ControllerClient per thread).
  say({"send", 0, plan.count, ""});
  std::atomic<bool> send_done{false};
  Result<proto::SendReport> send_result = make_error(Errc::internal, "trace", "send did not run");
  std::thread sender([&] {
    proto::SendPlan sp;
    sp.plan = plan;
    send_result = client.link->request_as<proto::SendReport>(sp, Ms(send_ms + 30'000));
    send_done.store(true, std::memory_order_release);
  });
  std::optional<Result<proto::CaptureStats>> client_stopped;  // the interrupt's CAPTURE_STOP
  std::optional<Error> lost;
  {
    std::unique_ptr<ControllerClient> control;
    const Nanos send_start = monotonic_ns();
    Nanos next_report = send_start + 1'000'000'000;
    while (!send_done.load(std::memory_order_acquire)) {
      std::this_thread::sleep_for(Ms(100));
      if ((lost = lost_agent(client, server))) {
        abandon.store(true, std::memory_order_release);  // the sender's wait ends now
        break;
      }
      if (interrupted(req) && !client_stopped) {
        ev.interrupted = true;
        say({"send", 0, plan.count, "interrupted: stopping"});
        auto c = connect(req, req.client);
        if (c) {
          control = std::move(c).value();
          proto::Hello h;
          h.controller_name = req.controller_name;
          if (auto ok = control->request_as<proto::HelloOk>(h); !ok) {
            client_stopped = Result<proto::CaptureStats>(ok.error());
          } else {
            proto::CaptureStop stop;
            stop.drain_ms = static_cast<std::uint32_t>(req.tail.count());
            client_stopped = control->request_as<proto::CaptureStats>(stop, Ms(req.tail.count() + 30'000));
          }
        } else {
          client_stopped = Result<proto::CaptureStats>(c.error());
        }
        continue;
      }
      Nanos now = monotonic_ns();
      if (now < next_report) continue;
      next_report = now + 1'000'000'000;
      Progress p{"send", 0, plan.count, ""};
      if (auto cp = client.heartbeat->progress()) {
        if (cp->sent) p.sent = static_cast<std::uint32_t>(*cp->sent);
        else p.sent = static_cast<std::uint32_t>(static_cast<std::uint64_t>(plan.count) * cp->status.progress_permille / 1000);
        p.client_captured = cp->captured;
      }
      if (server) {
        if (auto sp = server->heartbeat->progress()) p.server_captured = sp->captured;
      }
      double elapsed_s = static_cast<double>(now - send_start) / 1e9;
      if (elapsed_s > 0) p.rate_pps = p.sent / elapsed_s;
      p.eta_s = p.sent >= plan.count ? 0.0 : (plan.count - p.sent) / (p.rate_pps > 0 ? p.rate_pps : rate);
      say(p);
    }
  }
  sender.join();
  abandon.store(false, std::memory_order_release);  // only the sender's wait was to be cut short
  if (lost) return abort_all(*lost);
  if (!send_result) return abort_all(make_error(send_result.error().code, "trace", "client agent: send: " + send_result.error().message));
  ev.send = *send_result;
  say({"send", ev.send.sent, plan.count, ev.interrupted ? "interrupted" : "done"});
  if (client_stopped && !*client_stopped) {
    return abort_all(make_error(client_stopped->error().code, "trace",
                                "client agent: capture stop: " + client_stopped->error().message));
  }
  if (auto f = lost_agent(client, server)) return abort_all(*f);

  say({"drain", ev.send.sent, plan.count, fmt::format("{} ms", req.tail.count())});
  proto::CaptureStop stop;
  stop.drain_ms = static_cast<std::uint32_t>(req.tail.count());
  Result<proto::CaptureStats> server_stats = make_error(Errc::internal, "trace", "no server");
  std::thread server_stopper;
  if (server) {
    // Both drains run at once: the tail is waited for once, not twice.
    server_stopper = std::thread([&] {
      server_stats = server->link->request_as<proto::CaptureStats>(stop, Ms(req.tail.count() + 30'000));
    });
  }
  Result<proto::CaptureStats> client_stats =
      client_stopped ? std::move(*client_stopped)
                     : client.link->request_as<proto::CaptureStats>(stop, Ms(req.tail.count() + 30'000));
  if (server_stopper.joinable()) server_stopper.join();
  if (auto f = lost_agent(client, server)) return abort_all(*f);
  if (!client_stats) return abort_all(make_error(client_stats.error().code, "trace", "client agent: capture stop: " + client_stats.error().message));
  if (server && !server_stats) return abort_all(make_error(server_stats.error().code, "trace", "server agent: capture stop: " + server_stats.error().message));

  say({"fetch", ev.send.sent, plan.count, ""});
  ev.client.pcapng_path = req.out_dir + "/client.pcapng";
  if (auto st = fetch_capture(client, ev.client.pcapng_path); !st) return abort_all(st.error());
  ev.client.stats = *client_stats;
  ev.client.hello = client.hello;
  ev.client.clock = client.clock;
  if (server) {
    SideResult s;
    s.pcapng_path = req.out_dir + "/server.pcapng";
    if (auto st = fetch_capture(*server, s.pcapng_path); !st) return abort_all(st.error());
    s.stats = *server_stats;
    s.hello = server->hello;
    s.clock = server->clock;
    ev.server = std::move(s);
  }
  if (auto f = lost_agent(client, server)) return abort_all(*f);

  say({"end", ev.send.sent, plan.count, ""});
  end_run(client);
  if (server) end_run(*server);
  ev.ended_ns = realtime_ns();
  ev.manifest = manifest_for(req, plan, client.clock, server ? std::optional(server->clock) : std::nullopt);
  if (ev.interrupted) {
    // Probes leave in id order: the ones attempted are 0..attempted-1, the rest never existed.
    std::uint32_t attempted = std::min<std::uint32_t>(plan.count, ev.send.sent + ev.send.failed);
    ev.manifest.count = attempted;
    if (ev.manifest.probe_variant.size() > attempted) ev.manifest.probe_variant.resize(attempted);
  }
  logger->info("run {} done: {} probes sent{}", ev.run_id, ev.send.sent, ev.interrupted ? " (interrupted)" : "");
  return ev;
}

}  // namespace tandem::orchestrate
