// tandem-corrbench DIR [--no-manifest]: loads DIR/client.pcap and DIR/server.pcap as `tandem analyze`
// reads them (PcapReader into PacketBuffers reserved from the file size), then runs correlate() +
// diagnose() and prints packets/s and memory. Memory is split: the packet store (the captures in
// PacketBuffers, which `tandem analyze` holds anyway) and the correlator's own peak on top of it
// (records, indexes, output), both per packet.
// If DIR/truth.txt exists (tandem-corrgen --real), the fates are compared with it line by line and
// any difference fails the run (exit 3): a speed-up must not change a fate.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <string>
#include <unistd.h>

#include <fmt/core.h>

#include "controller/correlate/correlate.hpp"
#include "controller/diagnose/diagnose.hpp"
#include "controller/report/analyze_input.hpp"

namespace {

long rss_kb() {
  std::ifstream f("/proc/self/statm");
  long size = 0, resident = 0;
  f >> size >> resident;
  return resident * (sysconf(_SC_PAGESIZE) / 1024);
}
long peak_kb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}
double cpu_secs() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}
double secs(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// The captures as `tandem analyze` reads them (the packet store reserved from the file size).
bool load(const std::string& path, tandem::correlate::CaptureSide& side) {
  auto r = tandem::report::read_capture_file(path);
  if (!r) { std::fprintf(stderr, "%s\n", r.error().text().c_str()); return false; }
  side = std::move(*r);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: tandem-corrbench DIR [--no-manifest]\n");
    return 1;
  }
  std::string dir = argv[1];
  bool manifest = !(argc > 2 && std::string(argv[2]) == "--no-manifest");
  tandem::correlate::RunManifest m;
  if (manifest) {
    std::ifstream f(dir + "/manifest.txt");
    std::string k;
    std::uint32_t key = 0, count = 0;
    f >> k >> key >> k >> count;
    m.run_key = key;
    m.count = count;
  }
  long rss0 = rss_kb();
  auto t0 = std::chrono::steady_clock::now();
  tandem::correlate::CaptureSide client, server;
  if (!load(dir + "/client.pcap", client) || !load(dir + "/server.pcap", server)) return 2;
  auto t1 = std::chrono::steady_clock::now();
  long rss1 = rss_kb();
  double cpu1 = cpu_secs();
  auto c = tandem::correlate::correlate(client, server, m);
  auto t2 = std::chrono::steady_clock::now();
  double cpu2 = cpu_secs();
  if (!c) { std::fprintf(stderr, "%s\n", c.error().text().c_str()); return 2; }
  auto v = tandem::diagnose::diagnose(*c);
  auto t3 = std::chrono::steady_clock::now();
  long peak = peak_kb();
  double pk = static_cast<double>(client.packets.size() + server.packets.size());
  auto counts = tandem::diagnose::count_fates(c->probes);
  fmt::print("manifest: {}\n", manifest ? "key+count" : "none");
  fmt::print("packets: {} client + {} server = {:.0f}; probes {}\n", client.packets.size(), server.packets.size(), pk,
             c->probes.size());
  for (std::size_t f = 0; f < tandem::correlate::kFateCount; ++f) {
    fmt::print("  {:<13} {}\n", tandem::correlate::fate_name(static_cast<tandem::correlate::Fate>(f)), counts.n[f]);
  }
  fmt::print("verdict: {} — {}\n", v.code, v.text);
  fmt::print("read (PcapReader -> PacketBuffer): {:.3f} s, {:.2f} M packets/s\n", secs(t0, t1), pk / secs(t0, t1) / 1e6);
  fmt::print("correlate: {:.3f} s wall, {:.2f} M packets/s; {:.3f} s CPU (user+sys), {:.2f} M packets/CPU-s\n",
             secs(t1, t2), pk / secs(t1, t2) / 1e6, cpu2 - cpu1, pk / (cpu2 - cpu1) / 1e6);
  fmt::print("diagnose: {:.3f} s\n", secs(t2, t3));
  fmt::print("read+correlate: {:.3f} s, {:.2f} M packets/s\n", secs(t0, t2), pk / secs(t0, t2) / 1e6);
  fmt::print("memory: packet store {:.1f} B/packet; correlator peak on top {:.1f} B/packet; peak RSS {} MiB = {:.1f} B/packet\n",
             static_cast<double>(rss1 - rss0) * 1024.0 / pk, static_cast<double>(peak - rss1) * 1024.0 / pk, peak / 1024,
             static_cast<double>(peak) * 1024.0 / pk);
  // Correctness first: the generator's truth, fate by fate.
  std::ifstream tf(dir + "/truth.txt");
  if (!tf) return 0;
  std::map<std::string, std::uint64_t> truth;
  std::string name;
  std::uint64_t n = 0;
  while (tf >> name >> n) truth[name] = n;
  bool same = truth["probes"] == c->probes.size();
  fmt::print("truth (DIR/truth.txt) against tandem:\n  {:<13} {:>9} {:>9}\n  {:<13} {:>9} {:>9}{}\n", "", "truth",
             "tandem", "probes", truth["probes"], c->probes.size(), same ? "" : "   MISMATCH");
  for (std::size_t f = 0; f < tandem::correlate::kFateCount; ++f) {
    std::string fn(tandem::correlate::fate_name(static_cast<tandem::correlate::Fate>(f)));
    auto want = truth.count(fn) ? truth[fn] : 0;
    if (want == 0 && counts.n[f] == 0) continue;
    fmt::print("  {:<13} {:>9} {:>9}{}\n", fn, want, counts.n[f], want == counts.n[f] ? "" : "   MISMATCH");
    same = same && want == counts.n[f];
  }
  if (!same) {
    // Why tandem says unknown, for the mismatch's first look.
    std::map<std::string, std::uint64_t> notes;
    for (const auto& p : c->probes) {
      if (p.fate == tandem::correlate::Fate::unknown) ++notes[p.note.substr(0, 100)];
    }
    for (const auto& [note, k] : notes) fmt::print("  unknown x{}: {}\n", k, note);
    std::fprintf(stderr, "tandem-corrbench: FATES DIFFER FROM THE GENERATOR'S TRUTH\n");
    return 3;
  }
  fmt::print("fates equal the truth\n");
  return 0;
}
