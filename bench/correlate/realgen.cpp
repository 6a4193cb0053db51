// tandem-corrgen --real: a capture pair shaped like what tcpdump writes on a real kernel client and
// server (not like tandem's probes), for the no-manifest path that hand-taken captures take.
//
// Per connection of the main flow (10.77.1.2 -> 10.77.2.2:21), one every 100 us:
//   - the SYN has its own random ISN, source port (32768-60999, reused as a real client does),
//     TSval base; every copy its own IP ID and a TSval that advances with the client's ms clock;
//   - each copy is dropped on the way with probability 30 % (at most two in a row); a dropped copy
//     is retransmitted 1 s and then 3 s after the first (Linux's RTO backoff), same seq and sport;
//   - of the copies that arrive, 10 % have their SYN-ACK dropped on the way back; the server
//     retransmits it 1 s later (new TSval, same seq), it arrives, and the client's SYN timer,
//     which would fire a little later, never does;
//   - then the client's ACK, its FIN-ACK, the server's FIN-ACK and the last ACK, on both sides.
// Mixed in: 5 % of connections go from the client to port 80 of the same server (another flow on
// both captures), and another client (10.77.1.3) opens connections to port 21 at 1/10 the rate,
// seen only by the server. Timestamps in microseconds, as tcpdump writes them; server clock
// 1.234 ms ahead; one-way delay 400 us.
//
// The truth — what each SYN copy of the main flow became — goes to DIR/truth.txt, one
// "fate count" a line, for tandem-corrbench to compare with tandem's fates.
#include "bench/correlate/realgen.hpp"

#include <algorithm>
#include <cstdio>
#include <map>
#include <vector>

#include <fmt/core.h>

#include "common/packet/build.hpp"
#include "common/pcapio/pcap_writer.hpp"
#include "common/probe/spec.hpp"

namespace tandem::bench {
namespace {

using packet::IpAddr;
using packet::IpSpec;
using packet::TcpOption;
using packet::TcpSpec;
using Nanos = std::int64_t;

// splitmix64: a fixed seed gives the same files on every machine.
struct Rng {
  std::uint64_t s;
  std::uint64_t next() {
    std::uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  std::uint32_t u32() { return static_cast<std::uint32_t>(next() >> 32); }
  bool chance(unsigned percent) { return next() % 100 < percent; }
};

struct Event {
  Nanos ts;
  std::uint64_t order;  // ties keep generation order
  std::vector<std::uint8_t> ip;
};

std::vector<std::uint8_t> must(Result<std::vector<std::uint8_t>> r) {
  if (!r) {
    std::fprintf(stderr, "tandem-corrgen: %s\n", r.error().text().c_str());
    std::exit(2);
  }
  return std::move(r).value();
}

class Side {
 public:
  explicit Side(pcapio::PcapWriter w) : w_(std::move(w)) {}
  void add(Nanos ts, std::vector<std::uint8_t> ip) { ev_.push_back({ts / 1000 * 1000, order_++, std::move(ip)}); }
  // Writes, in time order, every event before `until` (no later connection can add one earlier).
  bool flush(Nanos until) {
    std::sort(ev_.begin(), ev_.end(), [](const Event& a, const Event& b) { return a.ts != b.ts ? a.ts < b.ts : a.order < b.order; });
    std::size_t k = 0;
    for (; k < ev_.size() && ev_[k].ts < until; ++k) {
      frame_.assign({0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00});
      frame_.insert(frame_.end(), ev_[k].ip.begin(), ev_[k].ip.end());
      if (auto st = w_.write(pcapio::PacketView{ev_[k].ts, static_cast<std::uint32_t>(frame_.size()), frame_}); !st) {
        std::fprintf(stderr, "tandem-corrgen: %s\n", st.error().text().c_str());
        return false;
      }
      ++written_;
    }
    ev_.erase(ev_.begin(), ev_.begin() + static_cast<std::ptrdiff_t>(k));
    return true;
  }
  bool close() {
    if (!flush(INT64_MAX)) return false;
    if (auto st = w_.close(); !st) {
      std::fprintf(stderr, "tandem-corrgen: %s\n", st.error().text().c_str());
      return false;
    }
    return true;
  }
  std::uint64_t written() const { return written_; }

 private:
  pcapio::PcapWriter w_;
  std::vector<Event> ev_;
  std::vector<std::uint8_t> frame_;
  std::uint64_t order_ = 0, written_ = 0;
};

constexpr Nanos kMs = 1'000'000;
constexpr Nanos kOneWay = 400'000;
constexpr Nanos kOffset = 1'234'000;  // server clock minus client clock
constexpr Nanos kInterval = 100'000;

struct Truth {
  std::map<std::string, std::uint64_t> fates;
  std::uint64_t copies = 0;
};

// One TCP connection attempt from `cli` to `srv`:`dport` starting at t (client clock). Packets the
// client capture holds go to `c` (null: the client capture does not see this client), packets the
// server capture holds to `s`. Fates of the SYN copies go to `truth` when given.
void connection(Rng& rng, Side* c, Side& s, const IpAddr& cli, const IpAddr& srv, std::uint16_t dport, Nanos t,
                Truth* truth) {
  const auto sport = static_cast<std::uint16_t>(32768 + rng.next() % (61000 - 32768));
  const std::uint32_t isn = rng.u32(), s_isn = rng.u32();
  const std::uint32_t ts0 = rng.u32(), s_ts0 = rng.u32();
  auto tsv = [&](Nanos at) { return static_cast<std::uint32_t>(ts0 + static_cast<std::uint32_t>(at / kMs)); };
  auto s_tsv = [&](Nanos at) { return static_cast<std::uint32_t>(s_ts0 + static_cast<std::uint32_t>(at / kMs)); };
  const Nanos rto[3] = {0, 1000 * kMs, 3000 * kMs};
  auto syn_opts = probe::linux_syn_options();
  Nanos arrived = -1;  // client time of the copy that got through
  for (int copy = 0; copy < 3; ++copy) {
    const Nanos tc = t + rto[copy];
    for (auto& o : syn_opts) {
      if (o.kind == packet::kTcpOptTimestamp) o = TcpOption::timestamp(tsv(tc), 0);
    }
    IpSpec ip{cli, srv, 0, 64, static_cast<std::uint16_t>(rng.next()), true, 0};
    TcpSpec syn{sport, dport, isn, 0, packet::kTcpSyn, 64240, 0, syn_opts};
    if (c) c->add(tc, must(packet::build_tcp(ip, syn)));
    const bool dropped = copy < 2 && rng.chance(30);
    if (dropped) {
      if (truth) ++truth->fates["lost_forward"];
      if (truth) ++truth->copies;
      continue;
    }
    ip.ttl = 63;
    s.add(tc + kOneWay + kOffset, must(packet::build_tcp(ip, syn)));
    arrived = tc;
    break;
  }
  // The server's SYN-ACK (IP ID 0 with DF, as Linux sends it), perhaps dropped once.
  const Nanos s_rx = arrived + kOneWay + kOffset, s_tx = s_rx + 30'000;
  const bool reply_dropped = rng.chance(10);
  if (truth) {
    ++truth->fates[reply_dropped ? "reply_lost" : "answered"];
    ++truth->copies;
  }
  auto synack = [&](Nanos at, std::uint8_t ttl) {
    std::vector<TcpOption> o = {TcpOption::mss(1460), TcpOption::sack_perm(), TcpOption::timestamp(s_tsv(at), tsv(arrived)),
                                TcpOption::nop(), TcpOption::wscale(7)};
    return must(packet::build_tcp(IpSpec{srv, cli, 0, ttl, 0, true, 0},
                                  TcpSpec{dport, sport, s_isn, isn + 1, packet::kTcpSyn | packet::kTcpAck, 65160, 0, o}));
  };
  s.add(s_tx, synack(s_tx, 64));
  Nanos s_last = s_tx;
  if (reply_dropped) {
    s_last = s_tx + 1000 * kMs;
    s.add(s_last, synack(s_last, 64));
  }
  if (c) c->add(s_last - kOffset + kOneWay, synack(s_last, 63));
  // The rest of the connection: ACK, FIN-ACK from the client, FIN-ACK from the server, last ACK.
  Nanos tc = s_last - kOffset + kOneWay + 20'000;
  auto seg = [&](bool from_client, Nanos at_client, std::uint32_t seq, std::uint32_t ack, std::uint8_t flags) {
    const IpAddr& src = from_client ? cli : srv;
    const IpAddr& dst = from_client ? srv : cli;
    std::vector<TcpOption> o = {TcpOption::nop(), TcpOption::nop(),
                                from_client ? TcpOption::timestamp(tsv(at_client), s_tsv(s_last))
                                            : TcpOption::timestamp(s_tsv(at_client + kOffset), tsv(at_client))};
    const auto id = static_cast<std::uint16_t>(rng.next());
    TcpSpec spec{from_client ? sport : dport, from_client ? dport : sport, seq, ack, flags, 502, 0, o};
    auto sent = must(packet::build_tcp(IpSpec{src, dst, 0, 64, id, true, 0}, spec));
    auto got = must(packet::build_tcp(IpSpec{src, dst, 0, 63, id, true, 0}, spec));
    if (from_client) {
      if (c) c->add(at_client, std::move(sent));
      s.add(at_client + kOneWay + kOffset, std::move(got));
    } else {
      s.add(at_client + kOffset, std::move(sent));
      if (c) c->add(at_client + kOneWay, std::move(got));
    }
  };
  seg(true, tc, isn + 1, s_isn + 1, packet::kTcpAck);
  seg(true, tc + 50'000, isn + 1, s_isn + 1, packet::kTcpFin | packet::kTcpAck);
  seg(false, tc + 50'000 + kOneWay + 40'000, s_isn + 1, isn + 2, packet::kTcpFin | packet::kTcpAck);
  seg(true, tc + 50'000 + 2 * kOneWay + 60'000, isn + 2, s_isn + 2, packet::kTcpAck);
}

}  // namespace

int generate_real(const std::string& dir, std::uint32_t connections) {
  auto cw = pcapio::PcapWriter::create(dir + "/client.pcap", 1);
  auto sw = pcapio::PcapWriter::create(dir + "/server.pcap", 1);
  if (!cw || !sw) {
    std::fprintf(stderr, "tandem-corrgen: %s\n", (!cw ? cw.error() : sw.error()).text().c_str());
    return 2;
  }
  Side c(std::move(*cw)), s(std::move(*sw));
  const IpAddr client = *IpAddr::parse("10.77.1.2"), other = *IpAddr::parse("10.77.1.3");
  const IpAddr server = *IpAddr::parse("10.77.2.2");
  Rng rng{0x7a6d656e74ull};
  Truth truth;
  const Nanos start = 1'700'000'000'000'000'000;
  constexpr std::uint32_t kChunk = 10'000;
  std::uint64_t main_conns = 0, port80 = 0, others = 0;
  for (std::uint32_t first = 0; first < connections; first += kChunk) {
    const std::uint32_t end = std::min(connections, first + kChunk);
    for (std::uint32_t i = first; i < end; ++i) {
      const Nanos t = start + static_cast<Nanos>(i) * kInterval;
      if (rng.chance(5)) {
        connection(rng, &c, s, client, server, 80, t, nullptr);
        ++port80;
      } else {
        connection(rng, &c, s, client, server, 21, t, &truth);
        ++main_conns;
      }
      if (i % 10 == 5) {
        connection(rng, nullptr, s, other, server, 21, t + 50'000, nullptr);
        ++others;
      }
    }
    // Every later connection starts at or after this time (client clock); the server clock is ahead.
    const Nanos next = start + static_cast<Nanos>(end) * kInterval;
    if (!c.flush(next) || !s.flush(next)) return 2;
  }
  if (!c.close() || !s.close()) return 2;
  std::FILE* f = std::fopen((dir + "/truth.txt").c_str(), "w");
  if (!f) {
    std::fprintf(stderr, "tandem-corrgen: cannot write %s/truth.txt\n", dir.c_str());
    return 2;
  }
  // The main flow's SYN copies and what each became; tandem-corrbench compares its fates with these.
  std::fprintf(f, "probes %llu\n", static_cast<unsigned long long>(truth.copies));
  for (const auto& [fate, n] : truth.fates) std::fprintf(f, "%s %llu\n", fate.c_str(), static_cast<unsigned long long>(n));
  std::fclose(f);
  fmt::print("wrote {} connections to 10.77.2.2:21 ({} SYN copies), {} to port 80, {} from another client; "
             "{} client + {} server packets to {}\n",
             main_conns, truth.copies, port80, others, c.written(), s.written(), dir);
  return 0;
}

}  // namespace tandem::bench
