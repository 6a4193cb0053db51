// tandem-gapstat FILE.pcap [REQUESTED_PPS]
// Reads a capture with nanosecond timestamps and prints, on one line: packet count, wire rate
// ((n-1)/(last-first)), its error against REQUESTED_PPS, and inter-packet gap statistics
// (mean, standard deviation, percentiles, and p99 of |gap - 1/REQUESTED_PPS|).
#include <pcap/pcap.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include <fmt/format.h>

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: tandem-gapstat FILE.pcap [REQUESTED_PPS]\n");
    return 1;
  }
  const double requested = argc > 2 ? std::atof(argv[2]) : 0.0;
  char err[PCAP_ERRBUF_SIZE];
  pcap_t* p = pcap_open_offline_with_tstamp_precision(argv[1], PCAP_TSTAMP_PRECISION_NANO, err);
  if (p == nullptr) {
    std::fprintf(stderr, "tandem-gapstat: open %s: %s\n", argv[1], err);
    return 2;
  }
  std::vector<std::int64_t> ts;
  pcap_pkthdr* h = nullptr;
  const u_char* d = nullptr;
  while (pcap_next_ex(p, &h, &d) == 1) {
    // With nano precision libpcap puts nanoseconds in tv_usec.
    ts.push_back(static_cast<std::int64_t>(h->ts.tv_sec) * 1'000'000'000 + h->ts.tv_usec);
  }
  pcap_close(p);
  const std::size_t n = ts.size();
  if (n < 2) {
    std::printf("n=%zu rate=0\n", n);
    return 0;
  }
  std::vector<double> gaps(n - 1);
  double sum = 0;
  for (std::size_t i = 1; i < n; ++i) {
    gaps[i - 1] = static_cast<double>(ts[i] - ts[i - 1]);
    sum += gaps[i - 1];
  }
  const double mean = sum / static_cast<double>(gaps.size());
  double var = 0;
  for (double g : gaps) var += (g - mean) * (g - mean);
  const double sd = std::sqrt(var / static_cast<double>(gaps.size()));
  const double rate = static_cast<double>(n - 1) * 1e9 / static_cast<double>(ts.back() - ts.front());
  std::vector<double> dev;
  if (requested > 0) {
    const double nominal = 1e9 / requested;
    for (double g : gaps) dev.push_back(std::fabs(g - nominal));
    std::sort(dev.begin(), dev.end());
  }
  std::sort(gaps.begin(), gaps.end());
  auto pct = [](const std::vector<double>& v, double q) {
    return v[std::min(v.size() - 1, static_cast<std::size_t>(q * static_cast<double>(v.size())))];
  };
  std::printf("%s\n",
              fmt::format("n={} rate={:.0f} err_pct={:.2f} gap_mean_us={:.2f} gap_sd_us={:.2f} gap_p1_us={:.2f} "
                          "gap_p50_us={:.2f} gap_p99_us={:.2f} gap_max_us={:.1f} dev_p50_us={:.2f} dev_p99_us={:.2f}",
                          n, rate, requested > 0 ? (rate / requested - 1) * 100 : 0.0, mean / 1e3, sd / 1e3,
                          pct(gaps, 0.01) / 1e3, pct(gaps, 0.5) / 1e3, pct(gaps, 0.99) / 1e3, gaps.back() / 1e3,
                          dev.empty() ? 0.0 : pct(dev, 0.5) / 1e3, dev.empty() ? 0.0 : pct(dev, 0.99) / 1e3)
                  .c_str());
  return 0;
}
