// The controller's side of a run's lease (docs/wire-protocol.md §5 "Heartbeat"): one thread per
// agent of the run, on a connection of its own, sends STATUS every `period` from RUN_SETUP until the
// run ends, so every agent's lease stays alive however long the run lasts, also while the main
// thread waits for a SEND_REPORT, a CAPTURE_STOP drain or a capture fetch from the other agent.
//
// A heartbeat that gets no reply within `timeout`, an ERROR, or a STATUS saying the agent no longer
// holds the run, marks the agent lost: failure() then names the agent and why, and the run must be
// abandoned (the lost agent's own lease ends its side within 3 s of our silence).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "common/base/clock.hpp"
#include "common/base/result.hpp"
#include "common/proto/messages.hpp"
#include "common/transport/agent_address.hpp"
#include "common/transport/curve.hpp"

namespace tandem::orchestrate {

struct HeartbeatOptions {
  std::string role;  // "client" / "server", for messages
  transport::AgentAddress agent;
  transport::CurveKeypair controller_key;
  std::string controller_name = "tandem";
  std::chrono::milliseconds period{500};   // <= 1 s: the agent ends a sending run after 3 s of silence
  std::chrono::milliseconds timeout{3000};  // one STATUS unanswered this long: the agent is lost
};

// What the last answered STATUS said, with the counters its detail carries ("sent N/M, captured K",
// docs/agent.md), when present.
struct AgentProgress {
  proto::StatusReply status;
  std::optional<std::uint64_t> sent, total, captured;
  Nanos at_mono = 0;
};

// Parses "sent N/M" and "captured K" out of a STATUS_REPLY detail (absent fields stay empty).
AgentProgress parse_progress(const proto::StatusReply& status);

class Heartbeat {
 public:
  // Connects, says HELLO (so a refused key fails here) and starts the thread. Errc::peer naming the
  // agent if it does not answer.
  static Result<std::unique_ptr<Heartbeat>> start(HeartbeatOptions options);
  ~Heartbeat();  // stop()
  Heartbeat(const Heartbeat&) = delete;
  Heartbeat& operator=(const Heartbeat&) = delete;

  // Ends the thread (at most one request timeout later). Call before RUN_END: after it the agent no
  // longer holds the run, which a heartbeat would report as a loss.
  void stop();
  // Why the agent is lost ("server agent tcp://…: heartbeat: no reply within 3 s …"), or nullopt.
  std::optional<Error> failure() const;
  std::optional<AgentProgress> progress() const;

 private:
  explicit Heartbeat(HeartbeatOptions options);
  void run();

  HeartbeatOptions opt_;
  struct Link;
  std::unique_ptr<Link> link_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::optional<Error> failure_;
  std::optional<AgentProgress> progress_;
  std::thread thread_;
};

}  // namespace tandem::orchestrate
