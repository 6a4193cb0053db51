#include "controller/lab/teardown_registry.hpp"

#include <signal.h>
#include <sys/mount.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstring>
#include <mutex>

#include "controller/lab/topology.hpp"

namespace tandem::lab::registry {
namespace {

constexpr int kMaxLabs = 32;
constexpr int kMaxNetns = kNodeCount;  // every namespace a lab can have
constexpr int kMaxPids = 16;
constexpr std::size_t kPathMax = 256;

struct Slot {
  std::atomic<bool> used{false};
  char state_dir[kPathMax];
  char state_file[kPathMax];
  char netns_paths[kMaxNetns][kPathMax];
  std::atomic<int> n_netns{0};
  std::atomic<pid_t> pids[kMaxPids];
};

Slot g_slots[kMaxLabs];
std::atomic<pid_t> g_owner{0};  // the process that installed the handlers
std::mutex g_mutex;             // between threads of the owner; the handler never takes it
struct sigaction g_previous[3];
constexpr int kSignals[3] = {SIGINT, SIGTERM, SIGHUP};

void copy_path(char* dst, const std::string& src) {
  const std::size_t n = src.size() < kPathMax - 1 ? src.size() : kPathMax - 1;
  std::memcpy(dst, src.data(), n);
  dst[n] = '\0';
}

// Async-signal-safe from here to the end of on_signal.
void teardown_all() {
  for (auto& s : g_slots) {
    if (!s.used.load()) continue;
    for (auto& p : s.pids) {
      const pid_t pid = p.load();
      if (pid > 0) ::kill(pid, SIGKILL);
    }
    const int n = s.n_netns.load();
    for (int i = 0; i < n && i < kMaxNetns; ++i) {
      ::umount2(s.netns_paths[i], MNT_DETACH);
      ::unlink(s.netns_paths[i]);
    }
    ::unlink(s.state_file);
    ::rmdir(s.state_dir);
    s.used.store(false);
  }
}

void on_signal(int sig) {
  // A forked child that has not exec'd yet inherits this handler: only the owner tears down.
  if (::getpid() == g_owner.load()) teardown_all();
  for (int i = 0; i < 3; ++i) {
    if (kSignals[i] == sig) ::sigaction(sig, &g_previous[i], nullptr);
  }
  // The signal is blocked while we run; it is delivered again, to the previous disposition
  // (usually the default: terminate), as soon as we return.
  ::raise(sig);
}

void install_once() {
  if (g_owner.load() == ::getpid()) return;
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  for (int s : kSignals) sigaddset(&sa.sa_mask, s);
  for (int i = 0; i < 3; ++i) {
    struct sigaction old {};
    ::sigaction(kSignals[i], nullptr, &old);
    // Respect a caller that ignores the signal (nohup): installing would turn an ignored
    // SIGHUP into a fatal one.
    if (old.sa_handler == SIG_IGN) continue;
    g_previous[i] = old;
    ::sigaction(kSignals[i], &sa, nullptr);
  }
  g_owner.store(::getpid());
}

}  // namespace

int add_lab(const std::string& state_dir) {
  std::lock_guard lock(g_mutex);
  install_once();
  for (int i = 0; i < kMaxLabs; ++i) {
    Slot& s = g_slots[i];
    if (s.used.load()) continue;
    copy_path(s.state_dir, state_dir);
    copy_path(s.state_file, state_dir + "/state.json");
    s.n_netns.store(0);
    for (auto& p : s.pids) p.store(0);
    s.used.store(true);  // last: the handler sees a slot only once it is filled in
    return i;
  }
  return -1;
}

void add_netns(int slot, const std::string& name) {
  if (slot < 0) return;
  std::lock_guard lock(g_mutex);
  Slot& s = g_slots[slot];
  const int n = s.n_netns.load();
  if (n >= kMaxNetns) return;
  copy_path(s.netns_paths[n], "/run/netns/" + name);
  s.n_netns.store(n + 1);
}

void add_pid(int slot, pid_t pid) {
  if (slot < 0) return;
  std::lock_guard lock(g_mutex);
  for (auto& p : g_slots[slot].pids) {
    pid_t expected = 0;
    if (p.compare_exchange_strong(expected, pid)) return;
  }
}

void remove_pid(int slot, pid_t pid) {
  if (slot < 0) return;
  std::lock_guard lock(g_mutex);
  for (auto& p : g_slots[slot].pids) {
    pid_t expected = pid;
    if (p.compare_exchange_strong(expected, 0)) return;
  }
}

void remove_lab(int slot) {
  if (slot < 0) return;
  std::lock_guard lock(g_mutex);
  g_slots[slot].used.store(false);
}

}  // namespace tandem::lab::registry
