// tandem-sendbench TARGET -p PORT -c N [--rate PPS | -i S] [--tcp-options LIST] [--quiet]
// Sends N IPv4 SYNs (MSS 1460, SACK-permitted, Timestamps, NOP, WS 7; source port and sequence
// number vary per packet) through netio's SendLoop and prints one summary line on stdout.
// The flags mirror `tandem ping` so bench/pacing/run.sh can swap one for the other.
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "common/netio/route.hpp"
#include "common/netio/send_loop.hpp"

namespace {

using tandem::netio::IpAddr;

std::atomic<bool> g_stop{false};
void on_sigint(int) { g_stop.store(true); }

void put16(std::vector<std::uint8_t>& b, std::size_t at, std::uint32_t v) {
  b[at] = static_cast<std::uint8_t>(v >> 8);
  b[at + 1] = static_cast<std::uint8_t>(v);
}

std::uint16_t checksum(const std::uint8_t* p, std::size_t n, std::uint32_t s) {
  for (std::size_t i = 0; i + 1 < n; i += 2) s += static_cast<std::uint32_t>(p[i] << 8 | p[i + 1]);
  if (n & 1) s += static_cast<std::uint32_t>(p[n - 1] << 8);
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return static_cast<std::uint16_t>(~s);
}

// Writes a 60-byte IPv4 SYN into out. Kept here (not common/packet) so the bench measures netio
// alone and has no dependency on the builders' evolution.
void build_syn(std::vector<std::uint8_t>& out, const IpAddr& src, const IpAddr& dst, std::uint16_t sport,
               std::uint16_t dport, std::uint32_t seq, std::uint16_t ip_id) {
  out.assign(60, 0);
  out[0] = 0x45;
  put16(out, 2, 60);
  put16(out, 4, ip_id);
  out[6] = 0x40;
  out[8] = 64;
  out[9] = 6;
  std::copy_n(src.bytes.begin(), 4, out.begin() + 12);
  std::copy_n(dst.bytes.begin(), 4, out.begin() + 16);
  put16(out, 10, checksum(out.data(), 20, 0));
  std::uint8_t* t = out.data() + 20;
  t[0] = static_cast<std::uint8_t>(sport >> 8);
  t[1] = static_cast<std::uint8_t>(sport);
  t[2] = static_cast<std::uint8_t>(dport >> 8);
  t[3] = static_cast<std::uint8_t>(dport);
  for (int k = 0; k < 4; ++k) t[4 + k] = static_cast<std::uint8_t>(seq >> (24 - 8 * k));
  t[12] = 10 << 4;
  t[13] = 0x02;
  t[14] = 0xfa;
  t[15] = 0xf0;
  const std::uint8_t opts[20] = {2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 0, 0, 0, 0, 0, 1, 3, 3, 7};
  std::copy(std::begin(opts), std::end(opts), t + 20);
  for (int k = 0; k < 4; ++k) t[28 + k] = static_cast<std::uint8_t>(seq >> (24 - 8 * k));  // tsval
  std::uint32_t pseudo = 6 + 40;
  for (int k = 12; k < 20; k += 2) pseudo += static_cast<std::uint32_t>(out[k] << 8 | out[k + 1]);
  const std::uint16_t c = checksum(t, 40, pseudo);
  t[16] = static_cast<std::uint8_t>(c >> 8);
  t[17] = static_cast<std::uint8_t>(c);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"tandem-sendbench: paced raw SYN sender (netio benchmark)"};
  std::string target;
  std::uint16_t port = 80;
  std::uint64_t count = 1000;
  double rate = 0;
  double interval = 0;
  std::string tcp_options = "mss=1460,sack,ts,nop,ws=7";
  bool quiet = false;
  app.add_option("TARGET", target, "IPv4 destination")->required();
  app.add_option("-p,--port", port, "destination port");
  app.add_option("-c,--count", count, "packets to send");
  auto* rate_opt = app.add_option("--rate", rate, "packets per second (omit for as fast as possible)");
  app.add_option("-i,--interval", interval, "seconds between packets")->excludes(rate_opt);
  app.add_option("--tcp-options", tcp_options, "only mss=1460,sack,ts,nop,ws=7 is built here");
  app.add_flag("-q,--quiet", quiet, "no progress lines");
  CLI11_PARSE(app, argc, argv);

  if (tcp_options != "mss=1460,sack,ts,nop,ws=7") {
    std::fprintf(stderr, "tandem-sendbench: only --tcp-options mss=1460,sack,ts,nop,ws=7 is supported\n");
    return 1;
  }
  const auto dst = IpAddr::parse(target);
  if (!dst || !dst->is_v4()) {
    std::fprintf(stderr, "tandem-sendbench: TARGET must be an IPv4 address\n");
    return 1;
  }
  auto src = tandem::netio::source_address_for(*dst);
  if (!src) {
    std::fprintf(stderr, "tandem-sendbench: %s\n", src.error().text().c_str());
    return tandem::exit_code(src.error().code);
  }
  tandem::netio::SendLoopConfig config;
  config.count = count;
  if (rate > 0) {
    auto s = tandem::netio::Schedule::from_rate(rate);
    if (!s) {
      std::fprintf(stderr, "tandem-sendbench: %s\n", s.error().text().c_str());
      return 1;
    }
    config.schedule = *s;
  } else if (interval > 0) {
    auto s = tandem::netio::Schedule::from_interval(interval);
    if (!s) {
      std::fprintf(stderr, "tandem-sendbench: %s\n", s.error().text().c_str());
      return 1;
    }
    config.schedule = *s;
  }
  // Bench-only knob for comparing spin windows: TANDEM_SENDBENCH_SPIN_US (default: PacerOptions).
  if (const char* spin = std::getenv("TANDEM_SENDBENCH_SPIN_US")) {
    config.pacer.spin_ns = static_cast<tandem::Nanos>(std::atof(spin) * 1e3);
  }
  config.stop = &g_stop;
  config.keep_timestamps = false;
  if (!quiet) {
    config.on_progress = [](const tandem::netio::SendProgress& p) {
      std::fprintf(stderr, "sent=%llu failed=%llu behind_us=%.1f\n", static_cast<unsigned long long>(p.sent),
                   static_cast<unsigned long long>(p.failed), static_cast<double>(p.behind_ns) / 1e3);
    };
  }
  std::signal(SIGINT, on_sigint);

  auto sender = tandem::netio::RawSender::open(tandem::packet::IpVersion::v4);
  if (!sender) {
    std::fprintf(stderr, "tandem-sendbench: %s\n", sender.error().text().c_str());
    return tandem::exit_code(sender.error().code);
  }
  const IpAddr s_addr = *src;
  const IpAddr d_addr = *dst;
  tandem::netio::SendLoop loop(
      [&](std::uint64_t i, std::vector<std::uint8_t>& out) {
        const auto j = static_cast<std::uint32_t>(i);
        build_syn(out, s_addr, d_addr, static_cast<std::uint16_t>(1024 + i % 64512), port, j * 2654435761u,
                  static_cast<std::uint16_t>(j | 1));
        return d_addr;
      },
      config);
  const tandem::Nanos t0 = tandem::monotonic_ns();
  auto report = loop.run(*sender);
  const double secs = static_cast<double>(tandem::monotonic_ns() - t0) / 1e9;
  if (!report) {
    std::fprintf(stderr, "tandem-sendbench: %s\n", report.error().text().c_str());
    return tandem::exit_code(report.error().code);
  }
  const auto& r = *report;
  std::printf("%s\n", fmt::format("sent={} failed={} secs={:.4f} pps={:.0f} requested={:.0f} max_behind_us={:.1f} "
                                  "catchup_batches={} syscalls={} retries={}",
                                  r.sent, r.failed, secs, r.achieved_pps, r.requested_pps,
                                  static_cast<double>(r.max_behind_ns) / 1e3, r.catchup_batches, r.syscalls,
                                  r.retries)
                          .c_str());
  if (r.first_error) std::fprintf(stderr, "tandem-sendbench: %s\n", r.first_error->text().c_str());
  return r.failed == 0 ? 0 : tandem::exit_code(r.first_error ? r.first_error->code : tandem::Errc::environment);
}
