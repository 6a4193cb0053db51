#include "tests/unit/correlate/synth_capture.hpp"

#include <algorithm>
#include <stdexcept>
#include <tuple>

#include "common/packet/build.hpp"
#include "common/probe/spec.hpp"

namespace tandem::synth {
namespace {

using packet::IpSpec;
using packet::TcpOption;
using packet::TcpSpec;

struct Event {
  Nanos ts;
  std::vector<std::uint8_t> ip;
  bool outgoing;
};

std::vector<std::uint8_t> must(Result<std::vector<std::uint8_t>> r) {
  // Test support: a builder failure is a bug in the test, not an input to handle.
  if (!r) throw std::runtime_error("synth: " + r.error().text());
  return std::move(r).value();
}

std::vector<TcpOption> with_tsval(std::vector<TcpOption> opts, std::uint32_t tsval) {
  for (auto& o : opts) {
    if (o.kind == packet::kTcpOptTimestamp) o = TcpOption::timestamp(tsval, 0);
  }
  return opts;
}

std::vector<TcpOption> forward_options(const Path& path, std::vector<TcpOption> opts) {
  for (auto& o : opts) {
    if (path.clamp_mss && o.kind == packet::kTcpOptMss && o.data.size() == 2) {
      std::uint16_t v = static_cast<std::uint16_t>(o.data[0] << 8 | o.data[1]);
      if (v > *path.clamp_mss) o = TcpOption::mss(*path.clamp_mss);
    }
  }
  if (path.strip_sack_perm) {
    std::vector<TcpOption> out;
    for (auto& o : opts) {
      if (o.kind == packet::kTcpOptSackPerm) {
        out.push_back(TcpOption::nop());
        out.push_back(TcpOption::nop());
      } else {
        out.push_back(o);
      }
    }
    opts = std::move(out);
  }
  if (path.rotate_options && !opts.empty()) std::rotate(opts.begin(), opts.begin() + 1, opts.end());
  return opts;
}

std::uint8_t error_type(bool v6) { return v6 ? 1 : 3; }
std::uint8_t error_code(bool v6) { return v6 ? 1 : 13; }

}  // namespace

void append_ip(correlate::CaptureSide& side, Nanos ts, const std::vector<std::uint8_t>& ip, bool outgoing) {
  std::vector<std::uint8_t> frame;
  bool v6 = !ip.empty() && (ip[0] >> 4) == 6;
  std::uint8_t et_hi = v6 ? 0x86 : 0x08, et_lo = v6 ? 0xdd : 0x00;
  switch (side.linktype) {
    case 1:
      frame = {0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, et_hi, et_lo};
      break;
    case 276:
      frame = {et_hi, et_lo, 0, 0, 0, 0, 0, 2, 0, 1, static_cast<std::uint8_t>(outgoing ? 4 : 0), 6,
               0x02, 0, 0, 0, 0, 1, 0, 0};
      break;
    default: break;
  }
  frame.insert(frame.end(), ip.begin(), ip.end());
  side.packets.append(pcapio::PacketView{ts, static_cast<std::uint32_t>(frame.size()), frame});
}

Pair synthesize(const Path& path, const Plan& plan, const std::vector<Outcome>& outcomes) {
  Pair out;
  out.client.present = out.server.present = true;
  out.client.linktype = path.client_linktype;
  out.server.linktype = path.server_linktype;
  out.client.stats.available = out.server.stats.available = true;
  // Like an agent's captures of a run (the run's flows, for the whole run): the evidence checks
  // for hand-taken files (tests/unit/correlate/real_traffic_test.cpp) do not apply.
  out.client.vouched = out.server.vouched = true;
  auto& m = out.manifest;
  m.run_key = plan.key.key;
  m.count = static_cast<std::uint32_t>(plan.first_index + outcomes.size());
  m.client = path.client;
  m.target = path.server;
  m.dport = plan.dport;
  m.l4 = plan.l4 == Plan::L4::tcp ? "tcp" : plan.l4 == Plan::L4::udp ? "udp" : "icmp";

  const bool v6 = !path.client.is_v4();
  const auto injector = path.injector.value_or(path.server);
  const auto base_opts = plan.options.empty() ? probe::linux_syn_options() : plan.options;
  std::vector<Event> cev, sev;

  for (std::uint32_t n = 0; n < outcomes.size(); ++n) {
    const Outcome oc = outcomes[n];
    const std::uint32_t i = plan.first_index + n;
    if (oc == Outcome::not_sent) continue;
    const Nanos t = plan.start_ns + static_cast<Nanos>(i) * plan.interval_ns;
    const std::uint16_t sport = plan.sport ? plan.sport(i) : static_cast<std::uint16_t>(40000 + i);
    const std::uint32_t seq = plan.key.tcp_seq(i);
    const std::uint32_t tsval = plan.tsval.value_or(1000 + i);
    const auto tag = plan.key.payload_tag(i);
    const std::vector<std::uint8_t> tagv(tag.begin(), tag.end());

    IpSpec cip{path.client, path.server, plan.tos, 64, plan.zero_ip_id ? std::uint16_t{0} : plan.key.ip_id(i),
               plan.df, plan.zero_ip_id ? 0u : plan.key.flow_label(i)};
    auto opts = with_tsval(base_opts, tsval);
    auto build_probe = [&](const IpSpec& ip, std::uint16_t sp, std::uint32_t sq, const std::vector<TcpOption>& o) {
      switch (plan.l4) {
        case Plan::L4::tcp: return must(packet::build_tcp(ip, TcpSpec{sp, plan.dport, sq, 0, packet::kTcpSyn, 64240, 0, o}));
        case Plan::L4::udp: return must(packet::build_udp(ip, sp, plan.dport, tagv));
        case Plan::L4::icmp:
          return must(packet::icmp_echo(ip, plan.key.icmp_ident(), static_cast<std::uint16_t>(i), tagv));
      }
      return std::vector<std::uint8_t>{};
    };
    auto probe = build_probe(cip, sport, seq, opts);
    cev.push_back({t, probe, true});

    if (oc == Outcome::icmp_error) {
      IpSpec rip{path.router, path.client, 0, 64, static_cast<std::uint16_t>(0x7000 + i), false, 0};
      cev.push_back({t + 150'000, must(packet::build_icmp(rip, error_type(v6), error_code(v6), 0, probe)), false});
      continue;
    }
    if (oc == Outcome::injected_rst) {
      IpSpec iip{injector, path.client, 0, 64, 0, false, 0};
      TcpSpec rst{plan.dport, sport, 0, seq + 1, packet::kTcpRst | packet::kTcpAck, 0, 0, {}};
      cev.push_back({t + 200'000, must(packet::build_tcp(iip, rst)), false});
      continue;
    }
    if (oc == Outcome::lost_forward) continue;

    // As the server sees it.
    IpSpec sip = cip;
    if (path.nat_src) sip.src = *path.nat_src;
    sip.ttl = static_cast<std::uint8_t>(cip.ttl - path.forward_hops);
    if (path.set_dscp) sip.tos = static_cast<std::uint8_t>(*path.set_dscp << 2 | (cip.tos & 3));
    const std::uint16_t s_sport = path.nat_sport_base ? static_cast<std::uint16_t>(*path.nat_sport_base + i) : sport;
    const std::uint32_t s_seq = seq + path.seq_delta;
    auto seen = build_probe(sip, s_sport, s_seq, forward_options(path, opts));
    const Nanos s_rx = t + path.one_way_ns + path.clock_offset_ns;
    sev.push_back({s_rx, seen, false});
    if (oc == Outcome::duplicated) sev.push_back({s_rx + 10'000, seen, false});
    if (oc == Outcome::unanswered) continue;

    // The server's answer, and what of it reaches the client.
    const Nanos s_tx = s_rx + path.turnaround_ns;
    const Nanos c_rx = s_tx - path.clock_offset_ns + path.one_way_ns;
    IpSpec srv{path.server, sip.src, 0, 64, 0, true, v6 ? (0x50000u + i) & 0xfffffu : 0u};
    IpSpec cli = srv;
    cli.dst = path.client;
    cli.ttl = static_cast<std::uint8_t>(srv.ttl - path.reverse_hops);
    std::vector<std::uint8_t> sent, got;
    if (oc == Outcome::server_icmp) {
      sent = must(packet::build_icmp(srv, error_type(v6), error_code(v6), 0, seen));
      got = must(packet::build_icmp(cli, error_type(v6), error_code(v6), 0, probe));
    } else if (plan.l4 == Plan::L4::udp) {
      sent = must(packet::build_udp(srv, plan.dport, s_sport, tagv));
      got = must(packet::build_udp(cli, plan.dport, sport, tagv));
    } else if (plan.l4 == Plan::L4::icmp) {
      std::uint8_t type = v6 ? 129 : 0;
      std::uint32_t rest = std::uint32_t{plan.key.icmp_ident()} << 16 | (i & 0xffffu);
      sent = must(packet::build_icmp(srv, type, 0, rest, tagv));
      got = must(packet::build_icmp(cli, type, 0, rest, tagv));
    } else if (oc == Outcome::answered_rst) {
      sent = must(packet::build_tcp(srv, TcpSpec{plan.dport, s_sport, 0, s_seq + 1, packet::kTcpRst | packet::kTcpAck, 0, 0, {}}));
      got = must(packet::build_tcp(cli, TcpSpec{plan.dport, sport, 0, seq + 1, packet::kTcpRst | packet::kTcpAck, 0, 0, {}}));
    } else {
      const std::uint32_t isn = 0x10000000u + i * 7919u;
      std::vector<TcpOption> ropts = {TcpOption::mss(1460), TcpOption::sack_perm(), TcpOption::timestamp(5000 + i, tsval),
                                      TcpOption::nop(), TcpOption::wscale(7)};
      sent = must(packet::build_tcp(srv, TcpSpec{plan.dport, s_sport, isn, s_seq + 1, packet::kTcpSyn | packet::kTcpAck, 65160, 0, ropts}));
      if (path.clamp_reply_mss) ropts[0] = TcpOption::mss(*path.clamp_reply_mss);
      got = must(packet::build_tcp(cli, TcpSpec{plan.dport, sport, isn + path.server_isn_delta, seq + 1,
                                                packet::kTcpSyn | packet::kTcpAck, 65160, 0, ropts}));
    }
    sev.push_back({s_tx, sent, true});
    if (oc == Outcome::reply_lost) continue;
    cev.push_back({c_rx, got, false});
    if (path.client_rst && plan.l4 == Plan::L4::tcp && oc == Outcome::answered) {
      // No socket owns the flow, so the client kernel resets it: seq = the SYN-ACK's ack.
      IpSpec rip{path.client, path.server, 0, 64, 0, true, 0};
      auto rst = must(packet::build_tcp(rip, TcpSpec{sport, plan.dport, seq + 1, 0, packet::kTcpRst, 0, 0, {}}));
      cev.push_back({c_rx + 20'000, rst, true});
      IpSpec srip = rip;
      if (path.nat_src) srip.src = *path.nat_src;
      srip.ttl = static_cast<std::uint8_t>(rip.ttl - path.forward_hops);
      auto seen_rst = must(packet::build_tcp(srip, TcpSpec{s_sport, plan.dport, s_seq + 1, 0, packet::kTcpRst, 0, 0, {}}));
      sev.push_back({c_rx + 20'000 + path.one_way_ns + path.clock_offset_ns, seen_rst, false});
    }
  }
  auto by_time = [](const Event& a, const Event& b) { return a.ts < b.ts; };
  std::stable_sort(cev.begin(), cev.end(), by_time);
  std::stable_sort(sev.begin(), sev.end(), by_time);
  for (const auto& e : cev) append_ip(out.client, e.ts, e.ip, e.outgoing);
  for (const auto& e : sev) append_ip(out.server, e.ts, e.ip, e.outgoing);
  return out;
}

}  // namespace tandem::synth
