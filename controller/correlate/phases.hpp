// Internal to controller/correlate: opt-in accounting of correlate()'s CPU time per pass, for
// bench/correlate (docs/benchmarks.md). With TANDEM_CORRELATE_PHASES set, each mark prints one line
// to stderr — "phase NAME SECONDS (user U sys S)" of process CPU time (all threads) since the previous mark — and
// the destructor the total. Unset, a mark is one branch.
#pragma once

#include <sys/resource.h>

#include <cstdio>
#include <cstdlib>

namespace tandem::correlate::detail {

class PhaseClock {
 public:
  PhaseClock() : on_(std::getenv("TANDEM_CORRELATE_PHASES") != nullptr) {
    if (on_) first_ = last_ = cpu();
  }
  ~PhaseClock() {
    if (on_) print("total", first_, cpu());
  }
  PhaseClock(const PhaseClock&) = delete;
  PhaseClock& operator=(const PhaseClock&) = delete;

  void operator()(const char* name) {
    if (!on_) return;
    const Cpu now = cpu();
    print(name, last_, now);
    last_ = now;
  }

 private:
  struct Cpu {
    double user = 0, sys = 0;
  };
  static Cpu cpu() {
    rusage u{};
    ::getrusage(RUSAGE_SELF, &u);
    auto sec = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) * 1e-6; };
    return {sec(u.ru_utime), sec(u.ru_stime)};
  }
  static void print(const char* name, Cpu a, Cpu b) {
    std::fprintf(stderr, "phase %-24s %.3f (user %.3f sys %.3f)\n", name, b.user + b.sys - a.user - a.sys, b.user - a.user,
                 b.sys - a.sys);
  }
  bool on_;
  Cpu first_, last_;
};

}  // namespace tandem::correlate::detail
