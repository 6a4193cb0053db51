// The capture of one run: a CaptureSession on device "any" with a BPF filter the agent generates
// from the run's declared flows (never from controller text alone, T13/T14), streamed to a pcapng
// file in the data directory as packets arrive (payload scrubbing and the disk quota applied, T26),
// so memory stays bounded however long the run lasts: nothing is kept but the writer's buffer.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/base/result.hpp"
#include "common/pcapio/capture_session.hpp"
#include "common/pcapio/pcapng_writer.hpp"
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
  std::filesystem::path path;     // the pcapng file, created by start() and written while capturing
  std::size_t write_buffer_bytes = 64 * 1024;  // the only packet memory a capture holds
};

struct StoredCapture {
  std::filesystem::path path;
  std::uint64_t size = 0;
  std::vector<std::uint8_t> sha256;  // of the whole file
  proto::CaptureStats stats;         // what CAPTURE_STATS reports
  std::uint64_t packets_written = 0;
  std::uint64_t not_stored = 0;      // delivered but not written: quota or write error (in stats.dropped)
};

class RunCapture {
 public:
  // Creates config.path (pcapng section header), opens libpcap and returns once the capture is
  // active (CaptureSession::start()). Every packet is written to the file on the capture thread.
  static Result<std::unique_ptr<RunCapture>> start(RunCaptureConfig config);
  ~RunCapture();  // abort() if neither stop_and_write() nor abort() ran
  RunCapture(const RunCapture&) = delete;
  RunCapture& operator=(const RunCapture&) = delete;
  // Keeps capturing for `drain`, stops, completes the file (interface statistics block), closes and
  // hashes it. Blocks: the daemon calls it on a worker thread. Errc::environment on write errors
  // (the partial file is removed).
  Result<StoredCapture> stop_and_write(std::chrono::milliseconds drain);
  // Stops and removes the file (lease end, RUN_END while capturing).
  void abort();
  std::uint64_t packets_seen() const { return session_.packets_seen(); }
  std::uint64_t packets_written() const { return written_.load(std::memory_order_relaxed); }

 private:
  RunCapture(RunCaptureConfig config, pcapio::PcapngWriter writer);
  void on_packet(const pcapio::PacketView& p);  // capture thread
  Status ensure_interface();                    // the IDB, once the link type is known
  void remove_file();

  RunCaptureConfig config_;
  std::optional<pcapio::PcapngWriter> writer_;
  std::optional<std::uint32_t> iface_;
  std::optional<Error> write_error_;    // first write failure; later packets are not stored
  std::uint64_t estimate_ = 512;        // bytes written so far (SHB + IDB allowance + EPBs)
  std::uint64_t not_stored_ = 0;        // quota or write error
  std::atomic<std::uint64_t> written_{0};
  bool finished_ = false;
  pcapio::CaptureSession session_;      // last: its thread stops before the writer goes away
};

// SHA-256 of a file (libsodium). Errc::environment if unreadable.
Result<std::vector<std::uint8_t>> sha256_file(const std::filesystem::path& path);

}  // namespace tandem::agent
