#include "agent/session/session.hpp"

namespace tandem::agent {

proto::SessionState connection_state(const Connection& c, const std::string& run_owner, RunPhase phase) {
  using S = proto::SessionState;
  if (!c.hello) return S::start;
  if (run_owner.empty() || run_owner != c.key) return S::ready;
  switch (phase) {
    case RunPhase::armed: return S::armed;
    case RunPhase::capturing: return S::capturing;
    case RunPhase::stopped: return S::stopped;
    case RunPhase::none: break;
  }
  return S::ready;
}

Decision decide(const Connection& c, const std::string& run_owner, RunPhase phase, proto::MsgType request,
                const std::string& expired_owner) {
  using T = proto::MsgType;
  Decision d;
  d.from = connection_state(c, run_owner, phase);
  d.to = proto::next_state(d.from, request);
  if (request == T::bye) {
    d.verdict = Verdict::close;
    return d;
  }
  if (d.to == proto::SessionState::invalid) {
    bool run_request = request == T::capture_start || request == T::capture_stop || request == T::send_plan ||
                       request == T::run_end;
    d.verdict = (run_request && d.from == proto::SessionState::ready && !expired_owner.empty() && expired_owner == c.key)
                    ? Verdict::lease_expired
                    : Verdict::invalid;
    return d;
  }
  if (request == T::run_setup && !run_owner.empty()) {
    d.verdict = Verdict::busy;  // one run at a time, whoever holds it
    return d;
  }
  d.verdict = Verdict::handle;
  return d;
}

}  // namespace tandem::agent
