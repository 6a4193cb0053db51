// Who is who (docs/correlation.md "Endpoints"): the probe protocol, the client, the flow that is
// analysed and every other flow, and the server's own address — from the manifest and the
// captures' owners where known, otherwise from the per-packet records (no second decode).
#include <algorithm>
#include <unordered_map>

#include "controller/correlate/correlator.hpp"

namespace tandem::correlate::detail {
namespace {

// The most frequent value of id_of(rec) over recs passing keep(rec).
template <class Keep, class IdOf>
std::optional<std::uint16_t> most_frequent(const std::vector<Rec>& recs, std::size_t n_ids, Keep keep, IdOf id_of) {
  std::vector<std::uint32_t> counts(n_ids + 1, 0);
  for (const auto& r : recs) {
    if (keep(r)) {
      auto id = id_of(r);
      if (id < counts.size()) ++counts[id];
    }
  }
  auto it = std::max_element(counts.begin(), counts.end());
  if (it == counts.end() || *it == 0) return std::nullopt;
  return static_cast<std::uint16_t>(it - counts.begin());
}

// At most this many flows are listed besides the analysed one.
constexpr std::size_t kMaxFlowsListed = 50;

}  // namespace

void Correlator::find_endpoints() {
  if (m_.l4.empty()) {
    // Without a manifest: TCP if the client capture holds any SYN, else UDP, else ICMP echo.
    const auto& n = c_.role_n;
    l4_ = n[kRoleSyn] ? L4Kind::tcp : n[kRoleDatagram] ? L4Kind::udp : n[kRoleEchoReq] ? L4Kind::icmp : L4Kind::tcp;
  }
  const Role probe_role = l4_ == L4Kind::tcp ? kRoleSyn : l4_ == L4Kind::udp ? kRoleDatagram : kRoleEchoReq;
  corr_.l4 = l4_ == L4Kind::tcp ? "tcp" : l4_ == L4Kind::udp ? "udp" : "icmp";
  auto shape = [&](const Rec& r) { return is_probe_shape(r, l4_); };
  if (c_.cap->present) {
    auto known = m_.client ? m_.client : c_.cap->local;
    std::optional<std::uint16_t> want_client, want_target;
    if (known) want_client = c_.addrs.find(*known);
    if (m_.target) want_target = c_.addrs.find(*m_.target);
    const bool client_missing = known && !want_client;
    const bool target_missing = m_.target && !want_target;
    // Probe-shaped packets this host sent: those the link layer marks outgoing when it marks any.
    const bool any_out = c_.role_out[probe_role] > 0;
    // Flows (client, destination, port), counted in one pass; the analysed one is the flow with the
    // most probes among those the manifest allows — never merely the first one seen.
    std::unordered_map<std::uint64_t, std::uint64_t> flows;
    std::uint64_t last_key = ~std::uint64_t{0};
    std::uint64_t* last = nullptr;
    c_shaped_.clear();
    c_shaped_.reserve(c_.role_n[probe_role]);
    for (std::uint32_t i = 0; i < c_.recs.size(); ++i) {
      const Rec& r = c_.recs[i];
      if (!shape(r)) continue;
      c_shaped_.push_back(i);
      if (any_out && !(r.bits & kOutgoing)) continue;
      const std::uint16_t port = l4_ == L4Kind::icmp ? 0 : r.dport;
      const std::uint64_t key = std::uint64_t{r.src} << 32 | std::uint64_t{r.dst} << 16 | port;
      if (key != last_key) {
        last = &flows[key];
        last_key = key;
      }
      ++*last;
    }
    std::vector<std::pair<std::uint64_t, std::uint64_t>> sorted(flows.begin(), flows.end());
    std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) {
      return a.second != b.second ? a.second > b.second : a.first < b.first;
    });
    auto allowed = [&](std::uint64_t key) {
      const auto src = static_cast<std::uint16_t>(key >> 32), dst = static_cast<std::uint16_t>(key >> 16);
      const auto port = static_cast<std::uint16_t>(key);
      if (client_missing || target_missing) return false;
      if (want_client && src != *want_client) return false;
      if (want_target && dst != *want_target) return false;
      if (m_.dport && l4_ != L4Kind::icmp && port != *m_.dport) return false;
      return true;
    };
    std::optional<std::uint64_t> chosen;
    for (const auto& [key, n] : sorted) {
      if (allowed(key)) { chosen = key; break; }
    }
    if (chosen) {
      client_id_ = static_cast<std::uint16_t>(*chosen >> 32);
      target_id_ = static_cast<std::uint16_t>(*chosen >> 16);
      if (l4_ != L4Kind::icmp) dport_ = static_cast<std::uint16_t>(*chosen);
    } else {
      // No probe of the wanted flow: keep what was given so the report says what was looked for.
      client_id_ = want_client;
      target_id_ = want_target;
      if (m_.dport) dport_ = *m_.dport;
      if (!client_id_ && !known) {
        client_id_ = most_frequent(c_.recs, c_.addrs.size(), [&](const Rec& r) { return r.src != AddrTable::kOverflow; },
                                   [](const Rec& r) { return r.src; });
      }
    }
    if (m_.dport && !dport_) dport_ = *m_.dport;
    for (const auto& [key, n] : sorted) {
      const bool analysed = chosen && key == *chosen;
      if (!analysed && corr_.flows.size() >= kMaxFlowsListed) continue;
      const IpAddr* src = c_.addrs.get(static_cast<std::uint16_t>(key >> 32));
      const IpAddr* dst = c_.addrs.get(static_cast<std::uint16_t>(key >> 16));
      if (!src || !dst) continue;
      corr_.flows.push_back(FlowCount{*src, *dst, static_cast<std::uint16_t>(key), n, analysed});
    }
    if (client_id_) {
      if (const IpAddr* a = c_.addrs.get(*client_id_)) corr_.client = *a;
    } else if (known) {
      corr_.client = *known;
    }
    if (target_id_) {
      if (const IpAddr* a = c_.addrs.get(*target_id_)) corr_.target = *a;
    } else if (m_.target) {
      corr_.target = *m_.target;
    }
    corr_.dport = dport_;
  }
  if (s_.cap->present) {
    if (s_.cap->local) server_id_ = s_.addrs.find(*s_.cap->local);
    else if (m_.server) server_id_ = s_.addrs.find(*m_.server);
    else {
      // NAT may change the destination (DNAT), so the server is whoever receives probe-shaped
      // packets most often, not necessarily the address the client aimed at.
      const bool any_in = s_.cap->linktype != 0 && pcapio::is_linux_cooked(s_.cap->linktype) &&
                          s_.role_n[probe_role] > s_.role_out[probe_role];
      server_id_ = most_frequent(s_.recs, s_.addrs.size(), [&](const Rec& r) { return shape(r) && (!any_in || !(r.bits & kOutgoing)); },
                                 [](const Rec& r) { return r.dst; });
    }
    if (server_id_) {
      if (const IpAddr* a = s_.addrs.get(*server_id_)) corr_.server = *a;
    }
    if (!corr_.server && s_.cap->local) corr_.server = *s_.cap->local;
    if (!corr_.server) corr_.server = corr_.target;
  }
}

}  // namespace tandem::correlate::detail
