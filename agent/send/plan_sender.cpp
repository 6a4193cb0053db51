#include "agent/send/plan_sender.hpp"

#include "common/netio/raw_sender.hpp"
#include "common/netio/route.hpp"
#include "common/probe/plan.hpp"

namespace tandem::agent {
namespace {

probe::ProbeSpec::L4 to_spec_l4(proto::L4 l4) {
  switch (l4) {
    case proto::L4::udp: return probe::ProbeSpec::L4::udp;
    case proto::L4::icmp: return probe::ProbeSpec::L4::icmp;
    case proto::L4::tcp: break;
  }
  return probe::ProbeSpec::L4::tcp;
}

Result<std::vector<packet::TcpOption>> options_of(const std::string& text) {
  if (text.empty()) return std::vector<packet::TcpOption>{};
  return probe::parse_tcp_options(text);
}

}  // namespace

Result<std::vector<probe::ProbeSpec>> variant_specs(const proto::ProbePlan& plan) {
  auto version = plan.ip_version == 6 ? packet::IpVersion::v6 : packet::IpVersion::v4;
  probe::ProbeSpec base = probe::default_spec(to_spec_l4(plan.l4), version);
  if (plan.l4 != proto::L4::icmp) base.dport = plan.dport;
  if (plan.l4 == proto::L4::tcp) {
    auto o = options_of(plan.tcp_options);
    if (!o) return o.error();
    base.tcp_options = std::move(o).value();
  }
  base.tos = plan.tos;
  if (plan.ttl != 0) base.ttl = plan.ttl;
  base.df = plan.df;
  if (plan.window != 0) base.window = plan.window;
  auto sp = probe::parse_sport(plan.sport);
  if (!sp) return sp.error();
  base.sport = *sp;

  std::vector<probe::ProbeSpec> out;
  if (plan.variants.empty()) {
    out.push_back(base);
    return out;
  }
  for (const auto& v : plan.variants) {
    probe::ProbeSpec s = base;
    if (plan.l4 == proto::L4::tcp) {
      auto o = options_of(v.tcp_options);
      if (!o) return o.error();
      s.tcp_options = std::move(o).value();
    }
    s.tos = v.tos;
    if (v.ttl != 0) s.ttl = v.ttl;
    if (!v.sport.empty()) {
      auto vs = probe::parse_sport(v.sport);
      if (!vs) return vs.error();
      s.sport = *vs;
    }
    out.push_back(std::move(s));
  }
  return out;
}

Result<std::unique_ptr<PlanSender>> PlanSender::start(const proto::ProbePlan& plan) {
  auto dst = packet::IpAddr::parse(plan.dst);
  if (!dst) return make_error(Errc::usage, "send", "bad destination '" + plan.dst + "'");
  auto specs = variant_specs(plan);
  if (!specs) return specs.error();
  auto src = netio::source_address_for(*dst);
  if (!src) return src.error();

  std::unique_ptr<PlanSender> s(new PlanSender());
  s->dst_ = *dst;
  s->count_ = plan.count;
  probe::RunKey key = run_key_for(plan);
  for (const auto& spec : *specs) {
    auto m = probe::make_probe_module(spec, probe::ProbeEndpoints{*src, *dst}, key, plan.count);
    if (!m) return m.error();
    s->modules_.push_back(std::move(m).value());
  }
  s->schedule_ = probe::variant_schedule(plan.seed, plan.count, plan.variants.size());

  auto sender = netio::RawSender::open(dst->version);
  if (!sender) return sender.error();
  s->sender_.emplace(std::move(sender).value());

  netio::SendLoopConfig cfg;
  cfg.count = plan.count;
  auto pace = plan.rate_pps ? netio::Schedule::from_rate(plan.rate_pps)
                            : netio::Schedule::from_interval(plan.interval_us / 1e6);
  if (!pace) return pace.error();
  cfg.schedule = *pace;
  cfg.stop = &s->stop_;
  cfg.keep_timestamps = false;
  PlanSender* self = s.get();
  cfg.on_sent = [self](std::uint64_t, const netio::PacketStatus&) {
    self->attempted_.fetch_add(1, std::memory_order_relaxed);
  };
  s->loop_ = std::make_unique<netio::SendLoop>(
      [self](std::uint64_t index, std::vector<std::uint8_t>& out) {
        auto i = static_cast<std::uint32_t>(index);
        self->modules_[self->schedule_[i]]->build(i, out);
        return self->dst_;
      },
      cfg);
  s->thread_ = std::thread([self] {
    auto r = self->loop_->run(*self->sender_);
    self->result_.emplace(std::move(r));
    self->done_.store(true, std::memory_order_release);
  });
  return s;
}

Result<netio::SendReport> PlanSender::wait() {
  if (thread_.joinable()) thread_.join();
  if (!result_) return make_error(Errc::internal, "send", "sender did not run");
  return *result_;
}

PlanSender::~PlanSender() {
  request_stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace tandem::agent
