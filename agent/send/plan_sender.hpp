// Sending a ProbePlan: plan -> per stream (vantage x target) one probe module per variant (the
// stream's RunKey, so identities do not depend on the variant) -> SendLoop on a worker thread, so
// the daemon keeps answering STATUS while probes go out. The plan must have passed check_plan() first.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "common/base/result.hpp"
#include "common/netio/send_loop.hpp"
#include "common/probe/probe_module.hpp"
#include "common/probe/spec.hpp"
#include "common/proto/messages.hpp"

namespace tandem::agent {

// The run key of a plan: the low 32 bits of its seed (the controller derives the same).
inline probe::RunKey run_key_for(const proto::ProbePlan& plan) {
  return probe::RunKey{static_cast<std::uint32_t>(plan.seed)};
}

// The probe spec of each variant (index = variant number; a plan without variants has one, the
// base). Variant fields replace the base's tcp_options, tos and sport; "" options = none, "" sport =
// the base's. Errc::usage naming the field on bad syntax.
Result<std::vector<probe::ProbeSpec>> variant_specs(const proto::ProbePlan& plan);
// The same for a stream's own variant list (empty: the base alone).
Result<std::vector<probe::ProbeSpec>> variant_specs(const proto::ProbePlan& plan,
                                                    const std::vector<proto::ProbeVariant>& variants);

class PlanSender {
 public:
  // Builds the modules, opens the raw socket (Errc::permission without CAP_NET_RAW) and starts the
  // worker thread. Everything that can fail synchronously fails here, before any packet leaves.
  static Result<std::unique_ptr<PlanSender>> start(const proto::ProbePlan& plan);
  ~PlanSender();  // stops and joins
  PlanSender(const PlanSender&) = delete;
  PlanSender& operator=(const PlanSender&) = delete;

  bool done() const { return done_.load(std::memory_order_acquire); }
  std::uint64_t attempted() const { return attempted_.load(std::memory_order_relaxed); }
  std::uint32_t count() const { return count_; }
  // Asks the loop to stop (lease end, RUN_END); returns at once. wait() joins.
  void request_stop() { stop_.store(true); }
  // Joins the worker and returns the loop's report (the SendLoop error if it could not run).
  Result<netio::SendReport> wait();

 private:
  PlanSender() = default;
  // One stream of the plan (proto::streams_of): its modules (one per variant, its own run key and
  // source address) and the variant of each of its probes.
  struct Stream {
    std::vector<std::unique_ptr<probe::ProbeModule>> modules;
    std::vector<std::uint16_t> schedule;
    packet::IpAddr dst;
  };
  std::vector<Stream> streams_;
  std::vector<std::uint16_t> order_;  // probe::stream_schedule: the stream of each send slot
  std::vector<std::uint32_t> id_;     // the probe id (within its stream) of each send slot
  std::uint32_t count_ = 0;
  std::optional<netio::RawSender> sender_;
  std::unique_ptr<netio::SendLoop> loop_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> done_{false};
  std::atomic<std::uint64_t> attempted_{0};
  std::optional<Result<netio::SendReport>> result_;  // written by the worker before done_
};

}  // namespace tandem::agent
