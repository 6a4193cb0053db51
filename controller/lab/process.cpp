#include "controller/lab/process.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

extern char** environ;

namespace tandem::lab {
namespace {

constexpr std::string_view kSubsystem = "lab";

Error env_error(std::string message) {
  return make_error(Errc::environment, std::string(kSubsystem), std::move(message));
}

// Owns a pipe's two ends; both are O_CLOEXEC so no other child inherits them.
struct Pipe {
  int rd = -1;
  int wr = -1;
  bool open() {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) return false;
    rd = fds[0];
    wr = fds[1];
    return true;
  }
  static void close_fd(int& fd) {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
  ~Pipe() {
    close_fd(rd);
    close_fd(wr);
  }
};

// Child side, after fork: async-signal-safe calls only. Enters the namespace like `ip netns exec`.
// Returns 0 or the errno of the step that failed.
int enter_netns(const char* netns_path, const char* netns_name) {
  const int fd = ::open(netns_path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  if (::setns(fd, CLONE_NEWNET) != 0) return errno;
  ::close(fd);
  // /sys shows the netns of whoever mounted it; give the child its own view, as ip does. Failure
  // here only degrades /sys/class/net listings, so it is not fatal.
  if (::unshare(CLONE_NEWNS) == 0 && ::mount("", "/", "none", MS_SLAVE | MS_REC, nullptr) == 0) {
    ::umount2("/sys", MNT_DETACH);
    ::mount(netns_name, "/sys", "sysfs", 0, nullptr);
  }
  return 0;
}

void reset_signals_in_child() {
  sigset_t all;
  sigemptyset(&all);
  sigprocmask(SIG_SETMASK, &all, nullptr);
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGCHLD}) sigaction(sig, &dfl, nullptr);
}

void write_all(int fd, const void* data, std::size_t len) {
  const char* p = static_cast<const char*>(data);
  while (len > 0) {
    const ssize_t n = ::write(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    p += n;
    len -= static_cast<std::size_t>(n);
  }
}

int wait_status(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 255;
}

std::string join(const std::vector<std::string>& argv) {
  std::string s;
  for (const auto& a : argv) s += (s.empty() ? "" : " ") + a;
  return s;
}

}  // namespace

std::optional<std::string> find_program(const std::string& name) {
  if (name.find('/') != std::string::npos) {
    if (::access(name.c_str(), X_OK) == 0) return name;
    return std::nullopt;
  }
  const char* path_env = std::getenv("PATH");
  std::string path = path_env != nullptr ? path_env : "/usr/bin:/bin";
  path += ":/usr/sbin:/sbin:/usr/local/sbin";
  std::stringstream dirs(path);
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    if (dir.empty()) continue;
    const std::string candidate = dir + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return std::nullopt;
}

std::optional<std::uint64_t> process_start_time(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return std::nullopt;
  // comm (field 2) may hold spaces and parentheses: fields resume after the last ')'.
  const auto close = line.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream rest(line.substr(close + 2));
  std::string field;
  for (int i = 3; i <= 22; ++i) {
    if (!(rest >> field)) return std::nullopt;
  }
  try {
    return std::stoull(field);
  } catch (...) {
    return std::nullopt;
  }
}

bool process_alive(const ProcessId& p) {
  if (p.pid <= 0) return false;
  const auto st = process_start_time(p.pid);
  if (!st || *st != p.start_time) return false;
  // A zombie has the same start time but is dead: state (field 3) 'Z' or 'X'.
  std::ifstream in("/proc/" + std::to_string(p.pid) + "/stat");
  std::string line;
  std::getline(in, line);
  const auto close = line.rfind(')');
  return close == std::string::npos || close + 2 >= line.size() || (line[close + 2] != 'Z' && line[close + 2] != 'X');
}

void kill_process(const ProcessId& p) {
  if (!process_alive(p)) {
    ::waitpid(p.pid, nullptr, WNOHANG);  // reap it if it was our zombie
    return;
  }
  ::kill(p.pid, SIGKILL);
  // Our own child: reap it so it neither lingers as a zombie nor pins its namespace.
  int rc;
  while ((rc = static_cast<int>(::waitpid(p.pid, nullptr, 0))) < 0 && errno == EINTR) {
  }
  if (rc == p.pid) return;
  // Not our child (a detached listener; init reaps it): SIGKILL is asynchronous, so wait until it
  // has died, so that "down" returns only once the namespace is no longer pinned by it.
  for (int i = 0; i < 400 && process_alive(p); ++i) ::usleep(5000);
}

Result<ExecResult> exec_in_netns(const std::string& netns, const std::vector<std::string>& argv,
                                 const ExecOptions& options) {
  if (argv.empty()) return make_error(Errc::internal, "lab", "exec_in_netns: empty argv");
  const auto program = find_program(argv[0]);
  if (!program) return env_error("exec " + argv[0] + ": not found in PATH");

  // Everything the child touches is prepared here, before fork.
  std::vector<char*> cargv;
  for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  const std::string netns_path = "/run/netns/" + netns;

  Pipe in, out, err, status;
  if (!in.open() || !status.open() || (options.capture && (!out.open() || !err.open())))
    return env_error(std::string("exec ") + argv[0] + ": pipe: " + std::strerror(errno));

  const pid_t pid = ::fork();
  if (pid < 0) return env_error(std::string("exec ") + argv[0] + ": fork: " + std::strerror(errno));
  if (pid == 0) {
    reset_signals_in_child();
    ::dup2(in.rd, 0);
    if (options.capture) {
      ::dup2(out.wr, 1);
      ::dup2(err.wr, 2);
    }
    int e = netns.empty() ? 0 : enter_netns(netns_path.c_str(), netns.c_str());
    if (e == 0) {
      ::execve(program->c_str(), cargv.data(), environ);
      e = errno;
    }
    write_all(status.wr, &e, sizeof e);
    ::_exit(127);
  }
  if (options.on_start) options.on_start(pid);
  Pipe::close_fd(in.rd);
  Pipe::close_fd(out.wr);
  Pipe::close_fd(err.wr);
  Pipe::close_fd(status.wr);

  // The status pipe closes on a successful exec (O_CLOEXEC) or carries the errno of the failure.
  int child_errno = 0;
  ssize_t got;
  while ((got = ::read(status.rd, &child_errno, sizeof child_errno)) < 0 && errno == EINTR) {
  }
  if (got == static_cast<ssize_t>(sizeof child_errno)) {
    wait_status(pid);
    const std::string where = netns.empty() ? "" : " in netns " + netns;
    return env_error("exec " + join(argv) + where + ": " + std::strerror(child_errno));
  }

  ExecResult result;
  const auto deadline = std::chrono::steady_clock::now() + options.timeout;
  std::size_t stdin_off = 0;
  if (options.stdin_data.empty()) Pipe::close_fd(in.wr);
  else ::fcntl(in.wr, F_SETFL, O_NONBLOCK);
  // Pump stdin and both outputs together: a child blocked writing a full stdout pipe while we
  // block writing its stdin would deadlock.
  while (in.wr >= 0 || out.rd >= 0 || err.rd >= 0) {
    std::array<pollfd, 3> fds{};
    nfds_t n = 0;
    if (in.wr >= 0) fds[n++] = {in.wr, POLLOUT, 0};
    if (out.rd >= 0) fds[n++] = {out.rd, POLLIN, 0};
    if (err.rd >= 0) fds[n++] = {err.rd, POLLIN, 0};
    int wait_ms = -1;
    if (options.timeout.count() > 0) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now()).count();
      if (left <= 0) {
        result.timed_out = true;
        ::kill(pid, SIGKILL);
        break;
      }
      wait_ms = static_cast<int>(left);
    }
    const int ready = ::poll(fds.data(), n, wait_ms);
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) break;
    for (nfds_t i = 0; i < n; ++i) {
      if (fds[i].revents == 0) continue;
      if (fds[i].fd == in.wr) {
        const ssize_t w = ::write(in.wr, options.stdin_data.data() + stdin_off,
                                  options.stdin_data.size() - stdin_off);
        if (w > 0) stdin_off += static_cast<std::size_t>(w);
        if (w < 0 && errno != EAGAIN && errno != EINTR) stdin_off = options.stdin_data.size();
        if (stdin_off >= options.stdin_data.size()) Pipe::close_fd(in.wr);
        continue;
      }
      char buf[4096];
      const ssize_t r = ::read(fds[i].fd, buf, sizeof buf);
      if (r > 0) {
        (fds[i].fd == out.rd ? result.out : result.err).append(buf, static_cast<std::size_t>(r));
      } else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
        Pipe::close_fd(fds[i].fd == out.rd ? out.rd : err.rd);
      }
    }
  }
  if (result.timed_out && options.timeout.count() > 0) {
    // Deadline passed while waiting for output: the child may still run.
    ::kill(pid, SIGKILL);
  } else if (options.timeout.count() > 0) {
    // Outputs closed; the child may still be running (closed its stdout early): bound the wait.
    for (;;) {
      int st = 0;
      const pid_t w = ::waitpid(pid, &st, WNOHANG);
      if (w == pid) {
        result.exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? 128 + WTERMSIG(st) : 255;
        return result;
      }
      if (w < 0 && errno != EINTR) return result;
      if (std::chrono::steady_clock::now() >= deadline) {
        result.timed_out = true;
        ::kill(pid, SIGKILL);
        break;
      }
      ::usleep(5000);
    }
  }
  result.exit_code = wait_status(pid);
  return result;
}

namespace {

// What the listener reports to its parent once its sockets are listening (or failed).
struct ListenerReport {
  pid_t pid;
  int error;     // errno of the failed step, 0 = listening
  int port;      // the port that failed, 0 if none
  int step;      // 0 ok, 1 netns, 2 socket, 3 bind, 4 listen
};

constexpr int kMaxListenerPorts = 256;

[[noreturn]] void listener_main(int report_fd, const char* netns_path, const char* netns_name,
                                const std::uint16_t* tcp, int n_tcp, const std::uint16_t* udp, int n_udp) {
  ListenerReport report{::getpid(), 0, 0, 0};
  auto fail = [&](int step, int port) {
    report.error = errno;
    report.step = step;
    report.port = port;
    write_all(report_fd, &report, sizeof report);
    ::_exit(1);
  };
  ::prctl(PR_SET_NAME, "tandem-listen", 0, 0, 0);
  // Inherited descriptors (a caller's capture pipe, test sockets) must not be held open by a
  // process that may outlive the caller.
  const int devnull = ::open("/dev/null", O_RDWR);
  if (devnull >= 0) {
    ::dup2(devnull, 0);
    ::dup2(devnull, 1);
    ::dup2(devnull, 2);
  }
  if (report_fd != 3) {
    ::dup2(report_fd, 3);
    report_fd = 3;
  }
  ::close_range(4, ~0U, 0);
  if (enter_netns(netns_path, netns_name) != 0) fail(1, 0);

  std::array<pollfd, kMaxListenerPorts> fds{};
  int n = 0;
  auto open_socket = [&](int type, std::uint16_t port) {
    const int fd = ::socket(AF_INET6, type | SOCK_CLOEXEC, 0);
    if (fd < 0) fail(2, port);
    const int off = 0;
    const int on = 1;
    ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);  // dual stack: v4-mapped too
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    sockaddr_in6 sa{};
    sa.sin6_family = AF_INET6;
    sa.sin6_addr = in6addr_any;
    sa.sin6_port = htons(port);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) fail(3, port);
    if (type == SOCK_STREAM && ::listen(fd, 1024) != 0) fail(4, port);
    fds[static_cast<std::size_t>(n++)] = {fd, POLLIN, 0};
  };
  for (int i = 0; i < n_tcp; ++i) open_socket(SOCK_STREAM, tcp[i]);
  const int first_udp = n;
  for (int i = 0; i < n_udp; ++i) open_socket(SOCK_DGRAM, udp[i]);
  write_all(report_fd, &report, sizeof report);
  ::close(report_fd);

  for (;;) {
    if (::poll(fds.data(), static_cast<nfds_t>(n), -1) < 0) continue;
    for (int i = 0; i < n; ++i) {
      auto& p = fds[static_cast<std::size_t>(i)];
      if ((p.revents & POLLIN) == 0) continue;
      if (i < first_udp) {
        const int c = ::accept4(p.fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (c >= 0) ::close(c);
      } else {
        char buf[2048];
        sockaddr_in6 from{};
        socklen_t from_len = sizeof from;
        const ssize_t r = ::recvfrom(p.fd, buf, sizeof buf, MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&from), &from_len);
        if (r >= 0) ::sendto(p.fd, buf, static_cast<std::size_t>(r), MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&from), from_len);
      }
    }
  }
}

}  // namespace

Result<ProcessId> spawn_listener(const std::string& netns, const std::vector<std::uint16_t>& tcp_ports,
                                 const std::vector<std::uint16_t>& udp_ports, bool detach) {
  if (tcp_ports.size() + udp_ports.size() > kMaxListenerPorts)
    return make_error(Errc::config, "lab", "listener: at most 256 ports");
  const std::string netns_path = "/run/netns/" + netns;
  Pipe report;
  if (!report.open()) return env_error(std::string("listener: pipe: ") + std::strerror(errno));
  const pid_t parent = ::getpid();

  const pid_t pid = ::fork();
  if (pid < 0) return env_error(std::string("listener: fork: ") + std::strerror(errno));
  if (pid == 0) {
    reset_signals_in_child();
    Pipe::close_fd(report.rd);
    if (detach) {
      // Session leader, then fork again so that init adopts the listener and no terminal
      // hangup reaches it: it lives until `tandem lab down`.
      ::setsid();
      const pid_t grandchild = ::fork();
      if (grandchild != 0) ::_exit(grandchild < 0 ? 1 : 0);
      struct sigaction ign {};
      ign.sa_handler = SIG_IGN;
      sigaction(SIGHUP, &ign, nullptr);
      sigaction(SIGINT, &ign, nullptr);
    } else {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
      if (::getppid() != parent) ::_exit(1);  // the owner died before prctl took effect
    }
    listener_main(report.wr, netns_path.c_str(), netns.c_str(), tcp_ports.data(),
                  static_cast<int>(tcp_ports.size()), udp_ports.data(), static_cast<int>(udp_ports.size()));
  }
  Pipe::close_fd(report.wr);
  if (detach) wait_status(pid);  // the intermediate exits at once

  ListenerReport rep{};
  ssize_t got;
  while ((got = ::read(report.rd, &rep, sizeof rep)) < 0 && errno == EINTR) {
  }
  if (got != static_cast<ssize_t>(sizeof rep))
    return env_error("listener in netns " + netns + ": exited before reporting");
  if (rep.step != 0) {
    static constexpr const char* kSteps[] = {"", "enter netns", "socket", "bind", "listen"};
    if (!detach) wait_status(pid);
    std::string what = std::string(kSteps[rep.step]);
    if (rep.port != 0) what += " port " + std::to_string(rep.port);
    return env_error("listener in netns " + netns + ": " + what + ": " + std::strerror(rep.error));
  }
  const auto start = process_start_time(rep.pid);
  if (!start) return env_error("listener in netns " + netns + ": exited right after start");
  return ProcessId{rep.pid, *start};
}

}  // namespace tandem::lab
