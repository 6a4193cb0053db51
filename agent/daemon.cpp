#include "agent/daemon.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <future>
#include <map>
#include <optional>

#include <fmt/format.h>

#include "agent/capture/run_capture.hpp"
#include "agent/send/plan_sender.hpp"
#include "agent/session/connections.hpp"
#include "agent/storage/data_dir.hpp"
#include "agent/session/session.hpp"
#include "common/base/log.hpp"
#include "common/base/version.hpp"
#include "common/netio/route.hpp"
#include "common/proto/wire.hpp"
#include "common/transport/agent_server.hpp"

namespace tandem::agent {

namespace {


std::string hex(const std::vector<std::uint8_t>& b) {
  std::string s;
  for (auto x : b) s += fmt::format("{:02x}", x);
  return s;
}

const char* role_name(proto::Role r) { return r == proto::Role::client ? "client" : "server"; }

// Deferred reply target: the ROUTER routing id and the request id of the request it answers.
struct ReplyTo {
  std::string routing_id;
  std::uint32_t request_id = 0;
  std::uint16_t version = proto::kProtocolVersion;
};

struct Run {
  std::string id;
  std::string owner;  // controller key
  proto::Role role = proto::Role::client;
  std::vector<proto::Flow> flows;
  std::string filter;
  int snaplen = 256;
  RunPhase phase = RunPhase::armed;
  Lease lease;
  std::unique_ptr<RunCapture> capture;
  std::unique_ptr<PlanSender> sender;
  std::optional<ReplyTo> send_reply;
  std::uint64_t sent_total = 0;  // packets attempted by finished plans (max_packets is per run)
  std::future<Result<StoredCapture>> stopping;
  std::optional<ReplyTo> stop_reply;
  std::optional<StoredCapture> stored;
  std::string failure;  // why the run failed (STATUS detail), empty if fine
};

}  // namespace

struct Daemon::Impl {
  DaemonOptions opt;
  std::unique_ptr<transport::AgentServer> server;
  std::shared_ptr<spdlog::logger> log = tandem::log::get("agent");
  ConnectionTable connections;  // by routing id; bounded without evicting the run holder (T29)
  std::optional<Run> run;
  std::string expired_owner;

  // --- sending replies ---
  void send_to(const ReplyTo& to, const proto::Message& m, const std::string& key) {
    auto bytes = proto::encode(m, to.request_id, to.version);
    if (!bytes) {
      log->error("encode {}: {}", proto::message_name(proto::type_of(m)), bytes.error().text());
      return;
    }
    if (auto st = server->send(to.routing_id, *bytes); !st) {
      log->warn("reply {} undeliverable: {}", proto::message_name(proto::type_of(m)), st.error().text());
      opt.audit.record("reply_undeliverable", key, std::string("message=") + std::string(proto::message_name(proto::type_of(m))));
    }
  }
  void error_to(const ReplyTo& to, proto::ErrorCode code, std::string text, const std::string& key) {
    if (text.size() > proto::kMaxErrorTextLen) text.resize(proto::kMaxErrorTextLen);
    send_to(to, proto::ErrorReply{code, std::move(text)}, key);
  }

  // --- run end ---
  std::uint64_t stop_sender_and_report(Run& r) {
    if (!r.sender) return 0;
    r.sender->request_stop();
    auto rep = r.sender->wait();
    std::uint64_t attempted = rep ? rep->attempted : r.sender->attempted();
    r.sent_total += attempted;
    if (r.send_reply) {
      if (rep) {
        proto::SendReport sr{static_cast<std::uint32_t>(rep->sent), static_cast<std::uint32_t>(rep->failed),
                             rep->first_send_ns, rep->last_send_ns};
        send_to(*r.send_reply, sr, r.owner);
      } else {
        error_to(*r.send_reply, proto::ErrorCode::internal, rep.error().text(), r.owner);
      }
      r.send_reply.reset();
    }
    if (rep) {
      opt.audit.record("probes_sent", r.owner,
                       fmt::format("run={} sent={} failed={} stopped={}{}", r.id, rep->sent, rep->failed, rep->stopped,
                                   rep->first_error ? " first_error=\"" + rep->first_error->text() + "\"" : ""));
    } else {
      opt.audit.record("send_failed", r.owner, fmt::format("run={} error=\"{}\"", r.id, rep.error().text()));
    }
    r.sender.reset();
    return attempted;
  }

  void delete_files(Run& r) {
    if (!r.stored) return;
    std::error_code ec;
    std::filesystem::remove(r.stored->path, ec);
    opt.audit.record("files_deleted", r.owner,
                     fmt::format("run={} file={}{}", r.id, r.stored->path.string(), ec ? " error=" + ec.message() : ""));
    r.stored.reset();
  }

  // Ends the current run whatever its phase: sending stopped, capture stopped (nothing written),
  // files deleted. Pending replies get `pending_code` (or, for the send, its report).
  void end_run(const std::string& reason, proto::ErrorCode pending_code) {
    if (!run) return;
    Run& r = *run;
    if (r.sender) stop_sender_and_report(r);
    if (r.stopping.valid()) {
      // The drain is bounded by policy (max_drain_ms); the file it writes is removed below.
      auto res = r.stopping.get();
      if (res) r.stored = std::move(res).value();
    }
    if (r.stop_reply) {
      error_to(*r.stop_reply, pending_code, "run ended: " + reason, r.owner);
      r.stop_reply.reset();
    }
    if (r.capture) {
      r.capture->abort();
      opt.audit.record("capture_stopped", r.owner, fmt::format("run={} reason=\"{}\" seen={} written=0", r.id, reason,
                                                               r.capture->packets_seen()));
      r.capture.reset();
    }
    delete_files(r);
    opt.audit.record("run_ended", r.owner, fmt::format("run={} reason=\"{}\"", r.id, reason));
    run.reset();
  }

  // A run whose controller key the operator just removed (SIGHUP) ends now: its plan must not keep
  // sending until the next request or the lease notices (DESIGN.md §7, within 3 s).
  void end_run_of_removed_key() {
    if (!run) return;
    const auto& keys = opt.policy.controller_keys;
    if (std::find(keys.begin(), keys.end(), run->owner) != keys.end()) return;
    end_run("controller key removed from the allow list", proto::ErrorCode::policy_refused);
  }

  // --- housekeeping each loop turn ---
  void poll_workers() {
    if (!run) return;
    Run& r = *run;
    if (r.sender && r.sender->done()) stop_sender_and_report(r);
    if (r.stopping.valid() && r.stopping.wait_for(std::chrono::seconds(0)) == std::future_status::ready) {
      auto res = r.stopping.get();
      r.capture.reset();
      r.lease.touch(monotonic_ns());  // the controller was waiting for us, not silent
      if (res) {
        r.stored = std::move(res).value();
        const auto& s = *r.stored;
        opt.audit.record("capture_stopped", r.owner,
                         fmt::format("run={} received={} dropped={} not_stored={} written={} bytes={} sha256={} file={}", r.id,
                                     s.stats.received, s.stats.dropped, s.not_stored, s.packets_written, s.size,
                                     hex(s.sha256), s.path.string()));
        if (r.stop_reply) send_to(*r.stop_reply, s.stats, r.owner);
      } else {
        r.failure = res.error().text();
        opt.audit.record("capture_failed", r.owner, fmt::format("run={} error=\"{}\"", r.id, r.failure));
        if (r.stop_reply) error_to(*r.stop_reply, proto::ErrorCode::internal, r.failure, r.owner);
      }
      r.stop_reply.reset();
    }
  }

  void check_lease() {
    if (!run) return;
    const bool sending = run->sender != nullptr && !run->sender->done();
    auto end = run->lease.check(realtime_ns(), monotonic_ns(), run->stopping.valid(), sending);
    if (end == Lease::End::none) return;
    std::string owner = run->owner;
    std::string why = end == Lease::End::deadline
                          ? "lease deadline reached"
                          : fmt::format("controller silent for {} s{}",
                                        static_cast<double>(run->lease.silence_limit(sending)) / 1e9,
                                        sending ? " while sending" : "");
    opt.audit.record("lease_expired", owner, fmt::format("run={} reason=\"{}\"", run->id, why));
    end_run(why, proto::ErrorCode::lease_expired);
    expired_owner = owner;
  }

  // --- requests ---
  void handle(const transport::Incoming& in) {
    Nanos t2 = realtime_ns();
    auto hdr = proto::peek_header(in.bytes);
    ReplyTo to{in.routing_id, hdr ? hdr->request_id : 0, proto::kProtocolVersion};
    // T3: ZAP ran once at connect; the allow list is re-checked on every request.
    if (std::find(opt.policy.controller_keys.begin(), opt.policy.controller_keys.end(), in.user_id) ==
        opt.policy.controller_keys.end()) {
      opt.audit.record("request_refused", in.user_id, "reason=\"key not in allow list\" peer=" + in.peer_address);
      error_to(to, proto::ErrorCode::policy_refused, "policy: controller key not allowed (allow list)", in.user_id);
      return;
    }
    if (in.frames != 1) {
      log->warn("malformed request from {} ({}): {} frames", in.user_id, in.peer_address, in.frames);
      opt.audit.record("malformed", in.user_id, fmt::format("reason=\"{} frames\" peer={}", in.frames, in.peer_address));
      error_to(to, proto::ErrorCode::malformed, fmt::format("frames: {} frames, expected 1", in.frames), in.user_id);
      return;
    }
    auto dec = proto::decode(in.bytes);
    if (!dec) {
      const auto& e = dec.error();
      log->warn("malformed request from {} ({}): {}", in.user_id, in.peer_address, e.to_error().text());
      opt.audit.record("malformed", in.user_id,
                       fmt::format("reason={} detail=\"{}\" peer={}", proto::to_string(e.code), e.detail, in.peer_address));
      error_to(to, proto::ErrorCode::malformed, std::string(proto::to_string(e.code)) + ": " + e.detail, in.user_id);
      return;
    }
    const proto::Envelope& env = dec.value();
    to.version = env.header.version;

    Connection& conn = connections.admit(in.routing_id, in.user_id, run ? run->owner : std::string());
    conn.last_seen_mono = monotonic_ns();
    if (run && run->owner == in.user_id) run->lease.touch(conn.last_seen_mono);

    proto::MsgType type = proto::type_of(env.message);
    Decision d = decide(conn, run ? run->owner : std::string(), run ? run->phase : RunPhase::none, type, expired_owner);
    switch (d.verdict) {
      case Verdict::close:
        connections.erase(in.routing_id);
        return;
      case Verdict::invalid:
        error_to(to, proto::ErrorCode::unexpected_message,
                 fmt::format("{} not allowed in state {}", proto::message_name(type), proto::to_string(d.from)), in.user_id);
        return;
      case Verdict::lease_expired:
        error_to(to, proto::ErrorCode::lease_expired, "the run's lease ended (deadline or controller silence); files deleted",
                 in.user_id);
        return;
      case Verdict::busy:
        opt.audit.record("run_refused", in.user_id, "reason=\"busy: another run is active\"");
        error_to(to, proto::ErrorCode::busy, "busy: another controller holds a run", in.user_id);
        return;
      case Verdict::handle: break;
    }
    std::visit([&](const auto& m) { on(conn, to, m, t2); }, env.message);
  }

  template <class M>
  void on(Connection& c, const ReplyTo& to, const M&, Nanos) {
    // next_state() only lets requests through; anything else is a table bug.
    error_to(to, proto::ErrorCode::internal, "unhandled request", c.key);
  }

  void on(Connection& c, const ReplyTo& to, const proto::Hello& m, Nanos) {
    std::uint16_t lo = std::max(m.min_version, proto::kMinProtocolVersion);
    std::uint16_t hi = std::min(m.max_version, proto::kProtocolVersion);
    if (lo > hi) {
      error_to(to, proto::ErrorCode::unsupported_version,
               fmt::format("no common version: controller {}-{}, agent {}-{}", m.min_version, m.max_version,
                           proto::kMinProtocolVersion, proto::kProtocolVersion),
               c.key);
      return;
    }
    c.hello = true;
    c.version = hi;
    proto::HelloOk ok;
    ok.version = hi;
    ok.agent_id = opt.policy.agent_id;
    ok.agent_version = kVersion;
    ok.capabilities = {"clock", "capture"};
    if (opt.policy.send_enabled) ok.capabilities.push_back("send");
    if (opt.policy.scrub_payload) ok.capabilities.push_back("scrub");
    ok.policy_summary = summary(opt.policy);
    if (opt.policy.send_enabled) {
      // Where this agent may send from: its own addresses the policy allows (not IPv6 link-local
      // ones, which need an interface scope the plan does not carry).
      if (auto local = netio::local_addresses()) {
        for (const auto& a : *local) {
          if (ok.sources.size() >= proto::kMaxSources) break;
          const std::string t = a.to_string();
          if (t.starts_with("fe80:")) continue;
          if (opt.policy.source_allowed(a) && std::find(ok.sources.begin(), ok.sources.end(), t) == ok.sources.end())
            ok.sources.push_back(t);
        }
      }
    }
    opt.audit.record("hello", c.key, fmt::format("controller=\"{}\" version={}", m.controller_name, hi));
    send_to(to, ok, c.key);
  }

  void on(Connection& c, const ReplyTo& to, const proto::ClockProbe& m, Nanos t2) {
    proto::ClockReply r{m.t1, t2, realtime_ns()};
    send_to(to, r, c.key);
  }

  void on(Connection& c, const ReplyTo& to, const proto::StatusRequest&, Nanos) {
    proto::StatusReply s;
    if (!run) {
      s.state = proto::AgentState::idle;
      s.detail = "idle";
    } else if (run->owner != c.key) {
      s.state = proto::AgentState::idle;
      s.detail = "busy: another controller holds a run";
    } else {
      Run& r = *run;
      switch (r.phase) {
        case RunPhase::armed: s.state = proto::AgentState::armed; break;
        case RunPhase::capturing: s.state = r.sender ? proto::AgentState::sending : proto::AgentState::capturing; break;
        default: s.state = proto::AgentState::stopped; break;
      }
      if (!r.failure.empty()) s.state = proto::AgentState::failed;
      std::uint64_t seen = r.capture ? r.capture->packets_seen() : 0;
      if (r.sender) {
        auto n = r.sender->attempted();
        auto total = std::max<std::uint32_t>(1, r.sender->count());
        s.progress_permille = static_cast<std::uint16_t>(std::min<std::uint64_t>(1000, n * 1000 / total));
        s.detail = fmt::format("run {}: sent {}/{}, captured {}", r.id, n, r.sender->count(), seen);
      } else if (!r.failure.empty()) {
        s.detail = "run " + r.id + ": " + r.failure;
      } else if (r.stored) {
        s.progress_permille = 1000;
        s.detail = fmt::format("run {}: capture ready, {} bytes", r.id, r.stored->size);
      } else {
        s.detail = fmt::format("run {}: captured {}", r.id, seen);
      }
      if (s.detail.size() > proto::kMaxDetailLen) s.detail.resize(proto::kMaxDetailLen);
    }
    send_to(to, s, c.key);
  }

  void on(Connection& c, const ReplyTo& to, const proto::RunSetup& m, Nanos now) {
    auto refuse = [&](const std::string& text) {
      opt.audit.record("run_refused", c.key, fmt::format("run={} reason=\"{}\"", m.run_id, text));
      error_to(to, proto::ErrorCode::policy_refused, text, c.key);
    };
    if (auto st = check_run_setup(opt.policy, m, now); !st) return refuse(st.error().text());
    if (m.role == proto::Role::server) {
      auto local = netio::local_addresses();
      if (!local) return refuse(local.error().text());
      if (auto st = check_server_flows(opt.policy, m, *local); !st) return refuse(st.error().text());
    }
    int snaplen = static_cast<int>(m.snaplen ? m.snaplen : opt.policy.snaplen);
    // The sending end knows its own source address better than the controller: fill it in so the
    // capture also takes the ICMP errors routers send back about the probes (they are addressed to
    // it, from anywhere).
    std::vector<proto::Flow> flows = m.flows;
    if (m.role == proto::Role::client) {
      for (auto& f : flows) {
        if (!f.src.empty()) continue;
        auto dst = packet::IpAddr::parse(f.dst);
        if (!dst) continue;
        if (auto src = netio::source_address_for(*dst)) f.src = src->to_string();
      }
    }
    if (m.role == proto::Role::client) {
      // A client captures and sends from its own addresses only, those its operator allows.
      auto local = netio::local_addresses();
      if (!local) return refuse(local.error().text());
      std::vector<packet::IpAddr> srcs;
      for (const auto& f : flows) {
        if (auto a = packet::IpAddr::parse(f.src)) srcs.push_back(*a);
      }
      if (auto st = check_sources(opt.policy, srcs, *local); !st) return refuse(st.error().text());
    }
    auto filter = flows_filter(flows, m.capture_filter, snaplen);
    if (!filter) return refuse("policy: capture filter not allowed (" + filter.error().text() + ")");
    Run r;
    r.id = m.run_id;
    r.owner = c.key;
    r.role = m.role;
    r.flows = flows;
    r.filter = *filter;
    r.snaplen = snaplen;
    r.lease = Lease(m.lease_deadline_ns, static_cast<Nanos>(opt.policy.idle_timeout_s) * 1'000'000'000, monotonic_ns());
    run.emplace(std::move(r));
    if (expired_owner == c.key) expired_owner.clear();
    opt.audit.record("run_accepted", c.key,
                     fmt::format("run={} role={} lease_s={:.1f} flows={} snaplen={} filter=\"{}\"", m.run_id, role_name(m.role),
                                 static_cast<double>(m.lease_deadline_ns - now) / 1e9, m.flows.size(), snaplen, *filter));
    send_to(to, proto::RunOk{m.run_id, flows}, c.key);
  }

  std::uint64_t other_files_bytes() const {
    std::uint64_t used = 0;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(opt.data_dir, ec)) {
      if (e.is_regular_file(ec) && is_run_file(e.path())) used += e.file_size(ec);
    }
    return used;
  }

  void on(Connection& c, const ReplyTo& to, const proto::CaptureStart&, Nanos) {
    Run& r = *run;
    std::uint64_t used = other_files_bytes();
    std::uint64_t left = used >= opt.policy.quota_bytes ? 0 : opt.policy.quota_bytes - used;
    const std::string description = fmt::format("tandem-agent {} ({}) device any, run {}, filter: {}",
                                                opt.policy.agent_id, role_name(r.role), r.id, r.filter);
    // The file's header carries the description (the whole filter): it must fit with room to spare.
    if (left < 4096 + description.size()) {
      opt.audit.record("capture_refused", c.key,
                       fmt::format("run={} reason=\"disk quota\" used={} header={}", r.id, used, description.size()));
      error_to(to, proto::ErrorCode::policy_refused,
               fmt::format("policy: capture not allowed (disk quota {} bytes, {} in use, this run's file header {} bytes)",
                           opt.policy.quota_bytes, used, description.size()),
               c.key);
      return;
    }
    RunCaptureConfig cfg;
    cfg.filter = r.filter;
    cfg.snaplen = r.snaplen;
    cfg.scrub_payload = opt.policy.scrub_payload;
    cfg.quota_bytes = left;
    cfg.interface_name = role_name(r.role);
    cfg.description = description;
    cfg.path = run_file(opt.data_dir, r.id, role_name(r.role));
    auto cap = RunCapture::start(std::move(cfg));
    if (!cap) {
      opt.audit.record("capture_failed", c.key, fmt::format("run={} error=\"{}\"", r.id, cap.error().text()));
      error_to(to, proto::ErrorCode::internal, cap.error().text(), c.key);
      return;
    }
    r.capture = std::move(cap).value();
    r.phase = RunPhase::capturing;
    opt.audit.record("capture_started", c.key, fmt::format("run={} device=any snaplen={} quota={}", r.id, r.snaplen, left));
    send_to(to, proto::CaptureStats{}, c.key);
  }

  void on(Connection& c, const ReplyTo& to, const proto::SendPlan& m, Nanos now) {
    Run& r = *run;
    if (r.role != proto::Role::client) {
      error_to(to, proto::ErrorCode::unexpected_message, "SEND_PLAN in a server-role run", c.key);
      return;
    }
    if (r.sender) {
      error_to(to, proto::ErrorCode::busy, "busy: a plan is already being sent", c.key);
      return;
    }
    auto refuse = [&](const std::string& text) {
      opt.audit.record("send_refused", c.key, fmt::format("run={} reason=\"{}\"", r.id, text));
      error_to(to, proto::ErrorCode::policy_refused, text, c.key);
    };
    if (auto st = check_plan(opt.policy, m.plan, r.flows, r.sent_total); !st) return refuse(st.error().text());
    {
      auto local = netio::local_addresses();
      if (!local) return refuse(local.error().text());
      std::vector<packet::IpAddr> srcs;
      for (const auto& st : proto::streams_of(m.plan)) {
        auto dst = packet::IpAddr::parse(st.dst);
        auto src = st.src.empty() ? (dst ? netio::source_address_for(*dst) : Result<packet::IpAddr>(make_error(Errc::usage, "send", "bad destination")))
                                  : Result<packet::IpAddr>(make_error(Errc::usage, "send", "bad source"));
        if (!st.src.empty()) {
          if (auto a = packet::IpAddr::parse(st.src)) src = *a;
        }
        if (!src) return refuse(src.error().text());
        srcs.push_back(*src);
      }
      if (auto st = check_sources(opt.policy, srcs, *local); !st) return refuse(st.error().text());
    }
    double rate = m.plan.rate_pps ? m.plan.rate_pps : 1e6 / m.plan.interval_us;
    double need_s = (m.plan.count - 1) / rate;
    if (need_s > static_cast<double>(r.lease.deadline() - now) / 1e9)
      return refuse(fmt::format("policy: plan of {:.1f} s not allowed (beyond the run's lease)", need_s));
    auto s = PlanSender::start(m.plan);
    if (!s) {
      opt.audit.record("send_failed", c.key, fmt::format("run={} error=\"{}\"", r.id, s.error().text()));
      error_to(to, s.error().code == Errc::usage ? proto::ErrorCode::policy_refused : proto::ErrorCode::internal,
               s.error().text(), c.key);
      return;
    }
    r.sender = std::move(s).value();
    r.send_reply = to;
    opt.audit.record("send_started", c.key,
                     fmt::format("run={} dst={} l4={} dport={} count={} rate_pps={} interval_us={} variants={} seed={} streams={}", r.id,
                                 m.plan.dst, static_cast<int>(m.plan.l4), m.plan.dport, m.plan.count, m.plan.rate_pps,
                                 m.plan.interval_us, m.plan.variants.size(), m.plan.seed, m.plan.streams.size()));
  }

  void on(Connection& c, const ReplyTo& to, const proto::CaptureStop& m, Nanos) {
    Run& r = *run;
    // Probes still going out would be missing from the capture: stop the plan first (its
    // SEND_REPORT still goes to its requester, with what was sent).
    if (r.sender) stop_sender_and_report(r);
    auto drain = std::chrono::milliseconds(std::min(m.drain_ms, opt.policy.max_drain_ms));
    RunCapture* cap = r.capture.get();
    r.stopping = std::async(std::launch::async, [cap, drain] { return cap->stop_and_write(drain); });
    r.stop_reply = to;
    r.phase = RunPhase::stopped;
    (void)c;
  }

  void on(Connection& c, const ReplyTo& to, const proto::FetchCapture& m, Nanos) {
    if (!run || run->owner != c.key || !run->stored) {
      const char* why = (run && run->owner == c.key && run->stopping.valid()) ? "capture not written yet" : "no capture";
      error_to(to, proto::ErrorCode::not_found, why, c.key);
      return;
    }
    const StoredCapture& s = *run->stored;
    if (m.offset > s.size) {
      error_to(to, proto::ErrorCode::not_found, fmt::format("offset {} beyond the end ({} bytes)", m.offset, s.size), c.key);
      return;
    }
    std::uint64_t n = std::min<std::uint64_t>({m.max_bytes, proto::kMaxChunkBytes, s.size - m.offset});
    proto::CaptureChunk chunk;
    chunk.offset = m.offset;
    chunk.total = s.size;
    chunk.bytes.resize(static_cast<std::size_t>(n));
    std::ifstream in(s.path, std::ios::binary);
    in.seekg(static_cast<std::streamoff>(m.offset));
    in.read(reinterpret_cast<char*>(chunk.bytes.data()), static_cast<std::streamsize>(n));
    if (!in) {
      error_to(to, proto::ErrorCode::internal, "capture: read " + s.path.string() + " failed", c.key);
      return;
    }
    if (m.offset + n == s.size) {
      chunk.sha256 = s.sha256;
      opt.audit.record("capture_fetched", c.key, fmt::format("run={} bytes={}", run->id, s.size));
    }
    send_to(to, chunk, c.key);
  }

  void on(Connection& c, const ReplyTo& to, const proto::RunEnd&, Nanos) {
    std::string id = run->id;
    end_run("RUN_END", proto::ErrorCode::unexpected_message);
    send_to(to, proto::RunOk{id, {}}, c.key);
  }

  // Files a previous process left (crash, kill -9) belong to no run: delete them at start.
  void remove_stale_files() {
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(opt.data_dir, ec)) {
      if (e.is_regular_file(ec) && is_run_file(e.path())) {
        std::error_code rm;
        std::filesystem::remove(e.path(), rm);
        opt.audit.record("files_deleted", "", "reason=\"stale at start\" file=" + e.path().string());
      }
    }
  }
};

Daemon::Daemon(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Daemon::~Daemon() {
  if (impl_) impl_->end_run("agent stopped", proto::ErrorCode::internal);
}

Result<std::unique_ptr<Daemon>> Daemon::start(DaemonOptions options) {
  auto impl = std::make_unique<Impl>();
  impl->opt = std::move(options);
  if (auto st = prepare_data_dir(impl->opt.data_dir); !st) return st.error();
  impl->remove_stale_files();

  transport::ServerOptions so;
  so.bind_endpoint = impl->opt.listen;
  so.keypair = impl->opt.keypair;
  so.allowed_keys = impl->opt.policy.controller_keys;
  Audit audit = impl->opt.audit;
  so.audit = [audit](const transport::AuthDecision& d) {
    audit.record(d.accepted ? "key_accepted" : "key_refused", d.client_key,
                 fmt::format("peer={} reason=\"{}\"", d.peer_address, d.reason));
  };
  so.guard_events = [audit](const transport::GuardEvent& e) {
    audit.record(e.kind == transport::GuardEvent::Kind::handshake_failed ? "handshake_failed" : "connection_dropped", "",
                 fmt::format("peer={} reason=\"{}\"", e.peer, e.reason));
  };
  auto server = transport::AgentServer::start(std::move(so));
  if (!server) return server.error();
  impl->server = std::move(server).value();
  impl->opt.audit.record("agent_started", "",
                         fmt::format("endpoint={} keys={} data_dir={} policy=\"{}\"", impl->server->endpoint(),
                                     impl->opt.policy.controller_keys.size(), impl->opt.data_dir.string(),
                                     summary(impl->opt.policy)));
  return std::unique_ptr<Daemon>(new Daemon(std::move(impl)));
}

const std::string& Daemon::endpoint() const { return impl_->server->endpoint(); }

Status Daemon::reload_now() {
  Impl& d = *impl_;
  if (!d.opt.reload_policy) return make_error(Errc::usage, "agent", "policy reload not configured");
  auto p = d.opt.reload_policy();
  if (!p) {
    d.opt.audit.record("policy_reload_failed", "", fmt::format("error=\"{}\" kept=old", p.error().text()));
    return p.error();
  }
  d.opt.policy = std::move(p).value();
  d.server->set_allowed_keys(d.opt.policy.controller_keys);
  d.opt.audit.record("policy_reloaded", "", fmt::format("keys={} policy=\"{}\"", d.opt.policy.controller_keys.size(),
                                                          summary(d.opt.policy)));
  d.end_run_of_removed_key();
  return ok_status();
}

Status Daemon::run(const std::atomic<bool>& stop, std::atomic<bool>* reload) {
  Impl& d = *impl_;
  while (!stop.load()) {
    if (reload != nullptr && reload->exchange(false)) {
      if (auto st = reload_now(); !st) d.log->error("policy reload failed, keeping the old policy: {}", st.error().text());
    }
    if (!d.server->zap_healthy()) {
      d.end_run("ZAP handler died", proto::ErrorCode::internal);
      return make_error(Errc::internal, "agent", "ZAP handler died; refusing to serve (fail closed)");
    }
    d.poll_workers();
    d.check_lease();
    auto in = d.server->receive(d.opt.poll);
    if (!in) {
      if (stop.load()) break;
      d.end_run("server socket failed", proto::ErrorCode::internal);
      return in.error();
    }
    if (*in) {
      try {
        d.handle(**in);
      } catch (const std::exception& e) {
        // T8: nothing a peer sends may kill the daemon; a bug here costs one request.
        d.log->error("request handling failed: {}", e.what());
      }
    }
  }
  d.end_run("agent stopped", proto::ErrorCode::internal);
  d.opt.audit.record("agent_stopped", "", "");
  return ok_status();
}

}  // namespace tandem::agent
