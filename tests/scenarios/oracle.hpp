// The golden scenarios' independent oracle: tests/scenarios/<name>/truth.json, written by
// tandem-gen-scenarios from what it did to every probe (gen_scenarios.cpp), never from tandem's
// output. disagreements() compares a report.json with it; the scenario test and regen.sh (through
// `tandem-gen-scenarios --check`) both use it, so a baseline can only change when it agrees.
//
// truth.json:
//   { "verdict": "lost_forward",
//     "probes": [ {"sport": 40000, "fate": "answered", "reply": "syn_ack"},            one per probe sent
//                 {"sport": 40001, "fate": "icmp_error", "reply": "icmp:3/13", "hop": "10.77.1.1"} ],
//     "findings": [ {"direction": "forward", "field": "ip.dscp", "sent": 46, "received": 0, "probes": 20} ] }
// "reply" is null when no reply reached the client; "hop" is compared only when present.
#pragma once

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace tandem::scenarios {

// One line per disagreement between report.json and the truth; empty when they agree.
inline std::vector<std::string> disagreements(const nlohmann::json& truth, const nlohmann::json& report) {
  std::vector<std::string> out;
  auto str = [](const nlohmann::json& j) { return j.dump(); };
  const auto& want_code = truth.at("verdict");
  const nlohmann::json got_code = report.contains("verdict") ? report.at("verdict").value("code", nlohmann::json()) : nullptr;
  if (got_code != want_code) out.push_back("verdict: tandem says " + str(got_code) + ", truth " + str(want_code));

  // Probes by source port (unique per probe in every scenario).
  std::map<int, nlohmann::json> got;
  for (const auto& p : report.value("probes", nlohmann::json::array())) got[p.value("sport", -1)] = p;
  std::map<std::string, int> want_fates;
  for (const auto& t : truth.at("probes")) {
    const int sport = t.at("sport");
    ++want_fates[t.at("fate").get<std::string>()];
    auto it = got.find(sport);
    if (it == got.end()) {
      out.push_back("probe sport " + std::to_string(sport) + ": missing from the report");
      continue;
    }
    const auto& g = it->second;
    for (const char* key : {"fate", "reply", "hop"}) {
      if (!t.contains(key) && std::string(key) == "hop") continue;
      const nlohmann::json want = t.value(key, nlohmann::json());
      const nlohmann::json have = g.value(key, nlohmann::json());
      if (want != have)
        out.push_back("probe sport " + std::to_string(sport) + ": " + key + " " + str(have) + ", truth " + str(want));
    }
    got.erase(it);
  }
  for (const auto& [sport, g] : got) out.push_back("probe sport " + std::to_string(sport) + ": not sent by the generator");

  // The summary counts every fate the truth has, and none it lacks.
  const auto fates = report.contains("summary") ? report.at("summary").value("fates", nlohmann::json::object())
                                                : nlohmann::json::object();
  for (const auto& [name, n] : fates.items()) {
    const int want = want_fates.count(name) ? want_fates[name] : 0;
    if (n.get<int>() != want) out.push_back("summary.fates." + name + ": " + n.dump() + ", truth " + std::to_string(want));
  }

  // Findings as a set of (direction, field, sent, received, probes).
  auto key_of = [](const nlohmann::json& f) {
    return nlohmann::json{f.value("direction", ""), f.value("field", ""), f.value("sent", nlohmann::json()),
                          f.value("received", nlohmann::json()), f.value("probes", 0)}
        .dump();
  };
  std::vector<std::string> want_f, got_f;
  for (const auto& f : truth.at("findings")) want_f.push_back(key_of(f));
  for (const auto& f : report.value("findings", nlohmann::json::array())) got_f.push_back(key_of(f));
  std::sort(want_f.begin(), want_f.end());
  std::sort(got_f.begin(), got_f.end());
  for (const auto& f : want_f) {
    if (!std::binary_search(got_f.begin(), got_f.end(), f)) out.push_back("finding missing: " + f);
  }
  for (const auto& f : got_f) {
    if (!std::binary_search(want_f.begin(), want_f.end(), f)) out.push_back("finding not in the truth: " + f);
  }
  return out;
}

}  // namespace tandem::scenarios
