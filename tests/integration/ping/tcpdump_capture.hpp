// TcpdumpCapture: an independent oracle for lab tests — tcpdump running inside one of the lab's
// namespaces, writing a pcap that the test reads back with PcapReader once stopped. Using tcpdump
// rather than our own capture code keeps the code under test out of its own verification.
#pragma once

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "common/pcapio/pcap_reader.hpp"

namespace tandem::testing {

class TcpdumpCapture {
 public:
  // Starts `tcpdump -i any -U -w path filter` in namespace `ns` and waits until it writes its file
  // header (the handle is active). ok() tells whether it started.
  TcpdumpCapture(const std::string& ns, std::string path, const std::string& filter) : path_(std::move(path)) {
    ::unlink(path_.c_str());
    pid_ = ::fork();
    if (pid_ == 0) {
      int fd = ::open(("/run/netns/" + ns).c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0 || ::setns(fd, CLONE_NEWNET) != 0) ::_exit(126);
      int devnull = ::open("/dev/null", O_WRONLY);
      ::dup2(devnull, 1);
      ::dup2(devnull, 2);
      std::vector<std::string> args = {"tcpdump", "-i", "any", "-U", "-n", "-s", "256", "--immediate-mode",
                                       "-w", path_, filter};
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execvp("tcpdump", argv.data());
      ::_exit(127);
    }
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    struct stat st {};
    while (std::chrono::steady_clock::now() < deadline) {
      if (::stat(path_.c_str(), &st) == 0 && st.st_size >= 24) {
        started_ = true;
        break;
      }
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    // The file header is written right after activation; give the ring a moment to be attached.
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  ~TcpdumpCapture() { stop(); }
  TcpdumpCapture(const TcpdumpCapture&) = delete;
  TcpdumpCapture& operator=(const TcpdumpCapture&) = delete;

  bool ok() const { return started_; }

  // Stops tcpdump (SIGINT flushes its buffer) and returns every captured frame.
  struct Frame {
    int linktype;
    std::vector<std::uint8_t> bytes;
    Nanos ts_ns = 0;  // tcpdump's timestamp (CLOCK_REALTIME)
  };
  std::vector<Frame> stop_and_read() {
    stop();
    std::vector<Frame> frames;
    auto reader = pcapio::PcapReader::open(path_);
    if (!reader) return frames;
    int lt = reader->linktype();
    static_cast<void>(reader->for_each([&](const pcapio::PacketView& p) {
      frames.push_back(Frame{lt, std::vector<std::uint8_t>(p.data.begin(), p.data.end()), p.ts_ns});
    }));
    return frames;
  }

 private:
  void stop() {
    if (pid_ > 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));  // let the last packets land
      ::kill(pid_, SIGINT);
      int status = 0;
      ::waitpid(pid_, &status, 0);
      pid_ = -1;
    }
  }

  std::string path_;
  pid_t pid_ = -1;
  bool started_ = false;
};

}  // namespace tandem::testing
