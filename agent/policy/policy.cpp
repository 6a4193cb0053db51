#include "agent/policy/policy.hpp"

#include <unistd.h>

#include <algorithm>
#include <optional>
#include <charconv>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <toml++/toml.h>

#include "common/probe/spec.hpp"
#include "common/transport/curve.hpp"

namespace tandem::agent {
namespace {

Error refuse(std::string what, std::string limit) {
  return make_error(Errc::config, "policy", what + " not allowed (" + limit + ")");
}

std::optional<std::uint64_t> parse_uint(std::string_view s) {
  std::uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || p != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

std::string l4_text(proto::L4 l4) {
  switch (l4) {
    case proto::L4::tcp: return "tcp";
    case proto::L4::udp: return "udp";
    case proto::L4::icmp: return "icmp";
  }
  return "?";
}

// Probes to these are never sent whatever the CIDR list says: a probe cannon aimed at a whole
// segment (T11) or nonsense.
bool special_address(const packet::IpAddr& a) {
  if (a.is_v4()) {
    std::uint32_t h = a.v4_host_order();
    return h == 0 || h == 0xffffffffu || (h >> 28) == 0xe;  // unspecified, broadcast, multicast
  }
  static const std::array<std::uint8_t, 16> zero{};
  return a.bytes == zero || a.bytes[0] == 0xff;  // unspecified, multicast
}

class Parser {
 public:
  Parser(std::string source, std::filesystem::path base) : source_(std::move(source)), base_(std::move(base)) {}

  Result<Policy> run(std::string_view text) {
    toml::table root;
    try {
      root = toml::parse(text, source_);
    } catch (const toml::parse_error& e) {
      return make_error(Errc::config, "policy", fmt::format("{}:{}: {}", source_, e.source().begin.line,
                                                              std::string(e.description())));
    }
    Policy p;
    char host[256] = {};
    if (gethostname(host, sizeof host - 1) == 0) p.agent_id = sanitize_token(host);
    if (p.agent_id.empty()) p.agent_id = "tandem-agent";
    for (auto&& [k, v] : root) {
      std::string key(k.str());
      Status st = ok_status();
      if (key == "agent_id") {
        st = get_string(key, v, p.agent_id);
        if (st && (p.agent_id.empty() || p.agent_id != sanitize_token(p.agent_id)))
          st = fail(key, "must be 1-64 characters of [A-Za-z0-9._-], not starting with '.'");
      } else if (key == "controllers") {
        st = controllers(v, p);
      } else if (key == "send") {
        st = send(v, p);
      } else if (key == "lease") {
        st = lease(v, p);
      } else if (key == "capture") {
        st = capture(v, p);
      } else {
        st = fail(key, "unknown key (expected agent_id, [controllers], [send], [lease], [capture])");
      }
      if (!st) return st.error();
    }
    return p;
  }

 private:
  static std::string sanitize_token(std::string s) {
    std::string out;
    for (char c : s) {
      if (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-') out += c;
    }
    while (!out.empty() && out.front() == '.') out.erase(out.begin());
    if (out.size() > proto::kMaxNameLen) out.resize(proto::kMaxNameLen);
    return out;
  }

  Error fail(const std::string& key, const std::string& what) const {
    return make_error(Errc::config, "policy", source_ + ": " + key + ": " + what);
  }

  Status get_string(const std::string& key, const toml::node& n, std::string& out) const {
    auto s = n.value<std::string>();
    if (!n.is_string() || !s) return fail(key, "must be a string");
    out = *s;
    return ok_status();
  }
  Status get_bool(const std::string& key, const toml::node& n, bool& out) const {
    if (!n.is_boolean()) return fail(key, "must be true or false");
    out = *n.value<bool>();
    return ok_status();
  }
  template <class T>
  Status get_uint(const std::string& key, const toml::node& n, T& out, std::uint64_t lo, std::uint64_t hi) const {
    if (!n.is_integer()) return fail(key, fmt::format("must be an integer {}..{}", lo, hi));
    std::int64_t v = *n.value<std::int64_t>();
    if (v < 0 || static_cast<std::uint64_t>(v) < lo || static_cast<std::uint64_t>(v) > hi)
      return fail(key, fmt::format("{} is out of range {}..{}", v, lo, hi));
    out = static_cast<T>(v);
    return ok_status();
  }
  Status get_strings(const std::string& key, const toml::node& n, std::vector<std::string>& out) const {
    const toml::array* a = n.as_array();
    if (!a) return fail(key, "must be an array of strings");
    for (const auto& e : *a) {
      if (!e.is_string()) return fail(key, "must be an array of strings");
      out.push_back(*e.value<std::string>());
    }
    return ok_status();
  }
  const toml::table* table(const std::string& key, const toml::node& n, Status& st) const {
    const toml::table* t = n.as_table();
    if (!t) st = fail(key, "must be a table");
    return t;
  }

  Status controllers(const toml::node& n, Policy& p) {
    Status st = ok_status();
    const toml::table* t = table("controllers", n, st);
    if (!t) return st;
    for (auto&& [k, v] : *t) {
      std::string key = "controllers." + std::string(k.str());
      std::vector<std::string> items;
      if (k.str() == "keys") {
        if (st = get_strings(key, v, items); !st) return st;
        for (const auto& s : items) {
          if (!transport::is_z85_key(s)) return fail(key, "'" + s + "' is not a 40-character Z85 public key");
          p.controller_keys.push_back(s);
        }
      } else if (k.str() == "key_files") {
        if (st = get_strings(key, v, items); !st) return st;
        for (const auto& s : items) {
          std::filesystem::path f(s);
          if (f.is_relative()) f = base_ / f;
          auto pk = transport::load_public_key_file(f.string());
          if (!pk) return fail(key, pk.error().text());
          p.controller_keys.push_back(*pk);
        }
      } else {
        return fail(key, "unknown key (expected keys, key_files)");
      }
    }
    return ok_status();
  }

  Status send(const toml::node& n, Policy& p) {
    Status st = ok_status();
    const toml::table* t = table("send", n, st);
    if (!t) return st;
    for (auto&& [k, v] : *t) {
      std::string name(k.str());
      std::string key = "send." + name;
      std::vector<std::string> items;
      if (name == "enabled") {
        st = get_bool(key, v, p.send_enabled);
      } else if (name == "destinations") {
        if (st = get_strings(key, v, items); !st) return st;
        for (const auto& s : items) {
          auto c = Cidr::parse(s);
          if (!c) return fail(key, c.error().message);
          p.destinations.push_back(*c);
        }
      } else if (name == "sources") {
        if (st = get_strings(key, v, items); !st) return st;
        for (const auto& s : items) {
          auto c = Cidr::parse(s);
          if (!c) return fail(key, c.error().message);
          p.sources.push_back(*c);
        }
        // An empty list would forbid every source: say so instead of a send that can never work.
        if (p.sources.empty()) return fail(key, "empty (omit the key to allow every address of this host)");
      } else if (name == "protocols") {
        if (st = get_strings(key, v, items); !st) return st;
        p.protocols = {false, false, false};
        for (const auto& s : items) {
          if (s == "tcp") p.protocols[0] = true;
          else if (s == "udp") p.protocols[1] = true;
          else if (s == "icmp") p.protocols[2] = true;
          else return fail(key, "unknown protocol '" + s + "' (expected tcp, udp, icmp)");
        }
      } else if (name == "ports") {
        const toml::array* a = v.as_array();
        if (!a) return fail(key, "must be an array of ports (integers) or \"A-B\" ranges");
        for (const auto& e : *a) {
          PortRange r;
          if (e.is_integer()) {
            std::int64_t x = *e.value<std::int64_t>();
            if (x < 1 || x > 65535) return fail(key, fmt::format("port {} is out of range 1..65535", x));
            r.lo = r.hi = static_cast<std::uint16_t>(x);
          } else if (e.is_string()) {
            std::string s = *e.value<std::string>();
            auto dash = s.find('-');
            auto lo = parse_uint(s.substr(0, dash));
            auto hi = dash == std::string::npos ? lo : parse_uint(std::string_view(s).substr(dash + 1));
            if (!lo || !hi || *lo < 1 || *hi > 65535 || *lo > *hi)
              return fail(key, "'" + s + "' is not a port or an A-B range within 1..65535");
            r.lo = static_cast<std::uint16_t>(*lo);
            r.hi = static_cast<std::uint16_t>(*hi);
          } else {
            return fail(key, "must be an array of ports (integers) or \"A-B\" ranges");
          }
          p.ports.push_back(r);
        }
      } else if (name == "max_rate_pps") {
        st = get_uint(key, v, p.max_rate_pps, 1, 10'000'000);
      } else if (name == "max_packets") {
        st = get_uint(key, v, p.max_packets, 1, 100'000'000);
      } else {
        return fail(key, "unknown key (expected enabled, destinations, sources, protocols, ports, max_rate_pps, max_packets)");
      }
      if (!st) return st;
    }
    return ok_status();
  }

  Status lease(const toml::node& n, Policy& p) {
    Status st = ok_status();
    const toml::table* t = table("lease", n, st);
    if (!t) return st;
    for (auto&& [k, v] : *t) {
      std::string name(k.str());
      std::string key = "lease." + name;
      if (name == "max_duration_s") st = get_uint(key, v, p.max_duration_s, 1, 86'400);
      else if (name == "idle_timeout_s") st = get_uint(key, v, p.idle_timeout_s, 1, 3'600);
      else if (name == "max_drain_ms") st = get_uint(key, v, p.max_drain_ms, 0, 60'000);
      else return fail(key, "unknown key (expected max_duration_s, idle_timeout_s, max_drain_ms)");
      if (!st) return st;
    }
    return ok_status();
  }

  Status capture(const toml::node& n, Policy& p) {
    Status st = ok_status();
    const toml::table* t = table("capture", n, st);
    if (!t) return st;
    for (auto&& [k, v] : *t) {
      std::string name(k.str());
      std::string key = "capture." + name;
      if (name == "snaplen") st = get_uint(key, v, p.snaplen, 64, 262'144);
      else if (name == "scrub_payload") st = get_bool(key, v, p.scrub_payload);
      else if (name == "quota_bytes") st = get_uint(key, v, p.quota_bytes, 4096, std::uint64_t{1} << 40);
      else if (name == "allow_filter_text") st = get_bool(key, v, p.allow_filter_text);
      else return fail(key, "unknown key (expected snaplen, scrub_payload, quota_bytes, allow_filter_text)");
      if (!st) return st;
    }
    return ok_status();
  }

  std::string source_;
  std::filesystem::path base_;
};

}  // namespace

Result<Cidr> Cidr::parse(std::string_view text) {
  auto bad = [&](const std::string& why) {
    return make_error(Errc::config, "policy", "'" + std::string(text) + "' is not a CIDR prefix (" + why + ")");
  };
  auto slash = text.find('/');
  auto addr = packet::IpAddr::parse(text.substr(0, slash));
  if (!addr) return bad("bad address");
  unsigned max = addr->is_v4() ? 32 : 128;
  unsigned len = max;
  if (slash != std::string_view::npos) {
    auto v = parse_uint(text.substr(slash + 1));
    if (!v || *v > max) return bad(fmt::format("prefix length must be 0..{}", max));
    len = static_cast<unsigned>(*v);
  }
  Cidr c{*addr, len};
  // Host bits set ("10.0.0.1/8") usually means a typo; refusing it avoids a wider grant than meant.
  packet::IpAddr masked = *addr;
  for (unsigned i = 0; i < 16; ++i) {
    unsigned bit0 = i * 8;
    if (bit0 >= len) masked.bytes[i] = 0;
    else if (bit0 + 8 > len) masked.bytes[i] &= static_cast<std::uint8_t>(0xff << (8 - (len - bit0)));
  }
  if (masked != *addr) return bad("host bits set; did you mean " + masked.to_string() + "/" + std::to_string(len) + "?");
  return c;
}

bool Cidr::contains(const packet::IpAddr& a) const {
  if (a.version != network.version) return false;
  for (unsigned i = 0; i < 16; ++i) {
    unsigned bit0 = i * 8;
    if (bit0 >= prefix_len) break;
    auto mask = static_cast<std::uint8_t>(bit0 + 8 <= prefix_len ? 0xffu : (0xffu << (8 - (prefix_len - bit0))) & 0xffu);
    if ((a.bytes[i] & mask) != network.bytes[i]) return false;
  }
  return true;
}

std::string Cidr::to_string() const { return network.to_string() + "/" + std::to_string(prefix_len); }

bool Policy::protocol_allowed(proto::L4 l4) const {
  auto i = static_cast<std::size_t>(l4) - 1;
  return i < protocols.size() && protocols[i];
}

bool Policy::port_allowed(std::uint16_t port) const {
  if (ports.empty()) return true;
  for (const auto& r : ports)
    if (r.contains(port)) return true;
  return false;
}

bool Policy::source_allowed(const packet::IpAddr& a) const {
  if (sources.empty()) return true;
  for (const auto& c : sources)
    if (c.contains(a)) return true;
  return false;
}

bool Policy::destination_allowed(const packet::IpAddr& a) const {
  if (special_address(a)) return false;
  for (const auto& c : destinations)
    if (c.contains(a)) return true;
  return false;
}

Result<Policy> parse_policy(std::string_view toml_text, const std::string& source_name,
                            const std::filesystem::path& base_dir) {
  return Parser(source_name, base_dir).run(toml_text);
}

Result<Policy> load_policy(const std::string& path) {
  std::ifstream in(path);
  if (!in) return make_error(Errc::config, "policy", "cannot read " + path + ": " + std::strerror(errno));
  std::stringstream ss;
  ss << in.rdbuf();
  std::filesystem::path base = std::filesystem::path(path).parent_path();
  return parse_policy(ss.str(), path, base.empty() ? std::filesystem::path(".") : base);
}

namespace {
std::string protocols_text(const Policy& p) {
  std::string s;
  for (proto::L4 l4 : {proto::L4::tcp, proto::L4::udp, proto::L4::icmp}) {
    if (!p.protocol_allowed(l4)) continue;
    if (!s.empty()) s += ",";
    s += l4_text(l4);
  }
  return s.empty() ? "none" : s;
}
std::string ports_text(const Policy& p) {
  if (p.ports.empty()) return "any";
  std::string s;
  for (const auto& r : p.ports) {
    if (!s.empty()) s += ",";
    s += r.lo == r.hi ? std::to_string(r.lo) : fmt::format("{}-{}", r.lo, r.hi);
  }
  return s;
}
// "10.0.0.0/8,fd00::/8", or `empty` for an empty list.
std::string cidrs_text(const std::vector<Cidr>& list, const char* empty) {
  if (list.empty()) return empty;
  std::string s;
  for (const auto& c : list) {
    if (!s.empty()) s += ",";
    s += c.to_string();
  }
  return s;
}
std::string sources_text(const Policy& p) { return cidrs_text(p.sources, "any address of this host"); }
std::string destinations_text(const Policy& p) { return cidrs_text(p.destinations, "none"); }
}  // namespace

std::string summary(const Policy& p) {
  std::string s;
  if (p.send_enabled) {
    s = fmt::format("send: to {} from {} protocols {} ports {}, max {} pps, max {} packets per run; ",
                    destinations_text(p), sources_text(p), protocols_text(p), ports_text(p), p.max_rate_pps, p.max_packets);
  } else {
    s = "send: disabled (capture only); ";
  }
  s += fmt::format("lease: max {} s, idle timeout {} s, max drain {} ms; capture: snaplen {}, payload {}, quota {} bytes, filter text {}",
                   p.max_duration_s, p.idle_timeout_s, p.max_drain_ms, p.snaplen,
                   p.scrub_payload ? "scrubbed" : "kept", p.quota_bytes, p.allow_filter_text ? "allowed" : "refused");
  if (s.size() > proto::kMaxPolicySummaryLen) s.resize(proto::kMaxPolicySummaryLen);
  return s;
}

namespace {
Status check_flow(const Policy& p, const proto::Flow& f, proto::Role role, std::size_t i) {
  std::string where = fmt::format("flow {}", i);
  if (!p.protocol_allowed(f.l4)) return refuse(where + " protocol " + l4_text(f.l4), "protocols: " + protocols_text(p));
  auto dst = packet::IpAddr::parse(f.dst);
  if (!dst) return refuse(where + " dst '" + f.dst + "'", "an IP address is required");
  if (!f.src.empty()) {
    auto src = packet::IpAddr::parse(f.src);
    if (!src) return refuse(where + " src '" + f.src + "'", "an IP address or empty");
    if (src->version != dst->version) return refuse(where + " with mixed IP versions", "src and dst of one version");
  }
  if (f.l4 != proto::L4::icmp) {
    // A flow without a port would capture every conversation with that host (T13).
    if (f.dport == 0) return refuse(where + " dport 0 (any)", "a destination port is required");
    if (!p.port_allowed(f.dport)) return refuse(where + " dport " + std::to_string(f.dport), "ports: " + ports_text(p));
  }
  if (f.sport_min > f.sport_max) return refuse(where + fmt::format(" sport range {}-{}", f.sport_min, f.sport_max), "min <= max");
  // Only the sending side aims packets at dst; a server's flows name itself (or its public,
  // NAT-ed address) as dst.
  if (role == proto::Role::client && !p.destination_allowed(*dst))
    return refuse("destination " + dst->to_string(), "destinations: " + destinations_text(p));
  return ok_status();
}
}  // namespace

Status check_run_setup(const Policy& p, const proto::RunSetup& s, Nanos now_ns) {
  if (s.lease_deadline_ns <= now_ns) return refuse("lease deadline in the past", "must be after the agent's clock");
  Nanos max_ns = static_cast<Nanos>(p.max_duration_s) * 1'000'000'000;
  if (s.lease_deadline_ns - now_ns > max_ns)
    return refuse(fmt::format("run duration {} s", (s.lease_deadline_ns - now_ns + 999'999'999) / 1'000'000'000),
                  fmt::format("max {} s", p.max_duration_s));
  if (s.snaplen > p.snaplen) return refuse(fmt::format("snaplen {}", s.snaplen), fmt::format("max {}", p.snaplen));
  if (!s.capture_filter.empty() && !p.allow_filter_text)
    return refuse("capture filter text", "the agent builds its filter from the flows; capture.allow_filter_text = false");
  if (s.flows.empty()) return refuse("a run without flows", "at least one flow is required");
  if (s.role == proto::Role::client && !p.send_enabled) return refuse("client role (sending)", "send.enabled = false");
  for (std::size_t i = 0; i < s.flows.size(); ++i) {
    if (auto st = check_flow(p, s.flows[i], s.role, i); !st) return st;
  }
  if (s.role == proto::Role::client && s.plan.count > 0) {
    if (auto st = check_plan(p, s.plan, s.flows, 0); !st) return st;
    // The plan must also fit in the lease it asks for.
    double rate = s.plan.rate_pps ? s.plan.rate_pps : 1e6 / s.plan.interval_us;
    double need_s = (s.plan.count - 1) / rate;
    if (need_s > static_cast<double>(s.lease_deadline_ns - now_ns) / 1e9)
      return refuse(fmt::format("plan of {:.1f} s", need_s), "longer than the run's lease");
  }
  return ok_status();
}

Status check_server_flows(const Policy& p, const proto::RunSetup& s, const std::vector<packet::IpAddr>& local) {
  if (s.role != proto::Role::server) return ok_status();
  for (std::size_t i = 0; i < s.flows.size(); ++i) {
    auto dst = packet::IpAddr::parse(s.flows[i].dst);
    if (!dst) return refuse(fmt::format("flow {} dst '{}'", i, s.flows[i].dst), "an IP address is required");
    if (std::find(local.begin(), local.end(), *dst) != local.end() || p.destination_allowed(*dst)) continue;
    return refuse(fmt::format("server flow {} to {}", i, dst->to_string()),
                  "a server-role flow must name an address of this host, or one in destinations: " +
                      destinations_text(p));
  }
  return ok_status();
}

Status check_plan(const Policy& p, const proto::ProbePlan& plan, const std::vector<proto::Flow>& flows,
                  std::uint64_t already_sent) {
  if (!p.send_enabled) return refuse("sending", "send.enabled = false");
  if (plan.count == 0) return refuse("an empty plan", "count >= 1");
  if (!p.protocol_allowed(plan.l4)) return refuse("protocol " + l4_text(plan.l4), "protocols: " + protocols_text(p));
  std::uint64_t stream_sum = 0;
  for (const auto& st : proto::streams_of(plan)) {
    stream_sum += st.count;
    auto dst = packet::IpAddr::parse(st.dst);
    if (!dst) return refuse("destination '" + st.dst + "'", "an IP address is required");
    if ((dst->is_v4() ? 4 : 6) != plan.ip_version)
      return refuse(fmt::format("ip_version {} for {}", plan.ip_version, dst->to_string()), "must match the address");
    if (!p.destination_allowed(*dst))
      return refuse("destination " + dst->to_string(), "destinations: " + destinations_text(p));
    std::optional<packet::IpAddr> src;
    if (!st.src.empty()) {
      src = packet::IpAddr::parse(st.src);
      if (!src) return refuse("source '" + st.src + "'", "an IP address or empty");
      if (src->version != dst->version) return refuse("source " + src->to_string() + " to " + dst->to_string(), "one IP version");
      if (!p.source_allowed(*src)) return refuse("source " + src->to_string(), "sources: " + sources_text(p));
    }
    // The peer the controller named: a plan may only aim at a declared flow (from the same source
    // when both name one), so the capture covers every probe and the controller cannot widen the
    // destination after RUN_SETUP.
    bool declared = false;
    for (const auto& f : flows) {
      auto fd = packet::IpAddr::parse(f.dst);
      if (!fd || *fd != *dst || f.l4 != plan.l4 || (plan.l4 != proto::L4::icmp && f.dport != st.dport)) continue;
      if (src && !f.src.empty()) {
        auto fs = packet::IpAddr::parse(f.src);
        if (!fs || *fs != *src) continue;
      }
      declared = true;
    }
    if (!declared) {
      return refuse(fmt::format("destination {} {}/{}{}", dst->to_string(), l4_text(plan.l4), st.dport,
                                src ? " from " + src->to_string() : ""),
                    "not a flow of this run");
    }
    if (plan.l4 != proto::L4::icmp && !p.port_allowed(st.dport))
      return refuse("port " + std::to_string(st.dport), "ports: " + ports_text(p));
  }
  if (stream_sum != plan.count) return refuse("stream counts", "must add up to the plan's count");
  if (plan.rate_pps == 0 && plan.interval_us == 0) return refuse("unpaced sending", fmt::format("max {} pps", p.max_rate_pps));
  double rate = plan.rate_pps ? plan.rate_pps : 1e6 / plan.interval_us;
  if (rate > p.max_rate_pps) return refuse(fmt::format("rate {:.0f} pps", rate), fmt::format("max {} pps", p.max_rate_pps));
  if (already_sent + plan.count > p.max_packets)
    return refuse(fmt::format("{} packets", already_sent + plan.count), fmt::format("max {} per run", p.max_packets));
  if ((plan.count - 1) / rate > p.max_duration_s)
    return refuse(fmt::format("plan of {:.0f} s", (plan.count - 1) / rate), fmt::format("max {} s", p.max_duration_s));
  // Syntax (the probe library gives the precise message).
  auto check_syntax = [](const std::string& opts, const std::string& sport) -> Status {
    if (!opts.empty()) {
      if (auto o = probe::parse_tcp_options(opts); !o) return refuse("tcp options '" + opts + "'", o.error().message);
    }
    if (auto s = probe::parse_sport(sport); !s) return refuse("sport '" + sport + "'", s.error().message);
    return ok_status();
  };
  if (auto st = check_syntax(plan.tcp_options, plan.sport); !st) return st;
  for (const auto& stream : proto::streams_of(plan)) {
    for (const auto& v : stream.variants) {
      if (auto st = check_syntax(v.tcp_options, v.sport.empty() ? plan.sport : v.sport); !st) return st;
    }
  }
  return ok_status();
}

}  // namespace tandem::agent

namespace tandem::agent {

Status check_sources(const Policy& p, const std::vector<packet::IpAddr>& resolved, const std::vector<packet::IpAddr>& local) {
  for (const auto& src : resolved) {
    if (std::find(local.begin(), local.end(), src) == local.end())
      return refuse("source " + src.to_string(), "not an address of this host");
    if (!p.source_allowed(src)) return refuse("source " + src.to_string(), "sources: " + sources_text(p));
  }
  return ok_status();
}

}  // namespace tandem::agent
