#include "controller/run/vantage.hpp"

#include <algorithm>
#include <map>
#include <tuple>

#include <fmt/format.h>

#include "controller/correlate/correlate.hpp"

namespace tandem::run {

Result<correlate::CaptureSide> merge_captures(std::vector<AgentCapture> captures, bool to_controller_clock) {
  if (captures.size() == 1 && !to_controller_clock) return std::move(captures.front().side);
  correlate::CaptureSide out;
  out.vouched = !captures.empty();
  out.stats.available = !captures.empty();
  struct Slot {
    Nanos ts;
    std::size_t capture, index;
  };
  std::vector<Slot> order;
  std::size_t bytes = 0;
  for (std::size_t c = 0; c < captures.size(); ++c) {
    const auto& s = captures[c].side;
    out.vouched = out.vouched && s.vouched;
    if (!s.present) continue;
    if (out.present && s.linktype != out.linktype) {
      return make_error(Errc::usage, "trace",
                        fmt::format("the captures of one role have different link types ({} and {})", out.linktype, s.linktype));
    }
    out.present = true;
    out.linktype = s.linktype;
    out.stats.received += s.stats.received;
    out.stats.dropped += s.stats.dropped;
    out.stats.if_dropped += s.stats.if_dropped;
    if (!s.stats.available) {
      out.stats.available = false;
      out.stats.unavailable_reason = s.stats.unavailable_reason;
    } else if (!s.stats.unavailable_reason.empty() && out.stats.unavailable_reason.empty()) {
      out.stats.unavailable_reason = s.stats.unavailable_reason;
    }
    for (const auto& w : s.stats.warnings) out.stats.warnings.push_back(w);
    const Nanos shift = to_controller_clock ? captures[c].offset_ns : 0;
    for (std::size_t i = 0; i < s.packets.size(); ++i) order.push_back(Slot{s.packets.index()[i].ts_ns - shift, c, i});
    bytes += s.packets.bytes();
  }
  // Time order on the common clock; ties keep capture order (stable).
  std::stable_sort(order.begin(), order.end(), [](const Slot& a, const Slot& b) { return a.ts < b.ts; });
  out.packets.reserve(order.size(), bytes);
  for (const auto& o : order) {
    pcapio::PacketView v = captures[o.capture].side.packets[o.index];
    v.ts_ns = o.ts;
    out.packets.append(v);
  }
  return out;
}

Result<Combined> correlate_cells(const correlate::CaptureSide& client, const correlate::CaptureSide& server,
                                 const std::vector<CellInput>& cells, const std::vector<correlate::Variant>& variants) {
  Combined out;
  correlate::Correlation& all = out.correlation;
  std::map<std::tuple<std::string, std::string, std::uint16_t>, std::size_t> flow_at;
  std::map<std::pair<std::string, std::string>, std::size_t> problem_at;
  for (std::size_t k = 0; k < cells.size(); ++k) {
    auto corr = correlate::correlate(client, server, cells[k].manifest);
    if (!corr) return corr.error();
    out.cell_verdicts.push_back(diagnose::diagnose(*corr));
    const auto base = static_cast<std::int32_t>(all.probes.size());
    if (k == 0) {
      // The run's metadata (clock, stats, endpoints, l4) is the first cell's; what is per cell is
      // gathered below.
      all = *corr;
      all.probes.clear();
      all.findings.clear();
      all.flows.clear();
      all.capture_problems.clear();
      all.ambiguous = 0;
      if (!variants.empty()) all.variants = variants;
      all.client_packet_probe.assign(corr->client_packet_probe.size(), -1);
      all.server_packet_probe.assign(corr->server_packet_probe.size(), -1);
    }
    all.ambiguous += corr->ambiguous;
    const auto& vmap = cells[k].variant_map;
    for (auto p : corr->probes) {
      p.id += static_cast<std::uint32_t>(base);
      if (p.variant < vmap.size()) p.variant = vmap[p.variant];
      all.probes.push_back(std::move(p));
      out.probe_vantage.push_back(static_cast<std::uint16_t>(cells[k].vantage));
    }
    // A packet belongs to the first cell that claims it (cells never share probes: each has its own
    // run key; a reply two cells could both claim is the earlier cell's).
    auto claim = [base](std::vector<std::int32_t>& into, const std::vector<std::int32_t>& from) {
      for (std::size_t i = 0; i < from.size() && i < into.size(); ++i) {
        if (from[i] >= 0 && into[i] < 0) into[i] = from[i] + base;
      }
    };
    claim(all.client_packet_probe, corr->client_packet_probe);
    claim(all.server_packet_probe, corr->server_packet_probe);
    for (const auto& f : corr->flows) {
      auto key = std::make_tuple(f.client.to_string(), f.target.to_string(), f.dport);
      auto it = flow_at.find(key);
      if (it == flow_at.end()) {
        flow_at.emplace(key, all.flows.size());
        all.flows.push_back(f);
      } else {
        all.flows[it->second].analysed = all.flows[it->second].analysed || f.analysed;
      }
    }
    for (const auto& pr : corr->capture_problems) {
      auto key = std::make_pair(pr.side, pr.code);
      auto it = problem_at.find(key);
      if (it == problem_at.end()) {
        problem_at.emplace(key, all.capture_problems.size());
        all.capture_problems.push_back(pr);
      } else {
        all.capture_problems[it->second].probes += pr.probes;
      }
    }
  }
  std::stable_sort(all.flows.begin(), all.flows.end(), [](const auto& a, const auto& b) {
    return a.analysed != b.analysed ? a.analysed : a.probes > b.probes;
  });
  all.findings = correlate::aggregate_findings(all.probes);
  all.unmatched_client = static_cast<std::uint64_t>(std::count(all.client_packet_probe.begin(), all.client_packet_probe.end(), -1));
  all.unmatched_server = static_cast<std::uint64_t>(std::count(all.server_packet_probe.begin(), all.server_packet_probe.end(), -1));
  return out;
}

void count_vantages(const Combined& combined, const std::vector<CellInput>& cells, std::vector<report::VantageRow>& rows) {
  for (auto& r : rows) {
    r.probes = 0;
    r.fates.assign(correlate::kFateCount, 0);
  }
  const auto& probes = combined.correlation.probes;
  for (std::size_t i = 0; i < probes.size() && i < combined.probe_vantage.size(); ++i) {
    auto& r = rows.at(combined.probe_vantage[i]);
    ++r.probes;
    ++r.fates[static_cast<std::size_t>(probes[i].fate)];
  }
  for (std::size_t k = 0; k < cells.size() && k < combined.cell_verdicts.size(); ++k) {
    rows.at(cells[k].vantage).verdict = combined.cell_verdicts[k].code;
  }
}

namespace {

std::uint64_t fate_count(const report::VantageRow& r, correlate::Fate f) {
  auto i = static_cast<std::size_t>(f);
  return i < r.fates.size() ? r.fates[i] : 0;
}

// Failed on the path (diagnose::FateCounts::failed) and decided, for one row.
std::pair<std::uint64_t, std::uint64_t> failed_decided(const report::VantageRow& r) {
  using F = correlate::Fate;
  std::uint64_t failed = fate_count(r, F::lost_forward) + fate_count(r, F::unanswered) + fate_count(r, F::reply_lost) +
                         fate_count(r, F::injected) + fate_count(r, F::icmp_error);
  return {failed, failed + fate_count(r, F::answered)};
}

// "10.77.3.2", or "10.77.3.2 → 10.77.2.2:21" when the run has several targets, or with the agent
// when two rows share a source address.
std::string label(const std::vector<report::VantageRow>& rows, const report::VantageRow& r) {
  bool many_targets = false, shared_src = false;
  for (const auto& o : rows) {
    many_targets = many_targets || o.target != r.target;
    shared_src = shared_src || (&o != &r && o.src == r.src && o.client != r.client);
  }
  std::string s = r.src.empty() ? "(unknown source)" : r.src;
  if (shared_src) s += " (" + r.client + ")";
  if (many_targets) s += " → " + r.target;
  return s;
}

std::string join(const std::vector<std::string>& items) {
  std::string s;
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i > 0) s += i + 1 == items.size() ? " and " : ", ";
    s += items[i];
  }
  return s;
}

std::string percent(std::uint64_t a, std::uint64_t b) {
  return b == 0 ? std::string("no decided probes") : fmt::format("{:.0f} %", 100.0 * static_cast<double>(a) / static_cast<double>(b));
}

}  // namespace

diagnose::Verdict vantage_verdict(const Combined& combined, const std::vector<report::VantageRow>& rows) {
  diagnose::Verdict v = diagnose::diagnose(combined.correlation);
  if (rows.size() < 2) return v;
  std::vector<const report::VantageRow*> failing, clean;
  for (const auto& r : rows) {
    auto [failed, decided] = failed_decided(r);
    (failed > 0 ? failing : clean).push_back(&r);
  }
  if (failing.empty()) return v;
  std::vector<std::string> fail_labels, clean_labels;
  for (const auto* r : failing) {
    auto [failed, decided] = failed_decided(*r);
    fail_labels.push_back(fmt::format("{} ({} of {}, {})", label(rows, *r), failed, decided, percent(failed, decided)));
  }
  if (clean.empty()) {
    v.text += " It happens from every vantage: " + join(fail_labels) + ".";
    return v;
  }
  std::string clean_text;
  std::uint64_t clean_answered = 0, clean_probes = 0;
  for (const auto* r : clean) {
    clean_labels.push_back(label(rows, *r));
    clean_answered += fate_count(*r, correlate::Fate::answered);
    clean_probes += r->probes;
  }
  if (clean_answered == clean_probes) {
    clean_text = fmt::format("from {} all {} probes were answered", join(clean_labels), clean_probes);
  } else {
    clean_text = fmt::format("from {} no probe failed on the path ({} of {} answered, the rest without evidence)",
                             join(clean_labels), clean_answered, clean_probes);
  }
  v.text += fmt::format(" Only from {}; {}.", join(fail_labels), clean_text);
  return v;
}

}  // namespace tandem::run
