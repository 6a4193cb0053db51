#include "controller/lab/scenario.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <charconv>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include <toml++/toml.h>

#include "common/packet/addr.hpp"
#include "controller/lab/topology.hpp"

namespace tandem::lab {
namespace {

constexpr std::string_view kSubsystem = "scenario";

Error config_error(std::string message) {
  return make_error(Errc::config, std::string(kSubsystem), std::move(message));
}

std::string where(const std::string& source, const toml::source_region& region) {
  return source + ":" + std::to_string(region.begin.line) + ":" + std::to_string(region.begin.column);
}

// Table entries in the order they appear in the file: toml++ keeps tables sorted by key, but the
// [run] table is a list of flags whose order the user may care about.
std::vector<std::pair<const toml::key*, const toml::node*>> in_file_order(const toml::table& t) {
  std::vector<std::pair<const toml::key*, const toml::node*>> entries;
  for (const auto& [k, v] : t) entries.emplace_back(&k, &v);
  std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
    const auto& pa = a.first->source().begin;
    const auto& pb = b.first->source().begin;
    return pa.line != pb.line ? pa.line < pb.line : pa.column < pb.column;
  });
  return entries;
}

const char* type_name(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a float";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::array: return "an array";
    case toml::node_type::table: return "a table";
    default: return "a date/time";
  }
}

// User text quoted in a one-line message: control characters (a "\n" inside a TOML string) are
// shown as \xNN so they cannot break the line.
std::string printable(std::string_view text) {
  std::string out;
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", u);
      out += buf;
    } else {
      out += c;
    }
  }
  return out;
}

// Why `addr` cannot be an extra address of `site`, or nullopt if it can: it must lie in the site's
// /24 (v4) or /64 (v6), the prefixes of the middlebox's address on that link, and must not be an
// address the link already uses or cannot use.
std::optional<std::string> site_address_problem(const packet::IpAddr& addr, const ClientSiteTopology& site) {
  const auto gateway = packet::IpAddr::parse(addr.is_v4() ? site.gateway_v4 : site.gateway_v6);
  const auto primary = packet::IpAddr::parse(addr.is_v4() ? site.v4 : site.v6);
  const std::size_t prefix_bytes = addr.is_v4() ? 3 : 8;  // /24, /64
  const std::string subnet(addr.is_v4() ? site.v4_subnet : site.v6_subnet);
  if (!gateway || !primary) return "cannot be checked (bad built-in topology)";
  if (!std::equal(addr.bytes.begin(), addr.bytes.begin() + static_cast<std::ptrdiff_t>(prefix_bytes), gateway->bytes.begin()))
    return "is outside the " + std::string(site.name) + " site's subnet " + subnet;
  const auto host_begin = addr.bytes.begin() + static_cast<std::ptrdiff_t>(prefix_bytes);
  const auto host_end = addr.bytes.begin() + static_cast<std::ptrdiff_t>(addr.size());
  if (std::all_of(host_begin, host_end, [](std::uint8_t b) { return b == 0; }))
    return "is the network address of " + subnet;
  if (addr.is_v4() && addr.bytes[3] == 255) return "is the broadcast address of " + subnet;
  if (addr == *gateway) return "is the middlebox's address on that link";
  if (addr == *primary) return "is already the " + std::string(site.name) + " namespace's primary address";
  return std::nullopt;
}

class Parser {
 public:
  explicit Parser(std::string source) : source_(std::move(source)) {}

  Result<Scenario> parse(std::string_view text) {
    toml::table root;
    try {
      root = toml::parse(text, source_);
    } catch (const toml::parse_error& e) {
      return config_error(where(source_, e.source()) + ": " + std::string(e.description()));
    }
    Scenario s;
    s.source = source_;
    for (const auto& [key, node] : in_file_order(root)) {
      const std::string k(key->str());
      Status st = ok_status();
      if (k == "name") {
        st = get_string(*key, *node, "", s.name);
      } else if (k == "description") {
        st = get_string(*key, *node, "", s.description);
      } else if (k == "middlebox") {
        st = nft_only_table(*key, *node, s.middlebox_nft);
      } else if (k == "client") {
        st = client_table(*key, *node, kClientSites[0], s.client);
      } else if (k == "client2") {
        st = client_table(*key, *node, kClientSites[1], s.client2.emplace());
      } else if (k == "server") {
        st = server_table(*key, *node, s);
      } else if (k == "run") {
        st = run_table(*key, *node, s);
      } else {
        st = config_error(where(source_, key->source()) + ": unknown top-level key '" + k +
                          "' (expected name, description, middlebox, server, client, client2, run)");
      }
      if (!st) return st.error();
    }
    if (s.name.empty()) return config_error(source_ + ": missing required key 'name'");
    return s;
  }

 private:
  Status fail(const toml::key& key, const std::string& table, const std::string& what) {
    const std::string full = table.empty() ? std::string(key.str()) : "[" + table + "] " + std::string(key.str());
    return config_error(where(source_, key.source()) + ": key '" + full + "': " + what);
  }

  Status get_string(const toml::key& key, const toml::node& node, const std::string& table, std::string& out) {
    const auto* v = node.as_string();
    if (v == nullptr) return fail(key, table, std::string("expected a string, got ") + type_name(node));
    out = v->get();
    return ok_status();
  }

  const toml::table* as_table(const toml::key& key, const toml::node& node, Status& st) {
    const auto* t = node.as_table();
    if (t == nullptr) st = fail(key, "", std::string("expected a table, got ") + type_name(node));
    return t;
  }

  Status nft_only_table(const toml::key& key, const toml::node& node, std::string& nft) {
    Status st = ok_status();
    const auto* t = as_table(key, node, st);
    if (t == nullptr) return st;
    const std::string table(key.str());
    for (const auto& [k, v] : in_file_order(*t)) {
      if (k->str() != "nft") return fail(*k, table, "unknown key (expected nft)");
      if (auto r = get_string(*k, *v, table, nft); !r) return r;
    }
    return ok_status();
  }

  // [client] / [client2]: nft and addresses.
  Status client_table(const toml::key& key, const toml::node& node, const ClientSiteTopology& site, ClientSpec& spec) {
    Status st = ok_status();
    const auto* t = as_table(key, node, st);
    if (t == nullptr) return st;
    const std::string table(key.str());
    for (const auto& [k, v] : in_file_order(*t)) {
      const std::string name(k->str());
      if (name == "nft") {
        st = get_string(*k, *v, table, spec.nft);
      } else if (name == "addresses") {
        st = site_addresses(*k, *v, table, site, spec.addresses);
      } else {
        st = fail(*k, table, "unknown key (expected nft, addresses)");
      }
      if (!st) return st;
    }
    return ok_status();
  }

  Status site_addresses(const toml::key& key, const toml::node& node, const std::string& table,
                        const ClientSiteTopology& site, std::vector<std::string>& out) {
    const auto* arr = node.as_array();
    if (arr == nullptr) return fail(key, table, std::string("expected an array of addresses, got ") + type_name(node));
    for (const auto& elem : *arr) {
      const auto* str = elem.as_string();
      if (str == nullptr) return fail(key, table, std::string("expected address strings, got ") + type_name(elem));
      const std::string text = printable(str->get());
      const auto addr = packet::IpAddr::parse(str->get());
      if (!addr) {
        return fail(key, table, "'" + text + "' is not an IPv4 or IPv6 address" +
                                    (text.find('/') != std::string::npos ? " (write it without a prefix length)" : ""));
      }
      if (auto why = site_address_problem(*addr, site)) return fail(key, table, "address " + text + " " + *why);
      const std::string canonical = addr->to_string();
      if (std::find(out.begin(), out.end(), canonical) != out.end())
        return fail(key, table, "address " + text + " listed twice");
      out.push_back(canonical);
    }
    return ok_status();
  }

  Status ports(const toml::key& key, const toml::node& node, std::vector<std::uint16_t>& out) {
    const auto* arr = node.as_array();
    if (arr == nullptr) return fail(key, "server", std::string("expected an array of ports, got ") + type_name(node));
    std::set<std::int64_t> seen;
    for (const auto& elem : *arr) {
      const auto* i = elem.as_integer();
      if (i == nullptr) return fail(key, "server", std::string("expected port numbers, got ") + type_name(elem));
      const std::int64_t p = i->get();
      if (p < 1 || p > 65535) return fail(key, "server", "port " + std::to_string(p) + " out of range 1-65535");
      if (!seen.insert(p).second) return fail(key, "server", "port " + std::to_string(p) + " listed twice");
      out.push_back(static_cast<std::uint16_t>(p));
    }
    return ok_status();
  }

  Status server_table(const toml::key& key, const toml::node& node, Scenario& s) {
    Status st = ok_status();
    const auto* t = as_table(key, node, st);
    if (t == nullptr) return st;
    for (const auto& [k, v] : in_file_order(*t)) {
      const std::string name(k->str());
      if (name == "listen") {
        st = ports(*k, *v, s.listen_tcp);
      } else if (name == "listen_udp") {
        st = ports(*k, *v, s.listen_udp);
      } else if (name == "nft") {
        st = get_string(*k, *v, "server", s.server_nft);
      } else {
        st = fail(*k, "server", "unknown key (expected listen, listen_udp, nft)");
      }
      if (!st) return st;
    }
    return ok_status();
  }

  Status run_table(const toml::key& key, const toml::node& node, Scenario& s) {
    Status st = ok_status();
    const auto* t = as_table(key, node, st);
    if (t == nullptr) return st;
    for (const auto& [k, v] : in_file_order(*t)) {
      const std::string name(k->str());
      const bool well_formed = !name.empty() && name[0] >= 'a' && name[0] <= 'z' &&
          std::all_of(name.begin(), name.end(), [](char c) {
            return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
          });
      if (!well_formed) return fail(*k, "run", "not a flag name (lower case letters, digits and '_')");
      if (name == "out" || name == "json") return fail(*k, "run", "is set by `tandem lab run`, not by the scenario");
      RunValue value;
      if (const auto* str = v->as_string()) {
        value = str->get();
      } else if (const auto* i = v->as_integer()) {
        value = i->get();
      } else if (const auto* f = v->as_floating_point()) {
        value = f->get();
      } else if (const auto* b = v->as_boolean()) {
        value = b->get();
      } else {
        return fail(*k, "run", std::string("expected a string, number or boolean, got ") + type_name(*v));
      }
      if (name == "mode") {
        const auto* m = std::get_if<std::string>(&value);
        if (m == nullptr || (*m != "ping" && *m != "trace" && *m != "bisect"))
          return fail(*k, "run", "expected \"ping\", \"trace\" or \"bisect\"");
      }
      if (name == "target") {
        const auto* tg = std::get_if<std::string>(&value);
        if (tg == nullptr) return fail(*k, "run", std::string("expected a string, got ") + type_name(*v));
        if (auto r = parse_run_target(*tg); !r) return fail(*k, "run", r.error().message);
      }
      s.run.push_back(RunSetting{name, std::move(value)});
    }
    return ok_status();
  }

  std::string source_;
};

std::string value_text(const RunValue& v) {
  if (const auto* s = std::get_if<std::string>(&v)) return *s;
  if (const auto* i = std::get_if<std::int64_t>(&v)) return std::to_string(*i);
  if (const auto* d = std::get_if<double>(&v)) {
    char buf[64];
    auto res = std::to_chars(buf, buf + sizeof buf, *d);
    return std::string(buf, res.ptr);
  }
  return std::get<bool>(v) ? "true" : "false";
}

}  // namespace

const RunValue* Scenario::run_value(std::string_view key) const {
  for (const auto& r : run)
    if (r.key == key) return &r.value;
  return nullptr;
}

std::optional<std::string> Scenario::run_mode() const {
  const auto* v = run_value("mode");
  if (v == nullptr) return std::nullopt;
  return std::get<std::string>(*v);  // the parser admits only strings here
}

std::optional<std::string> Scenario::run_target() const {
  const auto* v = run_value("target");
  if (v == nullptr) return std::nullopt;
  return std::get<std::string>(*v);
}

Result<Scenario> parse_scenario(std::string_view toml_text, std::string_view source) {
  return Parser(std::string(source)).parse(toml_text);
}

Result<Scenario> load_scenario(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return config_error(file.string() + ": cannot open: " + std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  return parse_scenario(text.str(), file.string());
}

std::vector<std::string> run_flags(const Scenario& scenario) {
  std::vector<std::string> flags;
  for (const auto& r : scenario.run) {
    if (r.key == "mode" || r.key == "target") continue;
    std::string flag = "--" + r.key;
    std::replace(flag.begin(), flag.end(), '_', '-');
    if (const auto* b = std::get_if<bool>(&r.value)) {
      if (*b) flags.push_back(flag);
      continue;
    }
    flags.push_back(flag);
    flags.push_back(value_text(r.value));
  }
  return flags;
}

Result<RunTarget> parse_run_target(std::string_view text) {
  auto bad = [&](const char* why) {
    return config_error("target '" + std::string(text) + "': " + why +
                        " (expected ADDR, ADDR:PORT or [V6ADDR]:PORT)");
  };
  RunTarget t;
  std::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos) return bad("missing ']'");
    t.host = std::string(text.substr(1, close - 1));
    const auto rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return bad("expected ':' after ']'");
      port_text = rest.substr(1);
      if (port_text.empty()) return bad("empty port");
    }
  } else if (std::count(text.begin(), text.end(), ':') == 1) {
    const auto colon = text.find(':');
    t.host = std::string(text.substr(0, colon));
    port_text = text.substr(colon + 1);
    if (port_text.empty()) return bad("empty port");
  } else {
    t.host = std::string(text);  // a bare IPv4/IPv6 address or host name
  }
  if (t.host.empty()) return bad("empty host");
  if (!port_text.empty()) {
    unsigned value = 0;
    auto res = std::from_chars(port_text.data(), port_text.data() + port_text.size(), value);
    if (res.ec != std::errc{} || res.ptr != port_text.data() + port_text.size() || value < 1 || value > 65535)
      return bad("port must be 1-65535");
    t.port = static_cast<std::uint16_t>(value);
  }
  return t;
}

}  // namespace tandem::lab
