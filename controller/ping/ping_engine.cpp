#include "controller/ping/ping_engine.hpp"
#include "controller/ping/outcome_table.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <thread>

#include "common/base/log.hpp"
#include "common/netio/raw_sender.hpp"
#include "common/netio/route.hpp"
#include "common/packet/build.hpp"
#include "common/packet/decode.hpp"
#include "common/pcapio/capture_session.hpp"
#include "controller/ping/ping_source.hpp"

namespace tandem::ping {

std::string_view state_name(PortState s) {
  switch (s) {
    case PortState::open: return "open";
    case PortState::closed: return "closed";
    case PortState::filtered: return "filtered";
    case PortState::open_filtered: return "open|filtered";
    case PortState::unfiltered: return "unfiltered";
  }
  return "filtered";
}

std::optional<PortState> parse_state(std::string_view text) {
  if (text == "open") return PortState::open;
  if (text == "closed") return PortState::closed;
  if (text == "filtered") return PortState::filtered;
  if (text == "open|filtered") return PortState::open_filtered;
  if (text == "unfiltered") return PortState::unfiltered;
  return std::nullopt;
}

Result<TcpProbeKind> tcp_probe_kind(std::uint8_t f) {
  const bool syn = f & packet::kTcpSyn, ack = f & packet::kTcpAck, rst = f & packet::kTcpRst,
             fin = f & packet::kTcpFin;
  if (syn && !ack && !rst) return TcpProbeKind::syn;
  if (ack && !syn && !rst && !fin) return TcpProbeKind::ack;
  if (!syn && !ack && !rst) return TcpProbeKind::fin_null_xmas;
  return make_error(Errc::usage, "ping",
                    "--flags " + probe::format_tcp_flags(f) +
                        ": no port state is defined for this combination; use S (SYN), A (ACK), F (FIN), "
                        "none (NULL) or FPU (Xmas), optionally with P, U, E, C");
}

PortState healthy_state(const probe::ProbeSpec& spec) {
  if (spec.l4 != probe::ProbeSpec::L4::tcp) return PortState::open;
  auto kind = tcp_probe_kind(spec.tcp_flags);
  if (!kind || *kind == TcpProbeKind::syn) return PortState::open;
  return *kind == TcpProbeKind::ack ? PortState::unfiltered : PortState::closed;
}

PortState classify(probe::ProbeSpec::L4 l4, bool v6, probe::ReplyKind reply, std::uint8_t icmp_type,
                   std::uint8_t icmp_code, std::uint8_t tcp_flags) {
  using probe::ReplyKind;
  if (l4 == probe::ProbeSpec::L4::tcp) {
    auto kind = tcp_probe_kind(tcp_flags);
    if (kind && *kind == TcpProbeKind::ack) {
      // nmap's ACK scan: a RST proves the probe got through; silence or an ICMP error does not.
      return reply == ReplyKind::rst ? PortState::unfiltered : PortState::filtered;
    }
    if (kind && *kind == TcpProbeKind::fin_null_xmas) {
      // RFC 9293: a closed port answers RST, an open one drops these silently.
      if (reply == ReplyKind::rst) return PortState::closed;
      if (reply == ReplyKind::none) return PortState::open_filtered;
      return PortState::filtered;
    }
  }
  switch (reply) {
    case ReplyKind::syn_ack:
    case ReplyKind::udp:
    case ReplyKind::echo_reply: return PortState::open;
    case ReplyKind::rst: return PortState::closed;
    case ReplyKind::tcp_other: return PortState::filtered;
    case ReplyKind::icmp_error: {
      // Port unreachable from the target says "nothing listens" for UDP (nmap: closed); every
      // other ICMP error, and any ICMP error for TCP, means something on the path refused it.
      bool port_unreach = v6 ? (icmp_type == 1 && icmp_code == 4) : (icmp_type == 3 && icmp_code == 3);
      if (l4 == probe::ProbeSpec::L4::udp && port_unreach) return PortState::closed;
      return PortState::filtered;
    }
    case ReplyKind::none: break;
  }
  return l4 == probe::ProbeSpec::L4::udp ? PortState::open_filtered : PortState::filtered;
}

std::uint64_t PingResult::count(PortState s) const {
  return static_cast<std::uint64_t>(
      std::count_if(probes.begin(), probes.end(), [s](const ProbeOutcome& p) { return p.sent && p.state == s; }));
}

RttStats PingResult::rtt() const {
  RttStats r;
  double sum = 0, sum_sq = 0;
  for (const auto& p : probes) {
    auto rtt = p.rtt_us();
    if (!rtt) continue;
    double v = static_cast<double>(*rtt);
    if (r.samples == 0 || v < r.min_us) r.min_us = v;
    if (r.samples == 0 || v > r.max_us) r.max_us = v;
    sum += v;
    sum_sq += v * v;
    ++r.samples;
  }
  if (r.samples) {
    double n = static_cast<double>(r.samples);
    r.avg_us = sum / n;
    // ping(8)'s mdev: the standard deviation of the samples.
    r.mdev_us = std::sqrt(std::max(0.0, sum_sq / n - r.avg_us * r.avg_us));
  }
  return r;
}


Result<PingResult> run_ping(const PingOptions& opts, const StartFn& on_start, const OutcomeFn& on_outcome) {
  auto logger = log::get("ping");
  PingResult result;

  const bool bound = interface_given(opts.interface);
  // The probe module's BPF filter and recognition take the source from here: replies are matched
  // to the address the probes carry, whichever it is.
  auto src = opts.source ? Result<packet::IpAddr>(*opts.source)
                         : netio::source_address_for(opts.target, bound ? opts.interface : std::string());
  if (!src) return src.error();
  result.ends = probe::ProbeEndpoints{*src, opts.target};

  auto module_r = probe::make_probe_module(opts.spec, result.ends, probe::random_run_key(), opts.count);
  if (!module_r) return module_r.error();
  auto& module = *module_r.value();
  result.module = std::string(module.name());
  result.filter = module.bpf_filter();

  netio::RawSenderOptions send_opts;
  if (bound) send_opts.bind_device = opts.interface;
  auto sender = netio::RawSender::open(opts.target.version, send_opts);
  if (!sender) return sender.error();

  netio::SendLoopConfig send_cfg;
  send_cfg.count = opts.count;
  if (opts.rate_pps) {
    auto s = netio::Schedule::from_rate(*opts.rate_pps);
    if (!s) return s.error();
    send_cfg.schedule = *s;
  } else {
    auto s = netio::Schedule::from_interval(opts.interval_s);
    if (!s) return s.error();
    send_cfg.schedule = *s;
  }

  OutcomeTable table(module, opts);
  bool v6 = !opts.target.is_v4();
  std::atomic<std::uint64_t> unmatched{0};

  pcapio::CaptureSessionConfig cap_cfg;
  cap_cfg.capture.device = bound ? opts.interface : std::string("any");
  cap_cfg.capture.filter = result.filter;
  cap_cfg.store = false;  // ping keeps outcomes, not packets
  // Batched delivery (a block retired at least every 10 ms) instead of a wake-up per packet: the
  // kernel timestamps make RTTs exact either way; only the printed line may come up to 10 ms later.
  cap_cfg.capture.immediate = false;
  std::atomic<int> linktype{0};
  packet::Decoded d;  // the capture thread's, reused for every packet
  cap_cfg.on_packet = [&](const pcapio::PacketView& pv) {
    packet::decode_into(static_cast<std::uint32_t>(linktype.load(std::memory_order_relaxed)), pv.data, pv.origlen, d);
    auto obs = module.recognise(d);
    if (!obs) {
      unmatched.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    // A packet may be seen more than once (on "any", leaving one interface and arriving on
    // another when this host forwards); the table keeps the first sighting, which is the earliest.
    table.on_observation(*obs, pv.ts_ns, v6);
  };
  pcapio::CaptureSession capture(cap_cfg);
  // The callback reads the link type only after start() returns it; packets delivered before that
  // store cannot exist because nothing was sent yet.
  if (auto st = capture.start(); !st) return st.error();
  linktype.store(capture.linktype(), std::memory_order_relaxed);

  result.started_ns = realtime_ns();
  if (on_start) on_start(result);

  std::atomic<bool> stop_sending{false};
  send_cfg.stop = &stop_sending;
  if (opts.until) send_cfg.until = [&] { return table.until_hit(); };
  send_cfg.keep_timestamps = false;
  send_cfg.on_sent = [&](std::uint64_t index, const netio::PacketStatus& st) {
    table.on_sent(static_cast<std::uint32_t>(index), st.err == 0, st.sent_ns);
  };
  netio::SendLoop loop(
      [&](std::uint64_t index, std::vector<std::uint8_t>& out) {
        table.reserve(static_cast<std::uint32_t>(index));
        module.build(static_cast<std::uint32_t>(index), out);
        return opts.target;
      },
      send_cfg);

  Result<netio::SendReport> send_result = make_error(Errc::internal, "ping", "sender did not run");
  std::atomic<bool> sending_done{false};
  std::thread sender_thread([&] {
    send_result = loop.run(*sender);
    sending_done.store(true, std::memory_order_release);
  });

  std::vector<ProbeOutcome> ready;
  for (;;) {
    if (opts.stop && opts.stop->load(std::memory_order_relaxed)) {
      stop_sending.store(true);
      result.interrupted = true;
    }
    bool done = sending_done.load(std::memory_order_acquire);
    ready.clear();
    // After ^C the probes still in flight are not waited for: they end as unanswered now.
    Nanos now = (done && result.interrupted) ? INT64_MAX / 2 : realtime_ns();
    table.collect_final(now, done, ready);
    for (auto& p : ready) {
      if (!p.sent) continue;
      p.src = result.ends.src;
      // --until ends the run AT the probe that reached the state: probes sent after it (in flight
      // at a high rate) are counted, not reported, so the last line is the one that answered.
      if (result.until_reached) {
        ++result.after_until;
        continue;
      }
      if (on_outcome) on_outcome(p);
      result.probes.push_back(p);
      if (opts.until && p.state == *opts.until) {
        result.until_reached = true;
        stop_sending.store(true);
      }
    }
    if (done) {
      std::uint64_t attempted = send_result ? send_result->attempted : 0;
      if (table.all_final(attempted)) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  sender_thread.join();
  if (!send_result) return send_result.error();
  result.send = std::move(send_result).value();

  auto cap = capture.stop(std::chrono::milliseconds(0));
  if (!cap) return cap.error();
  result.capture = cap->stats;
  result.capture_seen = cap->seen;
  result.capture_cap_dropped = cap->cap_dropped;
  result.unmatched_packets = unmatched.load();
  result.ended_ns = realtime_ns();
  if (result.send.first_error && result.send.sent == 0) return *result.send.first_error;
  if (cap->error) logger->warn("capture ended early: {}", cap->error->text());
  return result;
}

}  // namespace tandem::ping
