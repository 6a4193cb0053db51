#include "common/pcapio/capture_session.hpp"

#include <cerrno>
#include <cstring>
#include <future>
#include <utility>

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common/base/log.hpp"

namespace tandem::pcapio {

namespace {
constexpr const char* kSubsystem = "pcap";
// Upper bound on one poll() sleep. Wake-ups come from the pcap fd and the stop eventfd; the timeout
// only guards against a missed wake-up ever stalling the capture.
constexpr int kPollTimeoutMs = 100;
// The arena grows geometrically; start with room for a typical run so it rarely moves at all.
constexpr std::size_t kInitialPackets = 16 * 1024;
constexpr std::size_t kInitialBytes = 4u * 1024 * 1024;
}  // namespace

CaptureSession::CaptureSession(CaptureSessionConfig config) : config_(std::move(config)) {}

CaptureSession::~CaptureSession() {
  if (thread_.joinable()) {
    stop_requested_.store(true, std::memory_order_release);
    const std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(stop_fd_, &one, sizeof one);
    thread_.join();
  }
  if (stop_fd_ >= 0) ::close(stop_fd_);
}

Status CaptureSession::start() {
  if (thread_.joinable()) {
    return make_error(Errc::usage, kSubsystem, "capture session on " +
                                                   config_.capture.device + " already started");
  }
  auto opened = LiveCapture::open(config_.capture);
  if (!opened) return opened.error();
  capture_.emplace(std::move(opened).value());

  if (stop_fd_ < 0) {
    stop_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (stop_fd_ < 0) {
      capture_.reset();
      return make_error(Errc::environment, kSubsystem,
                        std::string("eventfd for capture session: ") + std::strerror(errno));
    }
  }
  std::uint64_t drained = 0;  // a previous run's wake-up must not linger
  [[maybe_unused]] auto r = ::read(stop_fd_, &drained, sizeof drained);
  stop_requested_.store(false, std::memory_order_relaxed);

  result_ = CaptureResult{};
  result_.device = capture_->device();
  result_.linktype = capture_->linktype();
  result_.snaplen = capture_->snaplen();
  result_.precision = capture_->precision();
  result_.started_ns = realtime_ns();
  if (config_.store) {
    result_.packets.reserve(std::min(config_.max_packets, kInitialPackets),
                            std::min(config_.max_bytes, kInitialBytes));
  }
  linktype_ = capture_->linktype();
  seen_.store(0, std::memory_order_relaxed);

  // The handle is already active with its filter, so the kernel queues matching packets from here
  // on; waiting for the thread to reach its poll loop additionally makes the callback live before
  // the caller sends anything.
  std::promise<void> polling;
  std::future<void> polling_started = polling.get_future();
  thread_ = std::thread([this, p = std::move(polling)]() mutable {
    p.set_value();
    run();
  });
  polling_started.wait();
  return ok_status();
}

void CaptureSession::run() {
  const std::size_t max_packets = config_.max_packets;
  const std::size_t max_bytes = config_.max_bytes;
  PacketFn handle = [&](const PacketView& p) {
    seen_.fetch_add(1, std::memory_order_relaxed);
    ++result_.seen;
    if (config_.on_packet) config_.on_packet(p);
    if (!config_.store) return;
    if (result_.packets.size() >= max_packets || result_.packets.bytes() + p.caplen() > max_bytes) {
      ++result_.cap_dropped;
      return;
    }
    result_.packets.append(p);
  };

  pollfd fds[2] = {{capture_->selectable_fd(), POLLIN, 0}, {stop_fd_, POLLIN, 0}};
  bool stopping = false;
  while (!stopping) {
    const int rc = ::poll(fds, 2, kPollTimeoutMs);
    if (rc < 0 && errno != EINTR) {
      result_.error = make_error(Errc::environment, kSubsystem,
                                 "poll " + result_.device + ": " + std::strerror(errno));
      break;
    }
    stopping = stop_requested_.load(std::memory_order_acquire);
    // On stop, keep reading until the ring is empty: those packets arrived before stop() was
    // called and belong to the run.
    for (;;) {
      auto n = capture_->dispatch(-1, handle);
      if (!n) {
        result_.error = n.error();
        stopping = true;
        break;
      }
      if (*n == 0 || !stopping) break;
    }
  }
  result_.stats = capture_->stats();
  if (!result_.stats.available) {
    log::get(kSubsystem)->warn("{}", result_.stats.unavailable_reason);
  }
  if (result_.cap_dropped > 0) {
    log::get(kSubsystem)->warn("{}: capture cap reached ({} packets / {} bytes): {} packets not "
                               "stored, counted as dropped",
                               result_.device, max_packets, max_bytes, result_.cap_dropped);
  }
  result_.stopped_ns = realtime_ns();
}

Result<CaptureResult> CaptureSession::stop(std::chrono::milliseconds drain_for) {
  if (!thread_.joinable()) {
    return make_error(Errc::usage, kSubsystem, "capture session on " +
                                                   config_.capture.device + " is not running");
  }
  if (drain_for.count() > 0) std::this_thread::sleep_for(drain_for);
  stop_requested_.store(true, std::memory_order_release);
  const std::uint64_t one = 1;
  // Only a wake-up: if it failed the thread still sees the flag within one poll timeout.
  [[maybe_unused]] auto n = ::write(stop_fd_, &one, sizeof one);
  thread_.join();
  capture_.reset();
  return std::move(result_);
}

}  // namespace tandem::pcapio
