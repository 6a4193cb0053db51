// The capture of one run: a CaptureSession on device "any" with a BPF filter the agent generates
// from the run's declared flows (never from controller text alone, T13/T14), stored in memory
// while the run lasts and written to the data directory as pcapng when the capture stops, with
// payload scrubbing and the disk quota applied (T26).
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "common/base/result.hpp"
#include "common/pcapio/capture_session.hpp"
#include "common/proto/messages.hpp"

namespace tandem::agent {

// The BPF filter for a run's flows. Addresses are re-formatted from their parsed form, ports are
// numbers, so no controller text reaches the filter compiler verbatim. Per TCP/UDP flow: both
// directions of dst:dport (with the src host and sport range when declared), plus the ICMP errors
// addressed to the declared src that quote a packet of this flow (protocol, src, dst, dport); per
// ICMP flow: ICMP between the two hosts. Flows must have passed check_run_setup(). `extra`
// (RUN_SETUP.capture_filter, only if the policy allows it) can only narrow: it must compile on its
// own with balanced parentheses (else Errc::usage), then it is parenthesised and AND-ed.
// Errc::usage if the result does not compile (check_filter).
Result<std::string> flows_filter(const std::vector<proto::Flow>& flows, const std::string& extra, int snaplen);

// How many leading bytes of a captured frame a scrubbed capture keeps: link, IP and L4 headers
// (TCP options included); for UDP and ICMP echo also a 12-byte tandem identity tag if the payload
// starts with one; ICMP errors up to the end of the quoted packet's L4 header (the same rules
// inside the quote: its payload goes); unknown L4 up to the IP header's end.
std::uint32_t scrubbed_length(int linktype, const pcapio::PacketView& p);

struct RunCaptureConfig {
  std::string filter;     // from flows_filter()
  int snaplen = 256;
  bool scrub_payload = true;
  std::uint64_t quota_bytes = 0;  // file size limit for this capture
  std::string interface_name;     // the pcapng IDB if_name, e.g. "client" / "server"
  std::string description;        // if_description
};

struct StoredCapture {
  std::filesystem::path path;
  std::uint64_t size = 0;
  std::vector<std::uint8_t> sha256;  // of the whole file
  proto::CaptureStats stats;         // what CAPTURE_STATS reports
  std::uint64_t packets_written = 0;
  std::uint64_t not_stored = 0;      // delivered but not written: memory cap or quota (in stats.dropped)
};

class RunCapture {
 public:
  // Opens libpcap and returns once the capture is active (CaptureSession::start()).
  static Result<std::unique_ptr<RunCapture>> start(RunCaptureConfig config);
  // Keeps capturing for `drain`, stops, writes `path` (pcapng, one IDB named config.interface_name)
  // and hashes it. Blocks: the daemon calls it on a worker thread. Errc::environment on write errors
  // (the partial file is removed).
  Result<StoredCapture> stop_and_write(std::chrono::milliseconds drain, const std::filesystem::path& path);
  // Stops without writing anything (lease end, RUN_END while capturing).
  void abort();
  std::uint64_t packets_seen() const { return session_.packets_seen(); }

 private:
  explicit RunCapture(RunCaptureConfig config, pcapio::CaptureSessionConfig session_config)
      : config_(std::move(config)), session_(std::move(session_config)) {}
  RunCaptureConfig config_;
  pcapio::CaptureSession session_;
};

// SHA-256 of a file (libsodium). Errc::environment if unreadable.
Result<std::vector<std::uint8_t>> sha256_file(const std::filesystem::path& path);

}  // namespace tandem::agent
