// tandem-corrgen DIR [PROBES]: writes DIR/client.pcap, DIR/server.pcap (Ethernet, ns timestamps)
// and DIR/manifest.txt (run key and count) for a run of PROBES probes (default 1,000,000) at
// 10,000 probes/s with a fixed mix of fates, generated in chunks to keep memory flat.
// tandem-corrgen DIR [CONNECTIONS] --real: instead, captures shaped like a real kernel client's and
// server's (random ISNs and ports, retransmitted SYNs and SYN-ACKs, other flows; realgen.cpp) and
// DIR/truth.txt, the fate of every SYN copy, for the no-manifest path.
#include <cstdio>
#include <cstdlib>
#include <string>

#include <fmt/core.h>

#include "bench/correlate/realgen.hpp"
#include "common/pcapio/pcap_writer.hpp"
#include "tests/unit/correlate/synth_capture.hpp"

namespace {

using tandem::synth::Outcome;

// Per mille: 80 % answered, 5 % RST, 5 % lost_forward, 4 % unanswered, 3 % reply_lost,
// 1 % injected RST, 1 % ICMP error, 1 % not sent.
Outcome outcome_of(std::uint32_t i) {
  std::uint32_t x = i * 2654435761u;
  std::uint32_t r = (x ^ (x >> 15)) % 1000;
  if (r < 800) return Outcome::answered;
  if (r < 850) return Outcome::answered_rst;
  if (r < 900) return Outcome::lost_forward;
  if (r < 940) return Outcome::unanswered;
  if (r < 970) return Outcome::reply_lost;
  if (r < 980) return Outcome::injected_rst;
  if (r < 990) return Outcome::icmp_error;
  return Outcome::not_sent;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: tandem-corrgen DIR [PROBES] [--no-client-rst | --real]\n");
    return 1;
  }
  std::string dir = argv[1];
  std::uint32_t probes = argc > 2 ? static_cast<std::uint32_t>(std::strtoul(argv[2], nullptr, 10)) : 1'000'000;
  if (argc > 3 && std::string(argv[3]) == "--real") return tandem::bench::generate_real(dir, probes);
  auto cw = tandem::pcapio::PcapWriter::create(dir + "/client.pcap", 1);
  auto sw = tandem::pcapio::PcapWriter::create(dir + "/server.pcap", 1);
  if (!cw || !sw) {
    std::fprintf(stderr, "tandem-corrgen: %s\n", (!cw ? cw.error() : sw.error()).text().c_str());
    return 2;
  }
  tandem::synth::Path path;
  path.client_linktype = path.server_linktype = 1;
  path.clock_offset_ns = 1'234'567;
  // As in real captures the client kernel resets every answered flow (--no-client-rst: as before
  // 2026-11-23, for comparing with older runs).
  path.client_rst = !(argc > 3 && std::string(argv[3]) == "--no-client-rst");
  tandem::synth::Plan plan;
  plan.interval_ns = 100'000;
  constexpr std::uint32_t kChunk = 10'000;
  std::uint64_t npk = 0;
  for (std::uint32_t first = 0; first < probes; first += kChunk) {
    std::vector<Outcome> oc;
    for (std::uint32_t i = first; i < std::min(probes, first + kChunk); ++i) oc.push_back(outcome_of(i));
    plan.first_index = first;
    auto pair = tandem::synth::synthesize(path, plan, oc);
    for (auto p : pair.client.packets) {
      if (auto st = cw->write(p); !st) { std::fprintf(stderr, "%s\n", st.error().text().c_str()); return 2; }
    }
    for (auto p : pair.server.packets) {
      if (auto st = sw->write(p); !st) { std::fprintf(stderr, "%s\n", st.error().text().c_str()); return 2; }
    }
    npk += pair.client.packets.size() + pair.server.packets.size();
  }
  if (auto st = cw->close(); !st) { std::fprintf(stderr, "%s\n", st.error().text().c_str()); return 2; }
  if (auto st = sw->close(); !st) { std::fprintf(stderr, "%s\n", st.error().text().c_str()); return 2; }
  if (FILE* f = std::fopen((dir + "/manifest.txt").c_str(), "w")) {
    std::fprintf(f, "key %u\ncount %u\n", plan.key.key, probes);
    std::fclose(f);
  }
  fmt::print("wrote {} probes, {} packets to {}\n", probes, npk, dir);
  return 0;
}
