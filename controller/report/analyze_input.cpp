#include "controller/report/analyze_input.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <new>

#include <fmt/format.h>

#include "common/packet/build.hpp"
#include "common/packet/decode.hpp"
#include "common/pcapio/pcap_reader.hpp"

namespace tandem::report {
namespace {

using nlohmann::json;

Error usage(const std::string& origin, const std::string& msg) {
  return make_error(Errc::usage, "analyze", origin + ": " + msg);
}

// Typed getters: absent or null keys leave the value alone; a wrong type is an error naming the key.
template <class T>
std::optional<Error> get_uint(const json& j, const char* key, std::optional<T>& out, const std::string& origin) {
  if (!j.contains(key) || j[key].is_null()) return std::nullopt;
  const auto& v = j[key];
  if (!v.is_number_unsigned() || v.get<std::uint64_t>() > std::numeric_limits<T>::max()) {
    return usage(origin, fmt::format("\"{}\" must be an integer 0..{}", key, std::numeric_limits<T>::max()));
  }
  out = static_cast<T>(v.get<std::uint64_t>());
  return std::nullopt;
}

std::optional<Error> get_addr(const json& j, const char* key, std::optional<packet::IpAddr>& out,
                              const std::string& origin) {
  if (!j.contains(key) || j[key].is_null()) return std::nullopt;
  const auto& v = j[key];
  std::optional<packet::IpAddr> a;
  if (v.is_string()) a = packet::IpAddr::parse(v.get<std::string>());
  if (!a) return usage(origin, fmt::format("\"{}\" must be an IPv4 or IPv6 address", key));
  out = a;
  return std::nullopt;
}

std::optional<Error> get_string(const json& j, const char* key, std::string& out, const std::string& origin) {
  if (!j.contains(key) || j[key].is_null()) return std::nullopt;
  if (!j[key].is_string()) return usage(origin, fmt::format("\"{}\" must be a string", key));
  out = j[key].get<std::string>();
  return std::nullopt;
}

std::optional<Error> get_clock(const json& j, correlate::RunManifest& m, const std::string& origin) {
  if (!j.contains("clock") || j["clock"].is_null()) return std::nullopt;
  const auto& c = j["clock"];
  if (!c.is_object() || !c.contains("offset_ns") || !c["offset_ns"].is_number_integer()) {
    return usage(origin, "\"clock\" must be an object with an integer \"offset_ns\"");
  }
  correlate::ClockEstimate k;
  k.offset_ns = c["offset_ns"].get<Nanos>();
  if (c.contains("error_ns") && c["error_ns"].is_number_integer()) k.error_ns = c["error_ns"].get<Nanos>();
  k.source = c.value("source", std::string("manifest"));
  // A report whose clock source was "none" carries no clock knowledge; let correlate estimate.
  if (k.source == "none") return std::nullopt;
  m.clock = k;
  return std::nullopt;
}

std::optional<Error> get_variants(const json& arr, std::vector<correlate::Variant>& out, const std::string& origin) {
  if (!arr.is_array()) return usage(origin, "\"variants\" must be an array");
  for (const auto& v : arr) {
    if (!v.is_object()) return usage(origin, "\"variants\" entries must be objects");
    correlate::Variant var;
    if (auto e = get_string(v, "name", var.name, origin)) return e;
    if (auto e = get_string(v, "tcp_options", var.tcp_options, origin)) return e;
    if (auto e = get_string(v, "sport", var.sport, origin)) return e;
    std::optional<std::uint8_t> tos;
    if (auto e = get_uint(v, "tos", tos, origin)) return e;
    var.tos = tos.value_or(0);
    std::optional<std::uint8_t> ttl;
    if (auto e = get_uint(v, "ttl", ttl, origin)) return e;
    var.ttl = ttl.value_or(0);
    out.push_back(std::move(var));
  }
  return std::nullopt;
}

Result<AnalyzeManifest> parse_own(const json& j, const std::string& origin) {
  AnalyzeManifest a;
  auto& m = a.run;
  if (auto e = get_uint(j, "run_key", m.run_key, origin)) return *e;
  if (auto e = get_uint(j, "count", m.count, origin)) return *e;
  if (auto e = get_addr(j, "client", m.client, origin)) return *e;
  if (auto e = get_addr(j, "target", m.target, origin)) return *e;
  if (auto e = get_uint(j, "dport", m.dport, origin)) return *e;
  if (auto e = get_string(j, "l4", m.l4, origin)) return *e;
  if (m.l4 != "tcp" && m.l4 != "udp" && m.l4 != "icmp") return usage(origin, "\"l4\" must be tcp, udp or icmp");
  if (m.count && *m.count > kMaxManifestProbes) {
    return usage(origin, fmt::format("\"count\" {} is above the limit {} (the probe id space)", *m.count,
                                     kMaxManifestProbes));
  }
  if (j.contains("variants") && !j["variants"].is_null()) {
    if (j["variants"].is_array() && j["variants"].size() > kMaxManifestVariants) {
      return usage(origin, fmt::format("\"variants\" has {} entries, above the limit {}", j["variants"].size(),
                                       kMaxManifestVariants));
    }
    if (auto e = get_variants(j["variants"], m.variants, origin)) return *e;
  }
  if (j.contains("probe_variant") && !j["probe_variant"].is_null()) {
    const auto& pv = j["probe_variant"];
    if (!pv.is_array()) return usage(origin, "\"probe_variant\" must be an array of variant indices");
    if (pv.size() > kMaxManifestProbes) {
      return usage(origin, fmt::format("\"probe_variant\" has {} entries, above the limit {} (the probe id space)",
                                       pv.size(), kMaxManifestProbes));
    }
    for (const auto& x : pv) {
      if (!x.is_number_unsigned() || x.get<std::uint64_t>() >= std::max<std::size_t>(m.variants.size(), 1)) {
        return usage(origin, "\"probe_variant\" entries must be indices into \"variants\"");
      }
      m.probe_variant.push_back(static_cast<std::uint16_t>(x.get<std::uint64_t>()));
    }
  }
  if (auto e = get_clock(j, m, origin)) return *e;
  std::optional<std::uint32_t> timeout_ms;
  if (auto e = get_uint(j, "reply_timeout_ms", timeout_ms, origin)) return *e;
  if (timeout_ms) m.reply_timeout_ns = static_cast<Nanos>(*timeout_ms) * 1'000'000;
  if (j.contains("rate_pps") && j["rate_pps"].is_number()) a.rate_pps = j["rate_pps"].get<double>();
  if (auto e = get_string(j, "probe", a.probe, origin)) return *e;
  return a;
}

// A tandem report.json: the same facts, spread over its sections (docs/report-format.md).
Result<AnalyzeManifest> parse_report(const json& j, const std::string& origin) {
  json flat = json::object();
  if (j.contains("target") && j["target"].is_object()) {
    const auto& t = j["target"];
    if (t.contains("address")) flat["target"] = t["address"];
    if (t.contains("port")) flat["dport"] = t["port"];
    if (t.contains("protocol")) flat["l4"] = t["protocol"];
  }
  if (j.contains("client") && j["client"].is_object() && j["client"].contains("address")) {
    flat["client"] = j["client"]["address"];
  }
  if (j.contains("run") && j["run"].is_object()) {
    const auto& r = j["run"];
    for (const char* k : {"run_key", "count", "rate_pps", "probe"}) {
      if (r.contains(k)) flat[k] = r[k];
    }
  }
  if (j.contains("clock")) flat["clock"] = j["clock"];
  if (j.contains("variants") && j["variants"].is_array()) {
    flat["variants"] = j["variants"];
    // probe -> variant index, from the probes' variant names.
    if (j.contains("probes") && j["probes"].is_array()) {
      std::map<std::string, std::size_t> by_name;
      for (std::size_t i = 0; i < j["variants"].size(); ++i) {
        if (j["variants"][i].is_object()) by_name[j["variants"][i].value("name", "")] = i;
      }
      json pv = json::array();
      bool complete = true;
      for (const auto& p : j["probes"]) {
        auto it = p.is_object() && p.contains("variant") && p["variant"].is_string()
                      ? by_name.find(p["variant"].get<std::string>())
                      : by_name.end();
        if (it == by_name.end()) {
          complete = false;
          break;
        }
        pv.push_back(it->second);
      }
      if (complete && by_name.size() > 1) flat["probe_variant"] = pv;
    }
  }
  return parse_own(flat, origin);
}

}  // namespace

void reserve_for_file(pcapio::PacketBuffer& packets, const std::string& path) {
  // The packet bytes of a pcap or pcapng file are fewer than the file's bytes, so the arena never
  // grows (growing copies it, holding old and new at once: up to twice the file in memory while
  // reading). Reserved pages that no packet fills are never touched and take no memory. Records of
  // 64 bytes or more (a minimal Ethernet frame and its record header) fill the index reserved here;
  // smaller ones make it grow as before.
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec || size == 0) return;
  try {
    packets.reserve(static_cast<std::size_t>(size / 64), static_cast<std::size_t>(size));
  } catch (const std::bad_alloc&) {
    // More than the address space allows at once: let the buffers grow as the packets come.
  }
}

std::string cut_short_warning(std::uint64_t complete_packets) {
  return fmt::format("file ends mid-packet after {} complete packets (copied while the capture was running?); "
                     "later packets are missing",
                     complete_packets);
}

Result<correlate::CaptureSide> read_capture_file(const std::string& path) {
  // Whatever libpcap says (missing, not a capture, mixed link types), it is the user's file: exit 1.
  auto named = [&](const Error& e) {
    std::string text = e.text();
    return make_error(Errc::usage, "analyze", text.find(path) != std::string::npos ? text : path + ": " + text);
  };
  // A capture copied while tcpdump still wrote it ends inside a record: its complete packets are
  // evidence (tshark reads them too), the cut is a warning the report carries.
  auto r = pcapio::PcapReader::open(path, pcapio::CutShort::stop);
  if (!r) return named(r.error());
  correlate::CaptureSide side;
  side.present = true;
  side.linktype = r->linktype();
  reserve_for_file(side.packets, path);
  auto n = r->for_each([&](const pcapio::PacketView& p) { side.packets.append(p); });
  if (!n) return named(n.error());
  side.stats.available = false;
  side.stats.unavailable_reason = "offline file: drops unknown";
  if (r->cut_short()) side.stats.warnings.push_back(cut_short_warning(*n));
  return side;
}

Result<AnalyzeManifest> parse_manifest(const nlohmann::json& j, const std::string& origin) {
  if (!j.is_object()) return usage(origin, "a manifest is a JSON object");
  if (j.value("tool", "") == "tandem") return parse_report(j, origin);
  return parse_own(j, origin);
}

Result<AnalyzeManifest> read_manifest_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return usage(path, "cannot open the manifest");
  json j = json::parse(in, nullptr, false);
  if (j.is_discarded()) return usage(path, "not valid JSON");
  return parse_manifest(j, path);
}

std::uint64_t manifest_probe_limit(std::uint64_t client_packets) {
  return std::min<std::uint64_t>(kMaxManifestProbes, 2 * client_packets + kManifestProbeSlack);
}

Status check_manifest_bounds(const AnalyzeManifest& m, const correlate::CaptureSide& client,
                             const std::string& origin) {
  const std::uint64_t packets = client.present ? client.packets.size() : 0;
  const std::uint64_t limit = manifest_probe_limit(packets);
  auto refuse = [&](const char* key, std::uint64_t value) {
    return usage(origin, fmt::format("\"{}\" {} is more probes than the client capture can show: at most {} "
                                     "(2 x its {} packets + {}); without \"count\", probes are taken from the "
                                     "capture",
                                     key, value, limit, packets, kManifestProbeSlack));
  };
  if (m.run.count && *m.run.count > limit) return refuse("count", *m.run.count);
  if (m.run.probe_variant.size() > limit) return refuse("probe_variant", m.run.probe_variant.size());
  return ok_status();
}

}  // namespace tandem::report
