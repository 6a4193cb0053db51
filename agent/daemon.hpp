// The agent's server loop: one AgentServer (CURVE ROUTER, fail-closed ZAP), the operator policy,
// at most one run at a time, and the lease that ends it. Requests are answered in order on the
// loop's thread; the two slow operations run on workers so STATUS keeps being answered:
//   SEND_PLAN    -> PlanSender thread; SEND_REPORT goes to the original requester (routing id +
//                   request id) when the plan is done.
//   CAPTURE_STOP -> drain + pcapng write on a std::async task; CAPTURE_STATS likewise deferred.
#pragma once

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include "agent/audit.hpp"
#include "agent/policy/policy.hpp"
#include "common/base/result.hpp"
#include "common/transport/curve.hpp"

namespace tandem::agent {

struct DaemonOptions {
  std::string listen;                   // "tcp://ADDR:PORT" ("tcp://127.0.0.1:*" = ephemeral)
  transport::CurveKeypair keypair;
  Policy policy;                        // controller_keys already merged with --allow-controller
  std::filesystem::path data_dir;       // created (0700) if missing
  Audit audit;
  std::chrono::milliseconds poll{20};   // loop granularity (lease checks, worker completions)
  // Re-reads the policy and allow list (SIGHUP). Empty: reload is not possible.
  std::function<Result<Policy>()> reload_policy;
};

class Daemon {
 public:
  // Prepares the data dir (removing stale run files of a previous process, audited) and binds.
  // Errc::config for bad keys, Errc::environment for bind/data-dir failures.
  static Result<std::unique_ptr<Daemon>> start(DaemonOptions options);
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  const std::string& endpoint() const;  // bound endpoint, real port
  // Serves until `stop` is true, then ends any run (files deleted) and returns. An error only if
  // the server broke (socket failure, ZAP handler died: fail closed means we stop serving).
  // Whenever `reload` is set (SIGHUP), it is cleared and DaemonOptions::reload_policy applied: the
  // new policy and keys govern every later request (a key removed is refused at its next message,
  // also mid-run; a run held by a removed key ends at once: sending and capture stop, files deleted); if the new files are bad, the old policy
  // stays and the failure is audited.
  Status run(const std::atomic<bool>& stop, std::atomic<bool>* reload = nullptr);
  // The same, on request (tests): returns what run() would audit.
  Status reload_now();

  struct Impl;

 private:
  explicit Daemon(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tandem::agent
