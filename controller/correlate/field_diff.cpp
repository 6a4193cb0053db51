#include "controller/correlate/field_diff.hpp"

#include "common/packet/checksum.hpp"

#include <algorithm>
#include <map>
#include <string>
#include <tuple>
#include <utility>

#include "common/packet/checksum.hpp"
#include "common/packet/tcp_option.hpp"
#include "controller/correlate/correlate.hpp"

namespace tandem::correlate {
namespace {

nlohmann::json option_value(const packet::TcpOptionView& o) {
  auto be = [&](std::size_t at, std::size_t n) {
    std::uint32_t v = 0;
    for (std::size_t i = 0; i < n; ++i) v = v << 8 | o.data[at + i];
    return v;
  };
  switch (o.kind) {
    case packet::kTcpOptMss:
      if (o.data.size() == 2) return be(0, 2);
      break;
    case packet::kTcpOptWscale:
      if (o.data.size() == 1) return o.data[0];
      break;
    case packet::kTcpOptSackPerm:
      if (o.data.empty()) return true;
      break;
    case packet::kTcpOptTimestamp:
      if (o.data.size() == 8) return nlohmann::json{{"tsval", be(0, 4)}, {"tsecr", be(4, 4)}};
      break;
    default: break;
  }
  // Unknown kinds and odd lengths: the data bytes as hex, so any change shows.
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s;
  for (auto b : o.data) { s += kHex[b >> 4]; s += kHex[b & 15]; }
  return s;
}

struct OptList {
  std::vector<std::pair<std::uint8_t, nlohmann::json>> items;  // NOP/EOL left out: padding, not options
  nlohmann::json order() const {
    auto a = nlohmann::json::array();
    for (const auto& [k, v] : items) a.push_back(packet::option_name(k));
    return a;
  }
  const nlohmann::json* find(std::uint8_t kind) const {
    for (const auto& [k, v] : items) {
      if (k == kind) return &v;
    }
    return nullptr;
  }
};

OptList options_of(std::span<const std::uint8_t> raw) {
  OptList l;
  packet::for_each_tcp_option(raw, [&](const packet::TcpOptionView& o) {
    if (o.kind == packet::kTcpOptNop || o.kind == packet::kTcpOptEol) return;
    if (l.find(o.kind)) return;
    l.items.emplace_back(o.kind, option_value(o));
  });
  return l;
}

}  // namespace

std::optional<std::string> bad_checksum(const packet::Decoded& d) {
  if (d.l3 != packet::L3::ip || d.snap_truncated) return std::nullopt;
  if (d.ip.is_v4() && packet::internet_checksum(d.ip.header) != 0) return "ip.checksum";
  if (d.ip.is_later_fragment() || d.ip.more_fragments) return std::nullopt;
  const std::size_t l4_len = d.ip.total_length > d.ip.header_length ? d.ip.total_length - d.ip.header_length : 0;
  if (d.ip.payload.size() != l4_len) return std::nullopt;  // cut: cannot be summed
  const char* field = d.l4 == packet::L4::tcp ? "tcp.checksum" : d.l4 == packet::L4::udp ? "udp.checksum" : nullptr;
  if (field == nullptr) return std::nullopt;
  if (d.l4 == packet::L4::udp && d.ip.is_v4() && d.udp.checksum == 0) return std::nullopt;  // no checksum
  std::uint32_t sum = packet::pseudo_header_sum(d.ip.src, d.ip.dst, d.ip.protocol, static_cast<std::uint32_t>(l4_len));
  if (packet::checksum_finish(packet::checksum_add(sum, d.ip.payload)) != 0) return std::string(field);
  return std::nullopt;
}

bool tcp_options_complete(const packet::TcpView& t) {
  return t.data_offset >= 5 && t.options.size() == static_cast<std::size_t>(t.data_offset) * 4 - 20;
}

int diff_packets(Direction dir, const packet::Decoded& a, const packet::Decoded& b, std::vector<FieldChange>& out) {
  int cut = 0;
  auto add = [&](const char* field, nlohmann::json sent, nlohmann::json recv) {
    out.push_back(FieldChange{dir, field, std::move(sent), std::move(recv)});
  };
  auto addf = [&](std::string field, nlohmann::json sent, nlohmann::json recv) {
    out.push_back(FieldChange{dir, std::move(field), std::move(sent), std::move(recv)});
  };
  if (a.l3 != packet::L3::ip || b.l3 != packet::L3::ip) return cut;
  if (a.ip.dscp() != b.ip.dscp()) add("ip.dscp", a.ip.dscp(), b.ip.dscp());
  if (a.ip.ecn() != b.ip.ecn()) add("ip.ecn", a.ip.ecn(), b.ip.ecn());
  // Every router decrements the TTL / hop limit (reported as the hop count, not a finding); one that
  // arrives higher than it left was rewritten on the way (a TTL normaliser).
  if (b.ip.ttl > a.ip.ttl) add("ip.ttl", a.ip.ttl, b.ip.ttl);
  if (a.ip.is_v4() && b.ip.is_v4()) {
    if (a.ip.ip_id != b.ip.ip_id) add("ip.id", a.ip.ip_id, b.ip.ip_id);
    if (a.ip.df != b.ip.df) add("ip.df", a.ip.df, b.ip.df);
  } else if (a.ip.flow_label != b.ip.flow_label) {
    add("ip.flow_label", a.ip.flow_label, b.ip.flow_label);
  }
  if (a.ip.src != b.ip.src) add("ip.src", a.ip.src.to_string(), b.ip.src.to_string());
  if (a.ip.dst != b.ip.dst) add("ip.dst", a.ip.dst.to_string(), b.ip.dst.to_string());
  if (a.l4 == packet::L4::tcp && b.l4 == packet::L4::tcp) {
    const auto &x = a.tcp, &y = b.tcp;
    if (x.sport != y.sport) add("tcp.sport", x.sport, y.sport);
    if (x.dport != y.dport) add("tcp.dport", x.dport, y.dport);
    if (x.seq != y.seq) add("tcp.seq", x.seq, y.seq);
    if (x.window != y.window) add("tcp.window", x.window, y.window);
    if (!tcp_options_complete(x)) cut |= kSentCut;
    if (!tcp_options_complete(y)) cut |= kReceivedCut;
    if (cut == 0 && !std::equal(x.options.begin(), x.options.end(), y.options.begin(), y.options.end())) {
      auto ox = options_of(x.options), oy = options_of(y.options);
      for (const auto& [k, v] : ox.items) {
        const auto* w = oy.find(k);
        if (!w) addf("tcp.option." + packet::option_name(k), v, nullptr);
        else if (*w != v) addf("tcp.option." + packet::option_name(k), v, *w);
      }
      for (const auto& [k, v] : oy.items) {
        if (!ox.find(k)) addf("tcp.option." + packet::option_name(k), nullptr, v);
      }
      // Order is a finding only among options both sides carry: a removed option already is one.
      std::vector<std::uint8_t> kx, ky;
      for (const auto& [k, v] : ox.items) if (oy.find(k)) kx.push_back(k);
      for (const auto& [k, v] : oy.items) if (ox.find(k)) ky.push_back(k);
      if (kx != ky) add("tcp.options.order", ox.order(), oy.order());
    }
  } else if (a.l4 == packet::L4::udp && b.l4 == packet::L4::udp) {
    if (a.udp.sport != b.udp.sport) add("udp.sport", a.udp.sport, b.udp.sport);
    if (a.udp.dport != b.udp.dport) add("udp.dport", a.udp.dport, b.udp.dport);
  }
  return cut;
}

std::vector<Finding> aggregate_findings(const std::vector<ProbeRecord>& probes) {
  std::map<std::tuple<int, std::string, std::string, std::string>, Finding> agg;
  for (const auto& p : probes) {
    for (const auto& ch : p.changes) {
      auto key = std::make_tuple(static_cast<int>(ch.direction), ch.field, ch.sent.dump(), ch.received.dump());
      auto [it, fresh] = agg.try_emplace(key);
      if (fresh) it->second = Finding{"modified", ch.direction, ch.field, ch.sent, ch.received, 0};
      ++it->second.probes;
    }
  }
  // Merge a field's pairs when there are more than kMaxDistinct of them (see Finding::distinct).
  constexpr std::size_t kMaxDistinct = 4;
  std::map<std::pair<int, std::string>, std::vector<Finding*>> by_field;
  for (auto& [k, f] : agg) by_field[{std::get<0>(k), std::get<1>(k)}].push_back(&f);
  std::vector<Finding> out;
  for (auto& [k, fs] : by_field) {
    if (fs.size() <= kMaxDistinct) {
      for (auto* f : fs) out.push_back(std::move(*f));
      continue;
    }
    Finding merged = *fs.front();
    merged.probes = 0;
    merged.distinct = fs.size();
    for (auto* f : fs) merged.probes += f->probes;
    out.push_back(std::move(merged));
  }
  std::stable_sort(out.begin(), out.end(), [](const Finding& a, const Finding& b) {
    if (a.direction != b.direction) return a.direction < b.direction;
    if (a.field != b.field) return a.field < b.field;
    return a.probes > b.probes;
  });
  return out;
}

}  // namespace tandem::correlate
