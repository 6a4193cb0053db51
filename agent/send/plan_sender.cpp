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
  return variant_specs(plan, plan.variants);
}

Result<std::vector<probe::ProbeSpec>> variant_specs(const proto::ProbePlan& plan,
                                                    const std::vector<proto::ProbeVariant>& variants) {
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
  if (variants.empty()) {
    out.push_back(base);
    return out;
  }
  for (const auto& v : variants) {
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
  std::unique_ptr<PlanSender> s(new PlanSender());
  const auto streams = proto::streams_of(plan);
  const auto version = plan.ip_version == 6 ? packet::IpVersion::v6 : packet::IpVersion::v4;
  std::vector<std::uint32_t> counts;
  for (const auto& st : streams) {
    auto dst = packet::IpAddr::parse(st.dst);
    if (!dst) return make_error(Errc::usage, "send", "bad destination '" + st.dst + "'");
    if (dst->version != version) return make_error(Errc::usage, "send", "destination " + st.dst + " is not IPv" + std::to_string(plan.ip_version));
    // The source: the stream's own (the policy checked it is this host's) or the routing default.
    Result<packet::IpAddr> src = st.src.empty() ? netio::source_address_for(*dst) : Result<packet::IpAddr>(make_error(Errc::usage, "send", "bad source '" + st.src + "'"));
    if (!st.src.empty()) {
      if (auto a = packet::IpAddr::parse(st.src); a && a->version == version) src = *a;
    }
    if (!src) return src.error();
    auto specs = variant_specs(plan, st.variants);
    if (!specs) return specs.error();
    Stream out;
    out.dst = *dst;
    probe::RunKey key{static_cast<std::uint32_t>(st.seed)};
    for (const auto& spec : *specs) {
      probe::ProbeSpec sp = spec;
      if (plan.l4 != proto::L4::icmp) sp.dport = st.dport;
      auto m = probe::make_probe_module(sp, probe::ProbeEndpoints{*src, *dst}, key, st.count);
      if (!m) return m.error();
      out.modules.push_back(std::move(m).value());
    }
    out.schedule = probe::variant_schedule(st.seed, st.count, st.variants.size());
    s->streams_.push_back(std::move(out));
    counts.push_back(st.count);
  }
  s->order_ = probe::stream_schedule(plan.seed, counts);
  {
    std::vector<std::uint32_t> next(s->streams_.size(), 0);
    s->id_.reserve(s->order_.size());
    for (auto st : s->order_) s->id_.push_back(next[st]++);
  }
  s->count_ = static_cast<std::uint32_t>(s->order_.size());

  auto sender = netio::RawSender::open(version);
  if (!sender) return sender.error();
  s->sender_.emplace(std::move(sender).value());

  netio::SendLoopConfig cfg;
  cfg.count = s->count_;
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
  // Slot k sends the next probe of stream order_[k]; a stream's probes go out in id order.
  s->loop_ = std::make_unique<netio::SendLoop>(
      [self](std::uint64_t index, std::vector<std::uint8_t>& out) {
        Stream& st = self->streams_[self->order_[index]];
        std::uint32_t i = self->id_[index];
        st.modules[st.schedule[i]]->build(i, out);
        return st.dst;
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
