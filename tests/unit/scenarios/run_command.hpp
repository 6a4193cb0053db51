// Running the built `tandem` from the scenario tests: a shell-quoted command line, its exit code and
// its output. Shared by scenarios_test (golden baselines) and real_corpus_test (real captures).
#pragma once

#include <sys/wait.h>

#include <cstdio>
#include <string>

namespace tandem::test {

// Single-quotes s for /bin/sh.
inline std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

struct CmdResult {
  int exit_code = -1;  // -1: not started or killed by a signal
  std::string output;
};

// Runs a shell command; stdout (and stderr unless stderr_too is false) is captured.
inline CmdResult run(const std::string& cmd, bool stderr_too = true) {
  CmdResult r;
  std::FILE* p = popen((cmd + (stderr_too ? " 2>&1" : " 2>/dev/null")).c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
  int st = pclose(p);
  r.exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

}  // namespace tandem::test
