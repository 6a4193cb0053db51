// tandem-gen-scenarios OUTDIR: writes the golden capture pairs of tests/scenarios/ — for each
// scenario OUTDIR/<name>/client.pcap, server.pcap and (for most) manifest.json.
//
// The captures are synthetic but shaped like `tcpdump -i eth0` on the two ends of the lab of
// DESIGN.md §4 (client 10.77.1.2, middlebox 10.77.1.1 | 10.77.2.1, server 10.77.2.2, one routed
// hop): Ethernet frames, a 1 ms one-way delay, a server clock 3 ms ahead of the client's, the
// server's SYN-ACK and the client kernel's RST that answers it. Probes carry tandem's identity
// (probe::RunKey with a fixed key) so correlate() can match them exactly, as in a real trace.
// Everything is fixed (timestamps, ports, sequence numbers): running this twice gives the same bytes.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/packet/build.hpp"
#include "common/pcapio/pcap_writer.hpp"
#include "common/probe/identity.hpp"
#include "common/probe/spec.hpp"

namespace {

using tandem::Nanos;
using tandem::packet::IpAddr;
using tandem::packet::TcpOption;

constexpr std::uint32_t kRunKey = 0x7a3d1e5f;
constexpr std::uint32_t kCount = 20;
constexpr std::uint16_t kDport = 21;
constexpr std::uint16_t kSportBase = 40000;
constexpr Nanos kT0 = 1'700'000'000'000'000'000;  // 2023-11-14 22:13:20 UTC, client clock
constexpr Nanos kGap = 10'000'000;                 // 100 probes/s
constexpr Nanos kOneWay = 1'000'000;               // client <-> server, either way
constexpr Nanos kHalfWay = 400'000;                // client <-> middlebox
constexpr Nanos kServerAhead = 3'000'000;          // server clock - client clock
constexpr Nanos kServerTurn = 50'000;              // SYN -> SYN-ACK inside the server
constexpr Nanos kClientRst = 30'000;               // SYN-ACK -> the client kernel's RST

// What the path does to one probe.
enum class Fate { answered, lost_forward, reply_lost, unanswered, injected_rst, icmp_admin };

struct Scenario {
  std::string name;
  std::string description;
  bool v6 = false;
  bool manifest = true;
  std::uint8_t tos = 0;
  bool server_raw_ip = false;  // server capture as LINKTYPE_RAW (e.g. tcpdump -i tun0)
  std::function<Fate(std::uint32_t)> fate = [](std::uint32_t) { return Fate::answered; };
  // Rewrites of the probe in transit (applied to the copy the server sees).
  std::function<void(tandem::packet::IpSpec&, tandem::packet::TcpSpec&)> forward = nullptr;
};

struct Hosts {
  IpAddr client, mbox_client_side, mbox_server_side, server;
};

Hosts hosts(bool v6) {
  if (v6) {
    return {*IpAddr::parse("fd77:1::2"), *IpAddr::parse("fd77:1::1"), *IpAddr::parse("fd77:2::1"),
            *IpAddr::parse("fd77:2::2")};
  }
  return {*IpAddr::parse("10.77.1.2"), *IpAddr::parse("10.77.1.1"), *IpAddr::parse("10.77.2.1"),
          *IpAddr::parse("10.77.2.2")};
}

// Ethernet II: client NIC 02:..:01:02, middlebox 02:..:01:01 / 02:..:02:01, server NIC 02:..:02:02.
std::vector<std::uint8_t> ether(bool to_left, bool left_is_client, const std::vector<std::uint8_t>& ip) {
  std::uint8_t net = left_is_client ? 1 : 2;
  std::uint8_t host_mac[6] = {0x02, 0, 0, 0, net, 0x02};
  std::uint8_t mbox_mac[6] = {0x02, 0, 0, 0, net, 0x01};
  std::vector<std::uint8_t> f;
  const std::uint8_t* dst = to_left ? host_mac : mbox_mac;
  const std::uint8_t* src = to_left ? mbox_mac : host_mac;
  f.insert(f.end(), dst, dst + 6);
  f.insert(f.end(), src, src + 6);
  bool v6 = (ip[0] >> 4) == 6;
  f.push_back(v6 ? 0x86 : 0x08);
  f.push_back(v6 ? 0xdd : 0x00);
  f.insert(f.end(), ip.begin(), ip.end());
  while (f.size() < 60) f.push_back(0);  // Ethernet minimum frame (without FCS)
  return f;
}

template <class T>
T must(tandem::Result<T> r) {
  if (!r) {
    std::fprintf(stderr, "gen_scenarios: %s\n", r.error().text().c_str());
    std::exit(1);
  }
  return std::move(r).value();
}

struct Frame {
  Nanos ts;
  std::vector<std::uint8_t> bytes;
};

void write_pcap(const std::filesystem::path& path, int linktype, std::vector<Frame> frames) {
  std::stable_sort(frames.begin(), frames.end(), [](const Frame& a, const Frame& b) { return a.ts < b.ts; });
  auto w = must(tandem::pcapio::PcapWriter::create(path.string(), linktype, 262144));
  for (const auto& f : frames) {
    tandem::pcapio::PacketView v{f.ts, static_cast<std::uint32_t>(f.bytes.size()), f.bytes};
    if (auto st = w.write(v); !st) must(tandem::Result<int>(st.error()));
  }
  if (auto st = w.close(); !st) must(tandem::Result<int>(st.error()));
}

void generate(const Scenario& s, const std::filesystem::path& out) {
  namespace pk = tandem::packet;
  const Hosts h = hosts(s.v6);
  const tandem::probe::RunKey rk{kRunKey};
  std::vector<Frame> client, server;
  auto at_client = [&](const std::vector<std::uint8_t>& ip, bool inbound) { return ether(inbound, true, ip); };
  auto at_server = [&](const std::vector<std::uint8_t>& ip, bool inbound) {
    return s.server_raw_ip ? ip : ether(inbound, false, ip);
  };

  for (std::uint32_t i = 0; i < kCount; ++i) {
    const Nanos tx = kT0 + static_cast<Nanos>(i) * kGap;
    pk::IpSpec ip;
    ip.src = h.client;
    ip.dst = h.server;
    ip.tos = s.tos;
    ip.ttl = 64;
    ip.ip_id = rk.ip_id(i);
    ip.df = true;
    ip.flow_label = s.v6 ? rk.flow_label(i) : 0;
    pk::TcpSpec tcp;
    tcp.sport = static_cast<std::uint16_t>(kSportBase + i);
    tcp.dport = kDport;
    tcp.seq = rk.tcp_seq(i);
    tcp.flags = pk::kTcpSyn;
    tcp.window = 64240;
    tcp.options = tandem::probe::linux_syn_options();
    client.push_back({tx, at_client(must(pk::build_tcp(ip, tcp)), false)});

    const Fate fate = s.fate(i);
    if (fate == Fate::lost_forward) continue;
    if (fate == Fate::injected_rst) {
      // A middlebox answers in the server's name: its RST starts there with TTL 64.
      pk::IpSpec rip{h.server, h.client, 0, 64, static_cast<std::uint16_t>(0), false, 0};
      pk::TcpSpec rst;
      rst.sport = kDport;
      rst.dport = tcp.sport;
      rst.seq = 0;
      rst.ack = tcp.seq + 1;
      rst.flags = pk::kTcpRst | pk::kTcpAck;
      rst.window = 0;
      client.push_back({tx + 2 * kHalfWay, at_client(must(pk::build_tcp(rip, rst)), true)});
      continue;
    }
    if (fate == Fate::icmp_admin) {
      // nft "reject with icmp admin-prohibited" on the middlebox: it quotes the probe as it arrived.
      auto probe = must(pk::build_tcp(ip, tcp));
      pk::IpSpec eip{h.mbox_client_side, h.client, 0xc0, 64, static_cast<std::uint16_t>(0), false, 0};
      std::uint8_t type = s.v6 ? 1 : 3, code = s.v6 ? 1 : 13;
      client.push_back({tx + 2 * kHalfWay, at_client(must(pk::build_icmp(eip, type, code, 0, probe)), true)});
      continue;
    }

    // The probe as the server sees it: one hop later, maybe rewritten.
    pk::IpSpec sip = ip;
    pk::TcpSpec stcp = tcp;
    sip.ttl = 63;
    if (s.forward) s.forward(sip, stcp);
    const Nanos srx = tx + kOneWay + kServerAhead;
    server.push_back({srx, at_server(must(pk::build_tcp(sip, stcp)), true)});
    if (fate == Fate::unanswered) continue;

    // The server's SYN-ACK goes back to whoever the probe came from (the NAT's address under NAT).
    pk::IpSpec aip{h.server, sip.src, 0, 64, static_cast<std::uint16_t>(0x1000 + i), true, 0};
    pk::TcpSpec ack;
    ack.sport = kDport;
    ack.dport = stcp.sport;
    ack.seq = 0x10000000u + i * 7919u;
    ack.ack = stcp.seq + 1;
    ack.flags = pk::kTcpSyn | pk::kTcpAck;
    ack.window = 65160;
    ack.options = {TcpOption::mss(1460), TcpOption::sack_perm(), TcpOption::timestamp(1000 + i, 1),
                   TcpOption::nop(), TcpOption::wscale(7)};
    const Nanos stx = srx + kServerTurn;
    server.push_back({stx, at_server(must(pk::build_tcp(aip, ack)), false)});
    if (fate == Fate::reply_lost) continue;

    pk::IpSpec cip = aip;
    cip.dst = h.client;  // de-NATed
    cip.ttl = 63;
    const Nanos crx = stx - kServerAhead + kOneWay;
    client.push_back({crx, at_client(must(pk::build_tcp(cip, ack)), true)});

    // The client kernel has no socket for the raw probe and resets the half-open connection.
    pk::IpSpec rip{h.client, h.server, 0, 64, static_cast<std::uint16_t>(0x2000 + i), true, 0};
    pk::TcpSpec rst;
    rst.sport = tcp.sport;
    rst.dport = kDport;
    rst.seq = tcp.seq + 1;
    rst.flags = pk::kTcpRst;
    rst.window = 0;
    client.push_back({crx + kClientRst, at_client(must(pk::build_tcp(rip, rst)), false)});
    pk::IpSpec srip = rip;
    srip.ttl = 63;
    if (s.forward) {
      pk::TcpSpec dummy = rst;
      pk::IpSpec mip = srip;
      s.forward(mip, dummy);
      srip.src = mip.src;  // NAT applies to the whole flow; option rewrites do not matter for a RST
      srip.tos = mip.tos;
    }
    server.push_back({crx + kClientRst + kOneWay + kServerAhead, at_server(must(pk::build_tcp(srip, rst)), true)});
  }

  std::filesystem::create_directories(out);
  write_pcap(out / "client.pcap", tandem::pcapio::linktype::kEthernet, client);
  write_pcap(out / "server.pcap", s.server_raw_ip ? tandem::pcapio::linktype::kRaw : tandem::pcapio::linktype::kEthernet,
             server);
  std::filesystem::remove(out / "manifest.json");
  if (s.manifest) {
    nlohmann::ordered_json m;
    m["run_key"] = kRunKey;
    m["count"] = kCount;
    m["client"] = h.client.to_string();
    m["target"] = h.server.to_string();
    m["dport"] = kDport;
    m["l4"] = "tcp";
    m["variants"] = nlohmann::ordered_json::array(
        {{{"name", "default"}, {"tcp_options", "mss=1460,sack,ts,nop,ws=7"}, {"tos", s.tos},
          {"sport", std::to_string(kSportBase) + "-" + std::to_string(kSportBase + kCount - 1)}}});
    m["rate_pps"] = 100;
    m["reply_timeout_ms"] = 1000;
    std::ofstream(out / "manifest.json") << m.dump(2) << "\n";
  }
  std::ofstream(out / "DESCRIPTION") << s.description << "\n";
}

std::vector<Scenario> scenarios() {
  using tandem::packet::IpSpec;
  using tandem::packet::TcpSpec;
  std::vector<Scenario> v;
  v.push_back({"clean", "Every SYN answered with a SYN-ACK; nothing rewritten."});
  {
    Scenario s{"lost_forward_30", "30 % of the SYNs (6 of 20) dropped by the middlebox before the server."};
    s.fate = [](std::uint32_t i) { return (i * 7) % 10 < 3 ? Fate::lost_forward : Fate::answered; };
    v.push_back(s);
  }
  {
    Scenario s{"reply_lost", "The server answers every SYN; 5 of 20 SYN-ACKs never come back to the client."};
    s.fate = [](std::uint32_t i) { return i % 4 == 1 ? Fate::reply_lost : Fate::answered; };
    v.push_back(s);
  }
  {
    Scenario s{"unanswered", "Every SYN reaches the server, which answers none (host firewall drop)."};
    s.fate = [](std::uint32_t) { return Fate::unanswered; };
    v.push_back(s);
  }
  {
    // Some SYNs get through: a hand-taken server capture holding none of the server's own packets
    // could be from the wrong interface, and proves no injection (DESIGN.md §8).
    Scenario s{"injected_rst",
               "The middlebox resets 3 of every 4 SYNs in the server's name (the server never sees them); the "
               "others reach the server and are answered."};
    s.fate = [](std::uint32_t i) { return i % 4 == 3 ? Fate::answered : Fate::injected_rst; };
    v.push_back(s);
  }
  {
    Scenario s{"icmp_admin_prohibited",
               "The middlebox (10.77.1.1) rejects every SYN with ICMP 3/13 (communication administratively prohibited)."};
    s.fate = [](std::uint32_t) { return Fate::icmp_admin; };
    v.push_back(s);
  }
  {
    Scenario s{"dscp_rewritten", "SYNs sent with DSCP ef (46) arrive with DSCP 0 (nft: ip dscp set cs0)."};
    s.tos = 46 << 2;
    s.forward = [](IpSpec& ip, TcpSpec&) { ip.tos = 0; };
    v.push_back(s);
  }
  {
    Scenario s{"mss_clamped", "MSS 1460 rewritten to 1200 in transit (nft: tcp option maxseg size set 1200)."};
    s.forward = [](IpSpec&, TcpSpec& t) {
      if (!t.options.empty()) t.options[0] = TcpOption::mss(1200);
    };
    v.push_back(s);
  }
  {
    Scenario s{"sack_perm_stripped",
               "SACK-permitted overwritten with NOPs in transit (nft: reset tcp option sack-perm)."};
    s.forward = [](IpSpec&, TcpSpec& t) {
      t.options = {TcpOption::mss(1460), TcpOption::nop(), TcpOption::nop(),
                   TcpOption::timestamp(tandem::probe::kDefaultTsVal, tandem::probe::kDefaultTsEcr), TcpOption::nop(),
                   TcpOption::wscale(7)};
    };
    v.push_back(s);
  }
  {
    Scenario s{"nat_masquerade",
               "The middlebox masquerades: the server sees the SYNs from 10.77.2.1 (ports kept). The server "
               "capture is raw IP (LINKTYPE_RAW), the client's Ethernet."};
    s.server_raw_ip = true;
    s.forward = [](IpSpec& ip, TcpSpec&) { ip.src = *IpAddr::parse("10.77.2.1"); };
    v.push_back(s);
  }
  {
    Scenario s{"ipv6_clean", "IPv6, every SYN answered; no manifest (analyze infers client, target and port)."};
    s.v6 = true;
    s.manifest = false;
    v.push_back(s);
  }
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUTDIR\n", argv[0]);
    return 1;
  }
  for (const auto& s : scenarios()) generate(s, std::filesystem::path(argv[1]) / s.name);
  return 0;
}
