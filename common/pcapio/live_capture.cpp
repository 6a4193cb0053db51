#include "common/pcapio/live_capture.hpp"

#include <algorithm>
#include <cstring>
#include <utility>

#include <pcap/pcap.h>

#include "common/base/log.hpp"

namespace tandem::pcapio {

namespace {

constexpr const char* kSubsystem = "pcap";
constexpr const char* kCapHint =
    " (capturing needs CAP_NET_RAW: run as root or `setcap cap_net_raw+ep` the binary)";

bool mentions_permission(const std::string& text) {
  return text.find("Operation not permitted") != std::string::npos ||
         text.find("Permission denied") != std::string::npos ||
         text.find("EPERM") != std::string::npos;
}

// Turns a failed pcap_activate into the error class the CLI maps to an exit code.
Error activation_error(pcap_t* p, const std::string& device, int rc) {
  std::string detail = pcap_geterr(p);
  if (detail.empty()) detail = pcap_statustostr(rc);
  const std::string op = "activate " + device + ": ";
  switch (rc) {
    case PCAP_ERROR_PERM_DENIED:
    case PCAP_ERROR_PROMISC_PERM_DENIED:
      return make_error(Errc::permission, kSubsystem, op + detail + kCapHint);
    case PCAP_ERROR_NO_SUCH_DEVICE:
      return make_error(Errc::environment, kSubsystem, op + "no such device: " + detail);
    case PCAP_ERROR_IFACE_NOT_UP:
      return make_error(Errc::environment, kSubsystem, op + "interface is down: " + detail);
    default:
      // Some kernels report a missing capability as a generic error with EPERM in the text.
      if (mentions_permission(detail)) {
        return make_error(Errc::permission, kSubsystem, op + detail + kCapHint);
      }
      return make_error(Errc::environment, kSubsystem, op + detail);
  }
}

struct DispatchContext {
  const PacketFn* fn;
  Nanos sub_second_scale;  // 1 for ns-precision headers, 1000 for µs
};

void on_pcap_packet(u_char* user, const pcap_pkthdr* h, const u_char* bytes) {
  auto* ctx = reinterpret_cast<DispatchContext*>(user);
  PacketView view;
  view.ts_ns = static_cast<Nanos>(h->ts.tv_sec) * 1'000'000'000 +
               static_cast<Nanos>(h->ts.tv_usec) * ctx->sub_second_scale;
  view.origlen = h->len;
  view.data = std::span<const std::uint8_t>(bytes, h->caplen);
  (*ctx->fn)(view);
}

}  // namespace

Result<LiveCapture> LiveCapture::open(const LiveCaptureConfig& config) {
  auto logger = log::get(kSubsystem);
  char errbuf[PCAP_ERRBUF_SIZE] = {};
  pcap_t* p = pcap_create(config.device.c_str(), errbuf);
  if (p == nullptr) {
    return make_error(Errc::environment, kSubsystem,
                      "create " + config.device + ": " + std::string(errbuf));
  }
  LiveCapture cap;
  cap.handle_ = p;  // owned from here on: every early return closes it
  cap.device_ = config.device;

  // The setters only fail on an already-activated handle, which this is not.
  pcap_set_snaplen(p, config.snaplen);
  pcap_set_promisc(p, config.promisc ? 1 : 0);
  pcap_set_buffer_size(p, config.buffer_bytes);
  pcap_set_immediate_mode(p, config.immediate ? 1 : 0);
  // A timeout still matters if immediate mode is off: it bounds how long packets sit in a block.
  pcap_set_timeout(p, 10);
  if (pcap_set_tstamp_precision(p, PCAP_TSTAMP_PRECISION_NANO) != 0) {
    logger->info("{}: nanosecond timestamps not supported, using microseconds", config.device);
  }

  const int rc = pcap_activate(p);
  if (rc < 0) return activation_error(p, config.device, rc);
  if (rc > 0) {
    logger->warn("activate {}: {}: {}", config.device, pcap_statustostr(rc), pcap_geterr(p));
  }
  cap.precision_ = pcap_get_tstamp_precision(p) == PCAP_TSTAMP_PRECISION_NANO ? TsPrecision::nano
                                                                              : TsPrecision::micro;

  if (config.prefer_sll2) {
    int* dlts = nullptr;
    const int n = pcap_list_datalinks(p, &dlts);
    const bool offered = n > 0 && std::find(dlts, dlts + n, DLT_LINUX_SLL2) != dlts + n;
    if (n > 0) pcap_free_datalinks(dlts);
    if (offered && pcap_set_datalink(p, DLT_LINUX_SLL2) != 0) {
      logger->warn("{}: cannot select LINUX_SLL2: {}", config.device, pcap_geterr(p));
    }
  }

  if (!config.filter.empty()) {
    bpf_program prog{};
    // The filter is compiled after the link type is final: BPF offsets depend on it.
    if (pcap_compile(p, &prog, config.filter.c_str(), 1, PCAP_NETMASK_UNKNOWN) != 0) {
      return make_error(Errc::usage, kSubsystem,
                        "compile filter \"" + config.filter + "\" on " + config.device + ": " +
                            pcap_geterr(p));
    }
    const int set_rc = pcap_setfilter(p, &prog);
    pcap_freecode(&prog);
    if (set_rc != 0) {
      return make_error(Errc::environment, kSubsystem,
                        "set filter on " + config.device + ": " + std::string(pcap_geterr(p)));
    }
  }

  if (pcap_setnonblock(p, 1, errbuf) != 0) {
    return make_error(Errc::environment, kSubsystem,
                      "set non-blocking on " + config.device + ": " + std::string(errbuf));
  }
  cap.fd_ = pcap_get_selectable_fd(p);
  if (cap.fd_ < 0) {
    return make_error(Errc::environment, kSubsystem, "no selectable fd for " + config.device);
  }
  cap.linktype_ = linktype_from_dlt(pcap_datalink(p));
  cap.snaplen_ = pcap_snapshot(p);
  logger->debug("capturing on {}: {} snaplen {} {} filter \"{}\"", cap.device_,
                linktype_name(cap.linktype_), cap.snaplen_, to_string(cap.precision_),
                config.filter);
  return cap;
}

LiveCapture::LiveCapture(LiveCapture&& other) noexcept
    : handle_(std::exchange(other.handle_, nullptr)),
      device_(std::move(other.device_)),
      linktype_(other.linktype_),
      snaplen_(other.snaplen_),
      fd_(std::exchange(other.fd_, -1)),
      precision_(other.precision_) {}

LiveCapture& LiveCapture::operator=(LiveCapture&& other) noexcept {
  if (this != &other) {
    reset();
    handle_ = std::exchange(other.handle_, nullptr);
    device_ = std::move(other.device_);
    linktype_ = other.linktype_;
    snaplen_ = other.snaplen_;
    fd_ = std::exchange(other.fd_, -1);
    precision_ = other.precision_;
  }
  return *this;
}

LiveCapture::~LiveCapture() { reset(); }

void LiveCapture::reset() {
  if (handle_ != nullptr) pcap_close(handle_);
  handle_ = nullptr;
  fd_ = -1;
}

Result<int> LiveCapture::dispatch(int max_packets, const PacketFn& fn) {
  DispatchContext ctx{&fn, precision_ == TsPrecision::nano ? 1 : 1000};
  const int n = pcap_dispatch(handle_, max_packets <= 0 ? -1 : max_packets, on_pcap_packet,
                              reinterpret_cast<u_char*>(&ctx));
  if (n == PCAP_ERROR_BREAK) return 0;
  if (n < 0) {
    return make_error(Errc::environment, kSubsystem,
                      "read from " + device_ + ": " + std::string(pcap_geterr(handle_)));
  }
  return n;
}

CaptureStats LiveCapture::stats() const {
  CaptureStats s;
  pcap_stat ps{};
  if (pcap_stats(handle_, &ps) != 0) {
    s.available = false;
    s.unavailable_reason = "stats " + device_ + ": " + std::string(pcap_geterr(handle_));
    return s;
  }
  s.received = ps.ps_recv;
  s.dropped = ps.ps_drop;
  s.if_dropped = ps.ps_ifdrop;
  s.available = true;
  return s;
}

void LiveCapture::break_loop() {
  if (handle_ != nullptr) pcap_breakloop(handle_);
}

}  // namespace tandem::pcapio
