#include "common/probe/spec.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdio>

#include "common/base/log.hpp"
#include "common/packet/bytes.hpp"

namespace tandem::probe {
namespace {

using packet::TcpOption;

constexpr std::string_view kSubsystem = "probe-spec";
constexpr std::string_view kExpectedItems = "mss, sack, ts, ws, nop, eol, kind=N[:HEX], none";

Error usage(std::string msg) { return make_error(Errc::usage, std::string(kSubsystem), std::move(msg)); }

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Unsigned decimal or 0x-hex, whole string, at most `max`.
std::optional<std::uint64_t> parse_uint(std::string_view s, std::uint64_t max) {
  int base = 10;
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    s.remove_prefix(2);
    base = 16;
  }
  if (s.empty()) return std::nullopt;
  std::uint64_t v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v, base);
  if (ec != std::errc() || end != s.data() + s.size() || v > max) return std::nullopt;
  return v;
}

std::optional<std::vector<std::uint8_t>> parse_hex(std::string_view s) {
  if (s.size() % 2 != 0) return std::nullopt;
  std::vector<std::uint8_t> out;
  out.reserve(s.size() / 2);
  for (std::size_t i = 0; i < s.size(); i += 2) {
    std::uint8_t b = 0;
    const auto [end, ec] = std::from_chars(s.data() + i, s.data() + i + 2, b, 16);
    if (ec != std::errc() || end != s.data() + i + 2) return std::nullopt;
    out.push_back(b);
  }
  return out;
}

std::string to_hex(std::span<const std::uint8_t> b) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string s;
  for (auto x : b) {
    s += kDigits[x >> 4];
    s += kDigits[x & 15];
  }
  return s;
}

Error bad_value(std::string_view item, std::string_view why) {
  return usage("bad value in TCP option '" + std::string(item) + "': " + std::string(why));
}

// Parses one item (not "none", not "linux") and appends it.
Status parse_item(std::string_view item, std::vector<TcpOption>& out) {
  const auto eq = item.find('=');
  const std::string name = lower(item.substr(0, eq));
  const bool has_value = eq != std::string_view::npos;
  const std::string_view value = has_value ? item.substr(eq + 1) : std::string_view{};
  auto no_value = [&](TcpOption o) -> Status {
    if (has_value)
      return usage("TCP option '" + std::string(item) + "' takes no value (write '" + name + "')");
    out.push_back(std::move(o));
    return ok_status();
  };

  if (name == "nop") return no_value(TcpOption::nop());
  if (name == "eol") return no_value(TcpOption::eol());
  if (name == "sackok" || name == "sack_perm") return no_value(TcpOption::sack_perm());
  if (name == "sack") {
    if (!has_value) return no_value(TcpOption::sack_perm());
    std::vector<packet::SackBlock> blocks;
    std::string_view rest = value;
    while (true) {
      const auto semi = rest.find(';');
      const std::string_view blk = rest.substr(0, semi);
      const auto dash = blk.find('-');
      std::optional<std::uint64_t> l, r;
      if (dash != std::string_view::npos) {
        l = parse_uint(blk.substr(0, dash), 0xffffffffu);
        r = parse_uint(blk.substr(dash + 1), 0xffffffffu);
      }
      if (!l || !r)
        return bad_value(item, "expected sack=LEFT-RIGHT[;LEFT-RIGHT...] with 32-bit edges");
      blocks.push_back({static_cast<std::uint32_t>(*l), static_cast<std::uint32_t>(*r)});
      if (semi == std::string_view::npos) break;
      rest.remove_prefix(semi + 1);
    }
    out.push_back(TcpOption::sack(blocks));
    return ok_status();
  }
  if (name == "mss") {
    if (!has_value) return usage("TCP option 'mss' needs a value (mss=N)");
    const auto v = parse_uint(value, 0xffff);
    if (!v) return bad_value(item, "MSS must be 0-65535");
    out.push_back(TcpOption::mss(static_cast<std::uint16_t>(*v)));
    return ok_status();
  }
  if (name == "ws" || name == "wscale") {
    if (!has_value) return usage("TCP option '" + name + "' needs a value (ws=N)");
    const auto v = parse_uint(value, 0xff);
    if (!v) return bad_value(item, "window scale must be 0-255");
    if (*v > 14)
      log::get(kSubsystem)
          ->warn("window scale {} is above 14; receivers treat it as 14 (RFC 7323)", *v);
    out.push_back(TcpOption::wscale(static_cast<std::uint8_t>(*v)));
    return ok_status();
  }
  if (name == "ts" || name == "timestamp") {
    if (!has_value) {
      out.push_back(TcpOption::timestamp(kDefaultTsVal, kDefaultTsEcr));
      return ok_status();
    }
    const auto colon = value.find(':');
    std::optional<std::uint64_t> val, ecr;
    if (colon != std::string_view::npos) {
      val = parse_uint(value.substr(0, colon), 0xffffffffu);
      ecr = parse_uint(value.substr(colon + 1), 0xffffffffu);
    }
    if (!val || !ecr) return bad_value(item, "expected ts=VAL:ECR with 32-bit values");
    out.push_back(TcpOption::timestamp(static_cast<std::uint32_t>(*val),
                                       static_cast<std::uint32_t>(*ecr)));
    return ok_status();
  }
  if (name == "kind") {
    if (!has_value) return usage("TCP option 'kind' needs a value (kind=N or kind=N:HEX)");
    const auto colon = value.find(':');
    const auto kind = parse_uint(value.substr(0, colon), 0xff);
    if (!kind) return bad_value(item, "kind must be 0-255");
    std::vector<std::uint8_t> data;
    if (colon != std::string_view::npos) {
      auto hex = parse_hex(value.substr(colon + 1));
      if (!hex) return bad_value(item, "expected an even number of hex digits after ':'");
      data = std::move(*hex);
    }
    if ((*kind == packet::kTcpOptEol || *kind == packet::kTcpOptNop) && !data.empty())
      return bad_value(item, "kinds 0 (eol) and 1 (nop) are single bytes and carry no data");
    out.push_back(TcpOption::raw(static_cast<std::uint8_t>(*kind), std::move(data)));
    return ok_status();
  }
  return usage("unknown TCP option '" + std::string(item) + "' (expected " +
               std::string(kExpectedItems) + ")");
}

struct DscpName {
  std::string_view name;
  std::uint8_t value;
};
constexpr DscpName kDscpNames[] = {
    {"cs0", 0},   {"cs1", 8},   {"cs2", 16},  {"cs3", 24},  {"cs4", 32},  {"cs5", 40},
    {"cs6", 48},  {"cs7", 56},  {"af11", 10}, {"af12", 12}, {"af13", 14}, {"af21", 18},
    {"af22", 20}, {"af23", 22}, {"af31", 26}, {"af32", 28}, {"af33", 30}, {"af41", 34},
    {"af42", 36}, {"af43", 38}, {"ef", 46},   {"va", 44},   {"le", 1},    {"default", 0},
    {"be", 0},
};

std::optional<std::uint8_t> dscp_by_name(std::string_view text) {
  const std::string l = lower(text);
  for (const auto& d : kDscpNames)
    if (d.name == l) return d.value;
  return std::nullopt;
}

}  // namespace

std::vector<TcpOption> linux_syn_options() {
  return {TcpOption::mss(1460), TcpOption::sack_perm(),
          TcpOption::timestamp(kDefaultTsVal, kDefaultTsEcr), TcpOption::nop(),
          TcpOption::wscale(7)};
}

Result<std::vector<TcpOption>> parse_tcp_options(std::string_view text) {
  const std::string_view all = trim(text);
  if (all.empty()) return usage("empty TCP option list (use 'none' for no options)");
  std::vector<TcpOption> out;
  bool saw_none = false;
  std::size_t items = 0;
  std::string_view rest = all;
  while (true) {
    const auto comma = rest.find(',');
    const std::string_view item = trim(rest.substr(0, comma));
    ++items;
    if (item.empty()) return usage("empty item in TCP option list '" + std::string(all) + "'");
    const std::string l = lower(item);
    if (l == "none") {
      saw_none = true;
    } else if (l == "linux") {
      for (auto& o : linux_syn_options()) out.push_back(std::move(o));
    } else if (auto st = parse_item(item, out); !st) {
      return st.error();
    }
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  if (saw_none && items > 1)
    return usage("'none' cannot be combined with other TCP options in '" + std::string(all) + "'");
  const std::size_t size = packet::tcp_options_wire_size(out);
  if (size > packet::kTcpOptionSpace)
    return usage("TCP options '" + std::string(all) + "' take " + std::to_string(size) +
                 " bytes, more than the 40-byte option space");
  return out;
}

std::string format_tcp_options(const std::vector<TcpOption>& options) {
  if (options.empty()) return "none";
  std::string s;
  for (const auto& o : options) {
    if (!s.empty()) s += ',';
    const auto& d = o.data;
    switch (o.kind) {
      case packet::kTcpOptEol:
        if (d.empty()) { s += "eol"; continue; }
        break;
      case packet::kTcpOptNop:
        if (d.empty()) { s += "nop"; continue; }
        break;
      case packet::kTcpOptMss:
        if (d.size() == 2) { s += "mss=" + std::to_string(packet::load_be16(d.data())); continue; }
        break;
      case packet::kTcpOptWscale:
        if (d.size() == 1) { s += "ws=" + std::to_string(d[0]); continue; }
        break;
      case packet::kTcpOptSackPerm:
        if (d.empty()) { s += "sack"; continue; }
        break;
      case packet::kTcpOptSack:
        if (!d.empty() && d.size() % 8 == 0) {
          s += "sack=";
          for (std::size_t i = 0; i < d.size(); i += 8) {
            if (i != 0) s += ';';
            s += std::to_string(packet::load_be32(d.data() + i)) + "-" +
                 std::to_string(packet::load_be32(d.data() + i + 4));
          }
          continue;
        }
        break;
      case packet::kTcpOptTimestamp:
        if (d.size() == 8) {
          const std::uint32_t val = packet::load_be32(d.data());
          const std::uint32_t ecr = packet::load_be32(d.data() + 4);
          if (val == kDefaultTsVal && ecr == kDefaultTsEcr) s += "ts";
          else s += "ts=" + std::to_string(val) + ":" + std::to_string(ecr);
          continue;
        }
        break;
      default: break;
    }
    s += "kind=" + std::to_string(o.kind);
    if (!d.empty()) s += ":" + to_hex(d);
  }
  return s;
}

Result<SportPolicy> parse_sport(std::string_view text) {
  const std::string_view t = trim(text);
  auto bad = [&] {
    return usage("bad source port '" + std::string(t) +
                 "' (expected random, N or A-B with ports 1-65535)");
  };
  if (lower(t) == "random") return SportPolicy::random();
  const auto dash = t.find('-');
  if (dash == std::string_view::npos) {
    const auto p = parse_uint(t, 0xffff);
    if (!p || *p == 0) return bad();
    return SportPolicy::fixed(static_cast<std::uint16_t>(*p));
  }
  const auto a = parse_uint(trim(t.substr(0, dash)), 0xffff);
  const auto b = parse_uint(trim(t.substr(dash + 1)), 0xffff);
  if (!a || !b || *a == 0 || *b == 0) return bad();
  if (*a > *b)
    return usage("bad source port range '" + std::string(t) + "': first port above last");
  if (*a == *b) return SportPolicy::fixed(static_cast<std::uint16_t>(*a));
  return SportPolicy::range(static_cast<std::uint16_t>(*a), static_cast<std::uint16_t>(*b));
}

std::string format_sport(const SportPolicy& p) {
  switch (p.kind) {
    case SportPolicy::Kind::fixed: return std::to_string(p.lo);
    case SportPolicy::Kind::range: return std::to_string(p.lo) + "-" + std::to_string(p.hi);
    case SportPolicy::Kind::random: break;
  }
  return "random";
}

Result<std::uint8_t> parse_dscp(std::string_view text) {
  const std::string_view t = trim(text);
  if (auto n = dscp_by_name(t)) return *n;
  if (auto v = parse_uint(t, 63)) return static_cast<std::uint8_t>(*v);
  return usage("bad DSCP '" + std::string(t) +
               "' (expected 0-63, 0x00-0x3f or a name: ef, af11-af43, cs0-cs7, va, le)");
}

Result<std::uint8_t> parse_tos(std::string_view text) {
  const std::string_view t = trim(text);
  if (auto n = dscp_by_name(t)) return static_cast<std::uint8_t>(*n << 2);
  if (auto v = parse_uint(t, 255)) return static_cast<std::uint8_t>(*v);
  return usage("bad TOS '" + std::string(t) +
               "' (expected 0-255, 0x00-0xff or a DSCP name like ef, af41, cs1)");
}

std::string dscp_name(std::uint8_t dscp) {
  for (const auto& d : kDscpNames)
    if (d.value == dscp) return std::string(d.name);
  return std::to_string(dscp);
}

ProbeSpec default_spec(ProbeSpec::L4 l4, packet::IpVersion version) {
  ProbeSpec s;
  s.l4 = l4;
  s.version = version;
  switch (l4) {
    case ProbeSpec::L4::tcp: s.dport = 80; break;
    case ProbeSpec::L4::udp:
      s.dport = 33434;
      s.tcp_options.clear();
      break;
    case ProbeSpec::L4::icmp:
      s.dport = 0;
      s.tcp_options.clear();
      break;
  }
  s.icmp_type = version == packet::IpVersion::v4 ? 8 : 128;
  return s;
}

std::string_view l4_name(ProbeSpec::L4 l4) {
  switch (l4) {
    case ProbeSpec::L4::tcp: return "tcp";
    case ProbeSpec::L4::udp: return "udp";
    case ProbeSpec::L4::icmp: return "icmp";
  }
  return "tcp";
}

std::string format_tcp_flags(std::uint8_t flags) {
  static constexpr char kLetters[] = "FSRPAUEC";
  std::string s;
  for (int i = 0; i < 8; ++i)
    if (flags & (1u << i)) s += kLetters[i];
  return s.empty() ? "none" : s;
}

std::string describe(const ProbeSpec& spec) {
  const bool v4 = spec.version == packet::IpVersion::v4;
  std::string s = std::string(l4_name(spec.l4)) + (v4 ? "/ipv4" : "/ipv6");
  switch (spec.l4) {
    case ProbeSpec::L4::tcp:
      s += " dport " + std::to_string(spec.dport) + " flags " + format_tcp_flags(spec.tcp_flags) +
           " options " + format_tcp_options(spec.tcp_options) + " window " +
           std::to_string(spec.window);
      break;
    case ProbeSpec::L4::udp: s += " dport " + std::to_string(spec.dport); break;
    case ProbeSpec::L4::icmp:
      s += " type " + std::to_string(spec.icmp_type) + " code " + std::to_string(spec.icmp_code);
      break;
  }
  char tos[8];
  std::snprintf(tos, sizeof tos, "0x%02x", spec.tos);
  s += " tos ";
  s += tos;
  if (spec.tos != 0) s += " (dscp " + dscp_name(static_cast<std::uint8_t>(spec.tos >> 2)) + ")";
  s += " ttl " + std::to_string(spec.ttl.value_or(64));
  if (spec.df && v4) s += " df";
  if (spec.l4 != ProbeSpec::L4::icmp) s += " sport " + format_sport(spec.sport);
  s += " payload " + std::to_string(spec.payload_len);
  return s;
}

}  // namespace tandem::probe
