// Running programs inside a lab namespace, and the lab's in-namespace listener processes.
// Everything here is fork + setns + exec: the parent may be multi-threaded (gtest, spdlog), so the
// child only makes async-signal-safe system calls between fork and exec; all allocation happens
// before fork.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/base/result.hpp"

namespace tandem::lab {

struct ExecOptions {
  std::string stdin_data;                    // written to the child's stdin, then closed
  std::chrono::milliseconds timeout{0};      // 0 = wait forever; else SIGKILL at the deadline
  bool capture = true;                       // false: the child shares our stdout/stderr
  std::function<void(pid_t)> on_start;       // called with the child's pid right after fork
};

struct ExecResult {
  int exit_code = 0;        // exit status, or 128 + signal number (as shells report it)
  bool timed_out = false;
  std::string out;          // captured stdout (empty when !capture)
  std::string err;          // captured stderr (empty when !capture)
};

// Runs argv with net namespace `netns` (a name under /run/netns; empty = our own) entered, and
// with /sys remounted for it in a private mount namespace, exactly as `ip netns exec` does, so
// tools that enumerate /sys/class/net (libpcap) see the namespace's interfaces. argv[0] is looked
// up in PATH. An Error means the program could not be started (Errc::environment); a program that
// ran and failed is a normal ExecResult with a nonzero exit_code.
Result<ExecResult> exec_in_netns(const std::string& netns, const std::vector<std::string>& argv,
                                 const ExecOptions& options = {});

// Absolute path of an executable found in PATH (plus /usr/sbin and /sbin, where ip and nft live
// but which a non-login root shell may lack); nullopt if absent.
std::optional<std::string> find_program(const std::string& name);

// A process identified robustly: the pid plus its start time (field 22 of /proc/PID/stat, clock
// ticks since boot), so that a recycled pid is never mistaken for it.
struct ProcessId {
  pid_t pid = 0;
  std::uint64_t start_time = 0;
};
// Start time of a live pid; nullopt if there is no such process.
std::optional<std::uint64_t> process_start_time(pid_t pid);
// True iff `p` is still the same process (pid alive with the recorded start time).
bool process_alive(const ProcessId& p);

// Starts the server's listener: a process in `netns` with dual-stack (IPv6, V6ONLY off) sockets
// that accepts and closes every TCP connection on tcp_ports, and echoes every UDP datagram on
// udp_ports, forever. Returns once every socket is listening. detach = true: the listener is a
// session leader reparented to init and outlives us (`tandem lab up`); false: it is our child and
// gets SIGKILL when our thread exits (PR_SET_PDEATHSIG), so a crashed owner cannot leak it.
Result<ProcessId> spawn_listener(const std::string& netns, const std::vector<std::uint16_t>& tcp_ports,
                                 const std::vector<std::uint16_t>& udp_ports, bool detach);

// SIGKILLs p if it is still the recorded process and reaps it if it is our child.
void kill_process(const ProcessId& p);

}  // namespace tandem::lab
