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
std::optional<Error> lost_agent(const std::vector<End*>& ends) {
  for (const End* e : ends) {
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

correlate::RunManifest manifest_for(const TraceRequest& req, const proto::ProbeStream& stream,
                                    const std::vector<std::uint16_t>& variant_map,
                                    const std::optional<packet::IpAddr>& source,
                                    const std::optional<proto::ClockEstimate>& client_clock,
                                    const std::optional<proto::ClockEstimate>& server_clock) {
  const proto::ProbePlan& plan = req.plan;
  correlate::RunManifest m;
  m.run_key = static_cast<std::uint32_t>(stream.seed);
  m.count = stream.count;
  m.client = source;
  if (auto t = packet::IpAddr::parse(stream.dst)) m.target = *t;
  m.dport = stream.dport;
  m.l4 = plan.l4 == proto::L4::udp ? "udp" : plan.l4 == proto::L4::icmp ? "icmp" : "tcp";
  m.reply_timeout_ns = static_cast<Nanos>(req.tail.count()) * 1'000'000;
  if (stream.variants.empty()) {
    m.variants.push_back(correlate::Variant{"default", plan.tcp_options, plan.tos, plan.sport, plan.ttl});
  } else {
    for (std::size_t i = 0; i < stream.variants.size(); ++i) {
      const auto& v = stream.variants[i];
      const std::size_t plan_index = i < variant_map.size() ? variant_map[i] : i;
      std::string name = plan_index < req.variant_names.size() ? req.variant_names[plan_index].name : fmt::format("v{}", plan_index);
      m.variants.push_back(correlate::Variant{name, v.tcp_options, v.tos, v.sport.empty() ? plan.sport : v.sport,
                                                v.ttl != 0 ? v.ttl : plan.ttl});
    }
    m.probe_variant = probe::variant_schedule(stream.seed, stream.count, stream.variants.size());
  }
  if (client_clock && server_clock) {
    // Both offsets are agent minus controller; the server-minus-client offset is their difference
    // and the error bounds add up.
    m.clock = correlate::ClockEstimate{server_clock->offset_ns - client_clock->offset_ns,
                                       server_clock->error_ns + client_clock->error_ns, "clock-probe"};
  }
  return m;
}

std::vector<std::uint64_t> cell_seeds(std::uint64_t seed, std::size_t cells) {
  std::vector<std::uint64_t> out;
  if (cells == 0) return out;
  out.push_back(seed);
  std::uint64_t state = seed;
  while (out.size() < cells) {
    std::uint64_t s = probe::splitmix64_next(state);
    bool repeats = static_cast<std::uint32_t>(s) == 0;
    for (auto o : out) repeats = repeats || static_cast<std::uint32_t>(o) == static_cast<std::uint32_t>(s);
    if (!repeats) out.push_back(s);
  }
  return out;
}

std::string capture_file_name(const std::string& role, std::size_t index, std::size_t count) {
  return count == 1 ? role + ".pcapng" : fmt::format("{}{}.pcapng", role, index + 1);
}

namespace {

// What one client agent is asked to send: its cells' streams as one plan (the legacy one-stream
// form when it has a single cell, so a one-vantage run is byte for byte what it always was).
struct ClientPlan {
  proto::ProbePlan plan;
  std::vector<std::size_t> cells;  // indices into the run's cells, in stream order
  std::vector<proto::ProbeStream> streams;
};

// How many probes of each stream the first `attempted` send slots of `cp` covered (probes leave in
// slot order, proto::streams_of / probe::stream_schedule).
std::vector<std::uint32_t> attempted_per_stream(const ClientPlan& cp, std::uint64_t attempted) {
  std::vector<std::uint32_t> counts;
  for (const auto& st : cp.streams) counts.push_back(st.count);
  std::vector<std::uint32_t> out(counts.size(), 0);
  auto order = probe::stream_schedule(cp.plan.seed, counts);
  for (std::uint64_t k = 0; k < order.size() && k < attempted; ++k) ++out[order[k]];
  return out;
}

}  // namespace

Result<TraceEvidence> run_trace(const TraceRequest& req, const ProgressFn& progress) {
  auto logger = log::get("trace");
  auto say = [&](Progress p) {
    if (progress) progress(p);
  };
  if (sodium_init() < 0) return make_error(Errc::environment, "trace", "libsodium failed to initialise");
  if (req.clients.empty() || req.targets.empty()) return make_error(Errc::usage, "trace", "a run needs a client agent and a target");
  for (const auto& t : req.targets) {
    if (t.address.version != req.targets.front().address.version)
      return make_error(Errc::usage, "trace", "targets " + req.targets.front().address.to_string() + " and " +
                                                  t.address.to_string() + " are not the same IP version");
  }
  if (::mkdir(req.out_dir.c_str(), 0755) != 0 && errno != EEXIST) {
    return make_error(Errc::environment, "trace", "cannot create " + req.out_dir + ": " + std::strerror(errno));
  }

  proto::ProbePlan base = req.plan;
  base.dst = req.targets.front().address.to_string();
  base.ip_version = req.targets.front().address.is_v4() ? 4 : 6;
  if (base.seed == 0) {
    std::random_device rd;
    base.seed = (std::uint64_t{rd()} << 32) | rd();
  }

  // Every agent first: HELLO (which addresses each client may send from) and its clock.
  std::atomic<bool> abandon{false};
  std::vector<End> clients(req.clients.size());
  std::vector<std::optional<End>> servers(req.targets.size());
  std::vector<End*> ends;
  for (std::size_t c = 0; c < clients.size(); ++c) {
    clients[c].role = clients.size() == 1 ? "client" : fmt::format("client {}", c + 1);
    say({"connect", 0, 0, req.clients[c].agent.to_string()});
    auto cl = connect(req, req.clients[c].agent, &abandon);
    if (!cl) return cl.error();
    clients[c].link = std::move(cl).value();
    if (auto st = hello(req, clients[c]); !st) return st.error();
    ends.push_back(&clients[c]);
  }
  for (std::size_t t = 0; t < req.targets.size(); ++t) {
    if (!req.targets[t].server) continue;
    servers[t].emplace();
    servers[t]->role = req.targets.size() == 1 ? "server" : fmt::format("server {}", t + 1);
    auto sl = connect(req, *req.targets[t].server, &abandon);
    if (!sl) return sl.error();
    servers[t]->link = std::move(sl).value();
    if (auto st = hello(req, *servers[t]); !st) return st.error();
    ends.push_back(&*servers[t]);
  }
  say({"clock", 0, 0,
       fmt::format("client offset {} us ±{} us", clients[0].clock.offset_ns / 1000, clients[0].clock.error_ns / 1000)});

  // Each --source goes to the client agent that may send from it (HELLO_OK.sources).
  std::vector<std::vector<packet::IpAddr>> sources(req.clients.size());
  for (std::size_t c = 0; c < req.clients.size(); ++c) sources[c] = req.clients[c].sources;
  for (const auto& a : req.sources) {
    std::vector<std::size_t> owners;
    for (std::size_t c = 0; c < clients.size(); ++c) {
      const auto& list = clients[c].hello.sources;
      if (std::find(list.begin(), list.end(), a.to_string()) != list.end()) owners.push_back(c);
    }
    if (owners.empty() && clients.size() == 1 && clients[0].hello.sources.empty()) owners.push_back(0);  // the agent decides
    if (owners.size() != 1) {
      std::string who;
      for (std::size_t c : owners) who += (who.empty() ? "" : ", ") + req.clients[c].agent.endpoint;
      return make_error(Errc::usage, "trace",
                        owners.empty() ? "--source " + a.to_string() + " is not an address any client agent may send from"
                                       : "--source " + a.to_string() + " belongs to several client agents (" + who + ")");
    }
    if (a.version != req.targets.front().address.version)
      return make_error(Errc::usage, "trace", "--source " + a.to_string() + " and the target " +
                                                  req.targets.front().address.to_string() + " are not the same IP version");
    auto& mine = sources[owners.front()];
    if (std::find(mine.begin(), mine.end(), a) == mine.end()) mine.push_back(a);
  }

  // The cells: client-major, then source, then target.
  TraceEvidence ev;
  std::vector<ClientPlan> plans(req.clients.size());
  for (std::size_t c = 0; c < req.clients.size(); ++c) {
    std::vector<std::optional<packet::IpAddr>> vantages;
    if (sources[c].empty() || req.clients[c].also_default) vantages.emplace_back(std::nullopt);
    for (const auto& a : sources[c]) vantages.emplace_back(a);
    for (const auto& src : vantages) {
      for (std::size_t t = 0; t < req.targets.size(); ++t) {
        Cell cell;
        cell.client = c;
        cell.target = t;
        cell.source_given = src.has_value();
        if (src) cell.source = *src;
        plans[c].cells.push_back(ev.cells.size());
        ev.cells.push_back(std::move(cell));
      }
    }
  }
  if (ev.cells.size() > proto::kMaxStreams)
    return make_error(Errc::usage, "trace", fmt::format("{} vantage x target cells: at most {} per run", ev.cells.size(), proto::kMaxStreams));
  const auto seeds = cell_seeds(base.seed, ev.cells.size());
  std::uint64_t total = 0;
  for (std::size_t c = 0; c < plans.size(); ++c) {
    ClientPlan& cp = plans[c];
    std::vector<std::size_t> kept;
    for (std::size_t k : cp.cells) {
      Cell& cell = ev.cells[k];
      cell.seed = seeds[k];
      proto::ProbeStream st;
      if (cell.source_given) st.src = cell.source->to_string();
      st.dst = req.targets[cell.target].address.to_string();
      st.dport = base.dport;
      st.seed = cell.seed;
      st.count = base.count;
      st.variants = base.variants;
      if (!req.source_variants.empty()) {
        auto it = req.source_variants.find(st.src);
        if (it != req.source_variants.end()) {
          if (it->second.empty() || base.variants.empty()) continue;  // nothing for this vantage this run
          cell.variant_map = it->second;
          st.variants.clear();
          for (auto v : it->second) {
            if (v >= base.variants.size()) return make_error(Errc::internal, "trace", "source_variants names no plan variant");
            st.variants.push_back(base.variants[v]);
          }
          const auto k_of = static_cast<std::uint64_t>(it->second.size());
          st.count = static_cast<std::uint32_t>(std::max<std::uint64_t>(k_of, std::uint64_t{base.count} * k_of / base.variants.size()));
        }
      }
      kept.push_back(k);
      cp.streams.push_back(std::move(st));
    }
    cp.cells = kept;
    cp.plan = base;
    const auto n = static_cast<std::uint32_t>(cp.streams.size());
    if (n == 0) continue;  // this agent has nothing to send this run (bisect --bisect-source)
    if (n == 1 && cp.streams[0].src.empty() && cp.cells.size() == 1 && ev.cells[cp.cells[0]].variant_map.empty()) {
      cp.plan.seed = cp.streams[0].seed;
    } else {
      // Rates are per cell: the agent paces the whole plan at n times the rate.
      cp.plan.dst = cp.streams[0].dst;
      cp.plan.count = 0;
      for (const auto& st : cp.streams) cp.plan.count += st.count;
      std::uint64_t st = cp.streams[0].seed ^ 0x7a6e5f5eedULL;
      cp.plan.seed = probe::splitmix64_next(st);
      cp.plan.variants.clear();
      cp.plan.streams = cp.streams;
      if (base.rate_pps) cp.plan.rate_pps = base.rate_pps * n;
      else cp.plan.interval_us = std::max<std::uint32_t>(1, base.interval_us / n);
    }
    total += cp.plan.count;
  }
  {
    // Cells that send nothing this run (bisect --bisect-source) are dropped.
    std::vector<Cell> kept;
    for (auto& cp : plans) {
      for (auto& k : cp.cells) {
        kept.push_back(std::move(ev.cells[k]));
        k = kept.size() - 1;
      }
    }
    ev.cells = std::move(kept);
  }
  if (ev.cells.empty()) return make_error(Errc::usage, "trace", "no vantage has anything to send");
  // A client agent with no cell this run takes no part in it (it was only greeted).
  auto idle = [&](std::size_t c) { return plans[c].streams.empty(); };
  const auto total32 = static_cast<std::uint32_t>(std::min<std::uint64_t>(total, UINT32_MAX));

  ev.run_id = new_run_id();
  ev.started_ns = realtime_ns();

  // Everything after this point ends the run on every agent whatever happens.
  auto abort_all = [&](Error e) -> Result<TraceEvidence> {
    for (End* e2 : ends) end_run(*e2);
    return e;
  };
  // Between steps: a lost agent (its heartbeat failed) or an interrupt before sending abandons the run.
  auto check = [&]() -> std::optional<Error> {
    if (auto f = lost_agent(ends)) return f;
    if (interrupted(req)) return make_error(Errc::usage, "trace", "interrupted before sending: run abandoned");
    return std::nullopt;
  };

  std::int64_t send_ms = 0;
  for (const auto& cp : plans) {
    double rate = cp.plan.rate_pps ? cp.plan.rate_pps : (cp.plan.interval_us ? 1e6 / cp.plan.interval_us : 1.0);
    send_ms = std::max(send_ms, static_cast<std::int64_t>(1000.0 * cp.plan.count / rate));
  }
  Nanos lease = realtime_ns() + (send_ms + req.tail.count() + 60'000) * 1'000'000;

  say({"setup", 0, total32, ev.run_id});
  for (std::size_t t = 0; t < servers.size(); ++t) {
    if (!servers[t]) continue;
    End& server = *servers[t];
    proto::RunSetup rs;
    rs.run_id = ev.run_id;
    rs.role = proto::Role::server;
    rs.lease_deadline_ns = lease + server.clock.offset_ns;
    proto::Flow sf;
    sf.dst = req.targets[t].address.to_string();
    sf.l4 = base.l4;
    sf.dport = base.dport;
    if (req.targets[t].server_sees_address) sf.dst = req.targets[t].server_sees_address->to_string();
    if (req.targets[t].server_sees_port) sf.dport = *req.targets[t].server_sees_port;
    rs.flows = {sf};
    auto ok = server.link->request_as<proto::RunOk>(rs);
    if (!ok) return abort_all(make_error(ok.error().code, "trace", server.role + " agent: run setup: " + ok.error().message));
    server.run_accepted = true;
    if (auto st = start_heartbeat(req, *req.targets[t].server, server); !st) return abort_all(st.error());
  }
  for (std::size_t c = 0; c < clients.size(); ++c) {
    if (idle(c)) continue;
    End& client = clients[c];
    proto::RunSetup rs;
    rs.run_id = ev.run_id;
    rs.role = proto::Role::client;
    rs.lease_deadline_ns = lease + client.clock.offset_ns;
    for (const auto& st : plans[c].streams) {
      proto::Flow cf;
      cf.src = st.src;
      cf.dst = st.dst;
      cf.l4 = base.l4;
      cf.dport = st.dport;
      rs.flows.push_back(cf);
    }
    rs.plan = plans[c].plan;
    auto ok = client.link->request_as<proto::RunOk>(rs);
    if (!ok) return abort_all(make_error(ok.error().code, "trace", client.role + " agent: run setup: " + ok.error().message));
    client.run_accepted = true;
    // The agent names the source of every flow it was left to choose.
    for (std::size_t i = 0; i < plans[c].cells.size() && i < ok->flows.size(); ++i) {
      Cell& cell = ev.cells[plans[c].cells[i]];
      if (cell.source_given) continue;
      if (auto a = packet::IpAddr::parse(ok->flows[i].src)) cell.source = *a;
    }
    // Two vantages of one agent from the same address (a --source that is also its routing
    // default) would be one vantage counted twice.
    for (std::size_t i = 0; i < plans[c].cells.size(); ++i) {
      for (std::size_t j = 0; j < i; ++j) {
        const Cell& x = ev.cells[plans[c].cells[i]];
        const Cell& y = ev.cells[plans[c].cells[j]];
        if (x.target == y.target && x.source && y.source && *x.source == *y.source) {
          return abort_all(make_error(Errc::usage, "trace", "source " + x.source->to_string() + " of " + client.role +
                                                                " agent is its routing default too: give it once"));
        }
      }
    }
    if (auto st = start_heartbeat(req, req.clients[c].agent, client); !st) return abort_all(st.error());
  }

  say({"capture", 0, total32, ""});
  // The servers' captures first, so that no probe can reach a server before its capture runs.
  for (auto& server : servers) {
    if (!server) continue;
    auto st = server->link->request_as<proto::CaptureStats>(proto::CaptureStart{}, Ms(15'000));
    if (!st) return abort_all(make_error(st.error().code, "trace", server->role + " agent: capture start: " + st.error().message));
  }
  for (std::size_t c = 0; c < clients.size(); ++c) {
    if (idle(c)) continue;
    End& client = clients[c];
    auto st = client.link->request_as<proto::CaptureStats>(proto::CaptureStart{}, Ms(15'000));
    if (!st) return abort_all(make_error(st.error().code, "trace", client.role + " agent: capture start: " + st.error().message));
  }
  if (auto e = check()) return abort_all(*e);

  // SEND_PLAN is answered when the plan is done (any length: the heartbeats keep every lease
  // alive). One thread per client agent waits for it; this thread reports progress from the
  // heartbeats' STATUS replies, watches for a lost agent, and on an interrupt stops every client's
  // capture (which stops its plan) on a control connection of its own (one ControllerClient per
  // thread).
  say({"send", 0, total32, ""});
  const std::size_t nc = clients.size();
  std::vector<std::atomic<bool>> send_done(nc);
  std::vector<Result<proto::SendReport>> send_result(nc, make_error(Errc::internal, "trace", "send did not run"));
  std::vector<std::thread> senders;
  for (std::size_t c = 0; c < nc; ++c) {
    send_done[c].store(idle(c));
    if (idle(c)) {
      send_result[c] = proto::SendReport{};
      continue;
    }
    const double rate = plans[c].plan.rate_pps ? plans[c].plan.rate_pps : 1e6 / std::max<std::uint32_t>(1, plans[c].plan.interval_us);
    const auto ms = static_cast<std::int64_t>(1000.0 * plans[c].plan.count / rate);
    senders.emplace_back([&, c, ms] {
      proto::SendPlan sp;
      sp.plan = plans[c].plan;
      send_result[c] = clients[c].link->request_as<proto::SendReport>(sp, Ms(ms + 30'000));
      send_done[c].store(true, std::memory_order_release);
    });
  }
  auto all_done = [&] {
    for (auto& d : send_done)
      if (!d.load(std::memory_order_acquire)) return false;
    return true;
  };
  std::vector<std::optional<Result<proto::CaptureStats>>> client_stopped(nc);  // the interrupt's CAPTURE_STOP
  std::optional<Error> lost;
  {
    const double total_rate = [&] {
      double r = 0;
      for (const auto& cp : plans) r += cp.plan.rate_pps ? cp.plan.rate_pps : (cp.plan.interval_us ? 1e6 / cp.plan.interval_us : 1.0);
      return r;
    }();
    const Nanos send_start = monotonic_ns();
    Nanos next_report = send_start + 1'000'000'000;
    bool stopping = false;
    while (!all_done()) {
      std::this_thread::sleep_for(Ms(100));
      if ((lost = lost_agent(ends))) {
        abandon.store(true, std::memory_order_release);  // the senders' waits end now
        break;
      }
      if (interrupted(req) && !stopping) {
        stopping = true;
        ev.interrupted = true;
        say({"send", 0, total32, "interrupted: stopping"});
        for (std::size_t c = 0; c < nc; ++c) {
          if (idle(c)) continue;
          auto ctl = connect(req, req.clients[c].agent);
          if (!ctl) {
            client_stopped[c] = Result<proto::CaptureStats>(ctl.error());
            continue;
          }
          proto::Hello h;
          h.controller_name = req.controller_name;
          if (auto ok = (*ctl)->request_as<proto::HelloOk>(h); !ok) {
            client_stopped[c] = Result<proto::CaptureStats>(ok.error());
          } else {
            proto::CaptureStop stop;
            stop.drain_ms = static_cast<std::uint32_t>(req.tail.count());
            client_stopped[c] = (*ctl)->request_as<proto::CaptureStats>(stop, Ms(req.tail.count() + 30'000));
          }
        }
        continue;
      }
      Nanos now = monotonic_ns();
      if (now < next_report) continue;
      next_report = now + 1'000'000'000;
      Progress p{"send", 0, total32, ""};
      for (std::size_t c = 0; c < nc; ++c) {
        if (!clients[c].heartbeat) continue;
        if (auto cp = clients[c].heartbeat->progress()) {
          if (cp->sent) p.sent += static_cast<std::uint32_t>(*cp->sent);
          else p.sent += static_cast<std::uint32_t>(static_cast<std::uint64_t>(plans[c].plan.count) * cp->status.progress_permille / 1000);
          if (cp->captured) p.client_captured = p.client_captured.value_or(0) + *cp->captured;
        }
      }
      for (auto& server : servers) {
        if (!server) continue;
        if (auto sp = server->heartbeat->progress(); sp && sp->captured)
          p.server_captured = p.server_captured.value_or(0) + *sp->captured;
      }
      double elapsed_s = static_cast<double>(now - send_start) / 1e9;
      if (elapsed_s > 0) p.rate_pps = p.sent / elapsed_s;
      p.eta_s = p.sent >= total32 ? 0.0 : (total32 - p.sent) / (p.rate_pps > 0 ? p.rate_pps : total_rate);
      say(p);
    }
  }
  for (auto& t : senders) t.join();
  abandon.store(false, std::memory_order_release);  // only the senders' waits were to be cut short
  if (lost) return abort_all(*lost);
  std::vector<proto::SendReport> reports(nc);
  for (std::size_t c = 0; c < nc; ++c) {
    if (!send_result[c])
      return abort_all(make_error(send_result[c].error().code, "trace", clients[c].role + " agent: send: " + send_result[c].error().message));
    reports[c] = *send_result[c];
    ev.send.sent += reports[c].sent;
    ev.send.failed += reports[c].failed;
    if (c == 0 || (reports[c].first_ns && reports[c].first_ns < ev.send.first_ns)) ev.send.first_ns = reports[c].first_ns;
    ev.send.last_ns = std::max(ev.send.last_ns, reports[c].last_ns);
  }
  say({"send", ev.send.sent, total32, ev.interrupted ? "interrupted" : "done"});
  for (std::size_t c = 0; c < nc; ++c) {
    if (client_stopped[c] && !*client_stopped[c]) {
      return abort_all(make_error(client_stopped[c]->error().code, "trace",
                                  clients[c].role + " agent: capture stop: " + client_stopped[c]->error().message));
    }
  }
  if (auto f = lost_agent(ends)) return abort_all(*f);

  say({"drain", ev.send.sent, total32, fmt::format("{} ms", req.tail.count())});
  proto::CaptureStop stop;
  stop.drain_ms = static_cast<std::uint32_t>(req.tail.count());
  // Every drain runs at once: the tail is waited for once, not once per agent.
  std::vector<Result<proto::CaptureStats>> server_stats(servers.size(), make_error(Errc::internal, "trace", "no server"));
  std::vector<Result<proto::CaptureStats>> client_stats(nc, make_error(Errc::internal, "trace", "not stopped"));
  {
    std::vector<std::thread> stoppers;
    for (std::size_t t = 0; t < servers.size(); ++t) {
      if (!servers[t]) continue;
      stoppers.emplace_back([&, t] {
        server_stats[t] = servers[t]->link->request_as<proto::CaptureStats>(stop, Ms(req.tail.count() + 30'000));
      });
    }
    for (std::size_t c = 0; c < nc; ++c) {
      if (idle(c)) {
        client_stats[c] = proto::CaptureStats{};
        continue;
      }
      if (client_stopped[c]) {
        client_stats[c] = std::move(*client_stopped[c]);
        continue;
      }
      stoppers.emplace_back([&, c] {
        client_stats[c] = clients[c].link->request_as<proto::CaptureStats>(stop, Ms(req.tail.count() + 30'000));
      });
    }
    for (auto& t : stoppers) t.join();
  }
  if (auto f = lost_agent(ends)) return abort_all(*f);
  for (std::size_t c = 0; c < nc; ++c) {
    if (!client_stats[c])
      return abort_all(make_error(client_stats[c].error().code, "trace", clients[c].role + " agent: capture stop: " + client_stats[c].error().message));
  }
  for (std::size_t t = 0; t < servers.size(); ++t) {
    if (servers[t] && !server_stats[t])
      return abort_all(make_error(server_stats[t].error().code, "trace", servers[t]->role + " agent: capture stop: " + server_stats[t].error().message));
  }

  say({"fetch", ev.send.sent, total32, ""});
  for (std::size_t c = 0; c < nc; ++c) {
    SideResult r;
    if (!idle(c)) {
      r.pcapng_path = req.out_dir + "/" + capture_file_name("client", c, nc);
      if (auto st = fetch_capture(clients[c], r.pcapng_path); !st) return abort_all(st.error());
    }
    r.stats = *client_stats[c];
    r.hello = clients[c].hello;
    r.clock = clients[c].clock;
    ev.clients.push_back(std::move(r));
  }
  for (std::size_t t = 0; t < servers.size(); ++t) {
    if (!servers[t]) {
      ev.servers.emplace_back(std::nullopt);
      continue;
    }
    SideResult r;
    r.pcapng_path = req.out_dir + "/" + capture_file_name("server", t, std::count_if(servers.begin(), servers.end(), [](const auto& x) { return x.has_value(); }));
    if (auto st = fetch_capture(*servers[t], r.pcapng_path); !st) return abort_all(st.error());
    r.stats = *server_stats[t];
    r.hello = servers[t]->hello;
    r.clock = servers[t]->clock;
    ev.servers.emplace_back(std::move(r));
  }
  if (auto f = lost_agent(ends)) return abort_all(*f);

  say({"end", ev.send.sent, total32, ""});
  for (End* e : ends) end_run(*e);
  ev.ended_ns = realtime_ns();
  for (std::size_t c = 0; c < nc; ++c) {
    const ClientPlan& cp = plans[c];
    std::vector<std::uint32_t> attempted;
    if (ev.interrupted) attempted = attempted_per_stream(cp, std::uint64_t{reports[c].sent} + reports[c].failed);
    for (std::size_t i = 0; i < cp.cells.size(); ++i) {
      Cell& cell = ev.cells[cp.cells[i]];
      const auto& server = servers[cell.target];
      cell.manifest = manifest_for(req, cp.streams[i], cell.variant_map, cell.source,
                                   clients[c].clock, server ? std::optional(server->clock) : std::nullopt);
      if (ev.interrupted) {
        // A stream's probes leave in id order: the ones attempted are 0..attempted-1, the rest never existed.
        cell.manifest.count = attempted[i];
        if (cell.manifest.probe_variant.size() > attempted[i]) cell.manifest.probe_variant.resize(attempted[i]);
      }
    }
  }
  logger->info("run {} done: {} probes sent over {} cells{}", ev.run_id, ev.send.sent, ev.cells.size(),
               ev.interrupted ? " (interrupted)" : "");
  return ev;
}

}  // namespace tandem::orchestrate
