// Synthetic capture pairs for correlation tests and benchmarks: what a client and a server capture
// would hold when probes cross a modelled path (NAT, sequence rewriting, DSCP/MSS/option rewriting,
// loss, injected resets, ICMP errors from a router, clock offset), built with common/packet's
// builders. Deterministic: same inputs, same bytes.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "common/packet/addr.hpp"
#include "common/packet/tcp_option.hpp"
#include "common/probe/identity.hpp"
#include "controller/correlate/model.hpp"

namespace tandem::synth {

// What happens to one probe on the modelled path.
enum class Outcome : std::uint8_t {
  answered,      // server answers SYN-ACK (UDP: echoes the datagram; ICMP: echo reply), it arrives
  answered_rst,  // server answers RST (closed port), it arrives
  server_icmp,   // server itself answers ICMP (3/13 v4, 1/1 v6) quoting the probe; it arrives
  lost_forward,  // dropped between client and server
  unanswered,    // server sees it, sends nothing
  reply_lost,    // server answers, the answer is dropped on the way back
  injected_rst,  // a middlebox drops it and answers RST from `injector` (nft reject with tcp reset)
  icmp_error,    // a router drops it and answers ICMP 3/13 (v6: 1/1) from `router`
  not_sent,      // never left the client (absent from the client capture)
  duplicated,    // arrives at the server twice (a duplicating middlebox), answered once
};

struct Path {
  packet::IpAddr client = *packet::IpAddr::parse("10.77.1.2");
  packet::IpAddr server = *packet::IpAddr::parse("10.77.2.2");
  packet::IpAddr router = *packet::IpAddr::parse("10.77.1.1");
  std::optional<packet::IpAddr> injector;       // default: the server's address (spoofed, as nft does)
  std::optional<packet::IpAddr> nat_src;        // masquerade: the source the server sees
  std::optional<std::uint16_t> nat_sport_base;  // NAT port rewrite: probe i leaves as base + i
  std::uint32_t seq_delta = 0;                  // forward seq rewrite (ack fixed back on return)
  std::uint32_t server_isn_delta = 0;           // reverse seq rewrite of the server's ISN
  std::optional<std::uint8_t> set_dscp;         // forward DSCP rewrite
  std::optional<std::uint16_t> clamp_mss;       // forward MSS clamp (if larger)
  std::optional<std::uint16_t> clamp_reply_mss; // reverse MSS clamp on the SYN-ACK
  bool strip_sack_perm = false;                 // forward: SACK-permitted overwritten with NOPs
  bool rotate_options = false;                  // forward: first option moved to the end
  int forward_hops = 1, reverse_hops = 1;
  Nanos one_way_ns = 400'000;
  Nanos turnaround_ns = 30'000;
  Nanos clock_offset_ns = 0;  // server clock minus client clock
  bool client_rst = false;    // the client kernel answers each SYN-ACK with a bare RST (raw-socket probes)
  int client_linktype = 101, server_linktype = 101;  // LINKTYPE_RAW, ETHERNET (1) or LINUX_SLL2 (276)
};

struct Plan {
  enum class L4 { tcp, udp, icmp } l4 = L4::tcp;
  probe::RunKey key{0x1234abcd};
  std::uint16_t dport = 21;
  std::vector<packet::TcpOption> options;  // default: the Linux SYN set
  std::uint8_t tos = 0;
  bool df = false;
  Nanos start_ns = 1'700'000'000'000'000'000;
  Nanos interval_ns = 5'000'000;
  std::function<std::uint16_t(std::uint32_t)> sport;  // default: 40000 + i
  bool zero_ip_id = false;                 // IP ID 0 (Linux SYNs with DF), flow label 0 on v6
  std::optional<std::uint32_t> tsval;      // default: the Linux-like 1000 + i; set to fix it
  std::uint32_t first_index = 0;           // outcomes[i] is probe first_index + i (chunked generation)
};

struct Pair {
  correlate::CaptureSide client, server;
  correlate::RunManifest manifest;  // key, count, client, target, dport, l4
};

// outcomes[i] is the fate of probe first_index + i on the path. Packets are stored in time order on each side.
Pair synthesize(const Path& path, const Plan& plan, const std::vector<Outcome>& outcomes);

// Appends one IP packet to a capture side, wrapped in the side's link type (outgoing marks SLL2).
void append_ip(correlate::CaptureSide& side, Nanos ts, const std::vector<std::uint8_t>& ip, bool outgoing);

}  // namespace tandem::synth
