// The single-ended layer-4 ping (`tandem ping`, DESIGN.md §3): sends a probe plan from this host
// with exact pacing while capturing, recognises each probe's reply or ICMP error live, and hands
// every probe's final outcome to the caller in sequence order as soon as it is known (a reply
// arrived, or its timeout ran out).
//
// Pipeline: probe module (common/probe) → RawSender + SendLoop (common/netio) on a sender thread →
// CaptureSession (common/pcapio) on the capture thread → decode + recognise → outcome table →
// caller's callback on the calling thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/clock.hpp"
#include "common/base/result.hpp"
#include "common/netio/send_loop.hpp"
#include "common/packet/addr.hpp"
#include "common/pcapio/packet.hpp"
#include "common/probe/probe_module.hpp"
#include "common/probe/spec.hpp"

namespace tandem::ping {

// nmap's words: open (SYN-ACK / UDP reply / echo reply), closed (RST / ICMP port unreachable for
// UDP), filtered (nothing, or an ICMP error), open|filtered (UDP, FIN, NULL or Xmas probe with no
// answer: nothing proves either), unfiltered (an ACK probe answered with RST: it got through).
enum class PortState : std::uint8_t { open, closed, filtered, open_filtered, unfiltered };
std::string_view state_name(PortState s);
std::optional<PortState> parse_state(std::string_view text);

// What a TCP flag combination probes, in nmap's terms: a SYN probe (S without A or R), an ACK probe
// (A without S, R or F: does the path let it through?), or a FIN/NULL/Xmas probe (none of S, A, R:
// RST = closed, silence = open|filtered). Other combinations have no defined states and are refused.
enum class TcpProbeKind : std::uint8_t { syn, ack, fin_null_xmas };
Result<TcpProbeKind> tcp_probe_kind(std::uint8_t tcp_flags);

// The answer that means "healthy" for this probe (exit code 0 of DESIGN.md §3): open for SYN, UDP
// and ICMP echo probes, unfiltered for ACK probes, closed (the target itself answered) for
// FIN/NULL/Xmas probes.
PortState healthy_state(const probe::ProbeSpec& spec);

struct PingOptions {
  packet::IpAddr target;
  probe::ProbeSpec spec;
  std::uint32_t count = 5;                // 0 = until --until is met or *stop is set
  std::optional<double> rate_pps;         // --rate; else interval_s
  double interval_s = 1.0;                // -i
  double timeout_s = 1.0;                 // how long a probe's answer is waited for
  std::optional<PortState> until;         // stop once a probe ends in this state
  // The probes' source address (ping_source.hpp's select_source checks it is ours); nullopt = the
  // kernel's choice for the target (through `interface` if one is given).
  std::optional<packet::IpAddr> source;
  // The interface probes are sent through (the raw socket is bound to it) and captured on; "any"
  // (or "") = sent where the routes say, captured on every interface.
  std::string interface = "any";
  const std::atomic<bool>* stop = nullptr;  // set by SIGINT: stop sending, finish the outstanding
};

struct ProbeOutcome {
  std::uint32_t index = 0;
  packet::IpAddr src;            // the probe's source address (the run's, PingResult::ends.src)
  std::uint16_t sport = 0;
  bool sent = false;             // the kernel accepted it
  bool send_failed = false;      // the kernel refused it (after retries): it never left
  bool seen_leaving = false;     // our capture saw it leave (sent_ns is then the wire time)
  Nanos sent_ns = 0;             // realtime ns
  bool answered = false;         // a reply or an ICMP error arrived
  Nanos reply_ns = 0;
  probe::ReplyKind reply = probe::ReplyKind::none;
  std::uint8_t icmp_type = 0, icmp_code = 0;
  packet::IpAddr reply_from;
  std::uint32_t duplicates = 0;  // further answers to the same probe
  PortState state = PortState::filtered;

  std::optional<std::int64_t> rtt_us() const {
    if (!answered || !sent) return std::nullopt;
    return (reply_ns - sent_ns) / 1000;
  }
};

struct RttStats {
  std::uint64_t samples = 0;
  double min_us = 0, avg_us = 0, max_us = 0, mdev_us = 0;
};

struct PingResult {
  probe::ProbeEndpoints ends;
  std::string module;  // "tcp-syn", ...
  std::string filter;  // the BPF filter used
  std::vector<ProbeOutcome> probes;
  netio::SendReport send;
  pcapio::CaptureStats capture;
  std::uint64_t capture_seen = 0;
  std::uint64_t capture_cap_dropped = 0;
  std::uint64_t unmatched_packets = 0;  // captured but about none of our probes
  Nanos started_ns = 0, ended_ns = 0;
  bool interrupted = false;
  bool until_reached = false;      // a reported probe (the last one) ended in the --until state
  std::uint64_t after_until = 0;   // probes sent after it, in flight when it was reached: not reported

  std::uint64_t count(PortState s) const;
  RttStats rtt() const;
};

// Called once, after the capture is up and before the first probe is sent.
using StartFn = std::function<void(const PingResult& header)>;
// Called for each probe in index order, from the calling thread.
using OutcomeFn = std::function<void(const ProbeOutcome&)>;

// Errors: no route to the target (environment), no CAP_NET_RAW (permission), bad spec (usage), an
// interface that cannot be bound (environment).
Result<PingResult> run_ping(const PingOptions& options, const StartFn& on_start, const OutcomeFn& on_outcome);

// How a reply or an ICMP error maps to a state for a probe type (pure; unit-tested). `tcp_flags`
// are the probe's (TCP only): they decide what a RST and silence mean.
PortState classify(probe::ProbeSpec::L4 l4, bool v6, probe::ReplyKind reply, std::uint8_t icmp_type,
                   std::uint8_t icmp_code, std::uint8_t tcp_flags = 0x02);

}  // namespace tandem::ping
