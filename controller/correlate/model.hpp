// The correlation data model: what goes into correlate() (two captures and an optional manifest)
// and what comes out (one record per probe with its fate, the field changes seen in transit, and
// per-packet annotations for merged.pcapng). diagnose/ and report/ read only these types, so
// `tandem trace`, `tandem lab run` and `tandem analyze` all end in the same code path.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/base/clock.hpp"
#include "common/packet/addr.hpp"
#include "common/pcapio/packet.hpp"

namespace tandem::correlate {

// DESIGN.md §5: exactly one fate per probe.
enum class Fate : std::uint8_t {
  answered,      // reached the server, its reply left it and reached the client
  lost_forward,  // left the client, never seen at the server
  unanswered,    // seen at the server, the server sent nothing back
  reply_lost,    // the server replied, the reply never reached the client
  injected,      // the client got a reply (RST, SYN-ACK, ICMP) the server never sent
  icmp_error,    // the client got an ICMP error quoting the probe (hop address recorded)
  not_sent,      // absent from the client's own capture (local problem)
  unknown,       // evidence missing (capture drops, a capture absent, ambiguity): never guess
};
inline constexpr std::size_t kFateCount = 8;
std::string_view fate_name(Fate f);
std::optional<Fate> fate_from_name(std::string_view name);

enum class Direction : std::uint8_t { forward, reverse };  // forward = client -> server
std::string_view direction_name(Direction d);

struct ClockEstimate {
  Nanos offset_ns = 0;  // server clock minus client clock
  Nanos error_ns = 0;   // |true offset - offset_ns| <= error_ns
  std::string source;   // "clock-probe" (agents' exchange), "probes" (estimated from matched pairs), "none"
};

// One variant of a bisection (or the single variant of a trace).
struct Variant {
  std::string name;         // "baseline", "mss+ws", ...
  std::string tcp_options;  // canonical text (probe::format_tcp_options)
  std::uint8_t tos = 0;
  std::string sport;        // probe::format_sport
  std::uint8_t ttl = 0;     // IPv4 TTL / IPv6 hop limit the probes were sent with; 0 = OS default
};

// What the controller knows about the run beyond the captures. Every field is optional: `tandem
// analyze` on two tcpdump files has none of it and falls back to invariants alone.
struct RunManifest {
  std::optional<std::uint32_t> run_key;  // probe::RunKey::key: exact probe ids from seq / IP ID
  std::optional<std::uint32_t> count;    // probes planned (to detect not_sent)
  std::optional<packet::IpAddr> client;  // the client's source address as sent
  std::optional<packet::IpAddr> target;  // the destination as the client addressed it
  // The server's own address as its capture shows it, when the server side holds several servers'
  // captures (a multi-target run): the one this run's probes go to. Unset: the capture's own
  // `local`, else the address that receives the most probe-shaped packets.
  std::optional<packet::IpAddr> server;
  std::optional<std::uint16_t> dport;
  std::string l4 = "tcp";                // tcp | udp | icmp; "" = infer from the client capture
  std::vector<Variant> variants;         // empty: one implicit variant
  std::vector<std::uint16_t> probe_variant;  // probe id -> index into variants (empty: all 0)
  std::optional<ClockEstimate> clock;    // from the agents' clock exchange
  Nanos reply_timeout_ns = 1'000'000'000;  // how long after a probe its first reply may still come
  // How long after a probe the server's retransmissions of its reply are still counted (Linux
  // retransmits a SYN-ACK 5 times over about a minute).
  Nanos retransmit_window_ns = 75'000'000'000;
};

// One end's capture as the correlator sees it.
struct CaptureSide {
  bool present = false;          // false: that end has no capture at all (fates become unknown)
  int linktype = 0;              // LINKTYPE_* of every packet in `packets`
  pcapio::PacketBuffer packets;  // in capture order
  pcapio::CaptureStats stats;    // stats.available false = drops unknown
  std::optional<packet::IpAddr> local;  // this end's own address, if known
  // Taken by a tandem agent on the run's own flows for the whole run (trace, bisect): an empty
  // capture then means that nothing arrived. A file taken by hand is not vouched for: it may come
  // from the wrong interface, one direction only or another time (DESIGN.md §8), and the
  // evidence checks of docs/correlation.md apply.
  bool vouched = false;
};

// A field that differs between what one end sent and what the other received. Values are JSON so
// that numbers stay numbers ("sent":1460) and a removed option is null.
struct FieldChange {
  Direction direction = Direction::forward;
  std::string field;  // DESIGN.md §5 names: ip.dscp, tcp.option.mss, tcp.options.order, ...
  nlohmann::json sent;
  nlohmann::json received;
};

inline constexpr std::uint32_t kNoPacket = 0xffffffffu;

struct ProbeRecord {
  std::uint32_t id = 0;
  std::uint16_t variant = 0;
  std::uint16_t sport = 0;       // as sent by the client
  Fate fate = Fate::unknown;
  std::string reply;             // "syn_ack", "rst", "icmp:3/13", "udp", "" for none
  std::optional<std::int64_t> rtt_us;   // client send -> client receive of the reply
  std::optional<packet::IpAddr> hop;    // ICMP error source, or the injector's address
  std::optional<int> forward_hops;      // sent TTL - TTL seen at the server
  std::optional<int> reverse_hops;      // server's TTL - TTL seen at the client
  std::string note;              // why unknown / ambiguity, "" otherwise
  // Copies of the reply (DESIGN.md §8): how many the server sent for this sighting (its first
  // reply and its retransmissions, until the next copy of the probe) and how many of them reached
  // the client. Both 0 when no reply is known.
  std::uint16_t replies_sent = 0, replies_received = 0;
  std::vector<FieldChange> changes;
  // Packet indices (into each side's PacketBuffer), kNoPacket when absent.
  std::uint32_t client_probe = kNoPacket, server_probe = kNoPacket;
  std::uint32_t server_reply = kNoPacket, client_reply = kNoPacket;
  // Timestamps on each end's own clock (ns), 0 when absent.
  Nanos client_tx_ns = 0, server_rx_ns = 0, server_tx_ns = 0, client_rx_ns = 0;
};

// The checksum a probe arrived at the server with wrong ("ip.checksum", "tcp.checksum",
// "udp.checksum"; "" when none): correlate checks it for unanswered probes (outcome.cpp), and such
// a probe was corrupted on the way rather than ignored by the server.
inline std::string bad_checksum_field(const ProbeRecord& p) {
  for (const auto& c : p.changes) {
    if (c.direction == Direction::forward && c.field.ends_with(".checksum")) return c.field;
  }
  return {};
}

// Changes aggregated over probes: what the §5 "findings" array lists.
struct Finding {
  std::string code = "modified";
  Direction direction = Direction::forward;
  std::string field;
  nlohmann::json sent;
  nlohmann::json received;
  std::uint64_t probes = 0;
  // Distinct (sent, received) pairs merged into this finding. Fields that change per probe (a NAT's
  // source ports, a rewritten sequence number) would otherwise list one finding per probe; above a
  // few pairs they are merged into one finding whose sent/received are one example pair.
  std::uint64_t distinct = 1;
};

// A flow of probe-shaped packets in the client capture (client, destination, port): the one
// analysed and every other one, so that a reader sees what was left out.
struct FlowCount {
  packet::IpAddr client, target;
  std::uint16_t dport = 0;  // 0 for ICMP
  std::uint64_t probes = 0;
  bool analysed = false;
};

// Something a capture cannot prove (DESIGN.md §8 "No evidence, no blame"): the probes it concerns
// are unknown rather than blamed on the path. `code` is stable (report.json), `text` says what was
// seen, `retake` how to take the capture again.
struct CaptureProblem {
  std::string side;  // "client" | "server"
  std::string code;  // no_server_packets, no_outbound, no_probes_seen, outside_time_span, ends_early,
                     // snaplen, duplicates, file_truncated
  std::string text;
  std::string retake;
  std::uint64_t probes = 0;  // probes made unknown by it (0: a warning that changes no fate)
};

struct Correlation {
  std::vector<ProbeRecord> probes;  // by id
  std::vector<Finding> findings;    // sorted: direction, field, most probes first
  ClockEstimate clock;
  pcapio::CaptureStats client_stats, server_stats;
  bool client_present = false, server_present = false;
  std::uint64_t client_packets = 0, server_packets = 0;
  std::uint64_t unmatched_client = 0, unmatched_server = 0;  // packets about no probe
  std::uint64_t ambiguous = 0;
  // Per packet: the probe id it belongs to, or -1 (for merged.pcapng comments).
  std::vector<std::int32_t> client_packet_probe, server_packet_probe;
  std::vector<Variant> variants;  // copied from the manifest (or one implicit "default")
  // Who was who, as correlate() decided it (given by the manifest / CaptureSide::local, else
  // inferred from the captures: docs/correlation.md "Endpoints").
  std::optional<packet::IpAddr> client, target, server;
  std::optional<std::uint16_t> dport;
  std::string l4;
  std::vector<FlowCount> flows;  // most probes first; the analysed one has analysed = true
  std::vector<CaptureProblem> capture_problems;
  std::uint64_t client_duplicates = 0, server_duplicates = 0;  // second sightings folded into one
};

}  // namespace tandem::correlate
