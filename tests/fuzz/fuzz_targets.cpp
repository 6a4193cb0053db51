#include "tests/fuzz/fuzz_targets.hpp"

#include <algorithm>
#include <array>
#include <span>
#include <string_view>
#include <vector>

#include "common/base/log.hpp"
#include "common/packet/build.hpp"
#include "common/packet/decode.hpp"
#include "common/packet/tcp_option.hpp"
#include "common/probe/spec.hpp"

namespace tandem::fuzz {
namespace {

using namespace tandem::packet;

constexpr std::array<std::uint32_t, 10> kLinkTypes = {
    kLinktypeRaw, kDltEn10mb, kDltLinuxSll, kDltLinuxSll2, kDltNull,
    kDltIpv4,     kDltIpv6,   kDltRaw,      kDltLoop,      147 /* unsupported */};

void check(bool ok) {
  if (!ok) __builtin_trap();
}

// Every view must lie inside the input frame.
void check_within(std::span<const std::uint8_t> outer, std::span<const std::uint8_t> inner) {
  if (inner.empty()) return;
  check(inner.data() >= outer.data() &&
        inner.data() + inner.size() <= outer.data() + outer.size());
}

void check_ip(std::span<const std::uint8_t> frame, const IpView& ip) {
  check_within(frame, ip.header);
  check_within(frame, ip.payload);
}

}  // namespace

int decode_one(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::uint32_t linktype = kLinkTypes[data[0] % kLinkTypes.size()];
  const std::size_t cut = data[1];
  const std::span<const std::uint8_t> frame(data + 2, size - 2);
  const Decoded d = decode(linktype, frame, cut == 0 ? 0 : frame.size() + cut);
  check(d.snap_truncated == (cut != 0));
  if (d.l3 == L3::ip) check_ip(frame, d.ip);
  switch (d.l4) {
    case L4::tcp: {
      check_within(frame, d.tcp.options);
      check_within(frame, d.tcp.payload);
      check(d.tcp.options.size() <= kTcpOptionSpace);
      std::size_t n = 0;
      const bool ok = for_each_tcp_option(d.tcp.options, [&](const TcpOptionView& v) {
        check_within(frame, v.data);
        ++n;
      });
      check(n <= kTcpOptionSpace);
      // A well-formed option area is reported as such only when it really walks.
      if (!d.anomalies.has(Anomaly::tcp_option_length_bad) && !d.anomalies.has(Anomaly::tcp_data_offset_long) &&
          !d.snap_truncated)
        check(ok);
      break;
    }
    case L4::udp: check_within(frame, d.udp.payload); break;
    case L4::icmp:
      check_within(frame, d.icmp.body);
      if (d.icmp.has_quoted) check_ip(frame, d.icmp.quoted.ip);
      check(!d.icmp.has_quoted || d.icmp.is_error);
      break;
    case L4::none:
    case L4::other: break;
  }
  AnomalyCounts counts;
  counts.add(d.anomalies);
  check(counts.total() <= kAnomalyCount);

  // The patcher must refuse or succeed on any bytes, never overrun.
  std::vector<std::uint8_t> copy(frame.begin(), frame.end());
  (void)patch_tcp_probe(copy, 1, 2, 3, 4);
  return 0;
}

int tcp_options_syntax_one(const std::uint8_t* data, std::size_t size) {
  // Warnings (window scale above 14) would flood the fuzzer's output.
  static const bool quiet = [] {
    log::get("probe-spec")->set_level(spdlog::level::off);
    return true;
  }();
  (void)quiet;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = probe::parse_tcp_options(text);
  if (!parsed) {
    check(!parsed.error().message.empty());
    check(parsed.error().code == Errc::usage);
    return 0;
  }
  const std::string canon = probe::format_tcp_options(*parsed);
  auto again = probe::parse_tcp_options(canon);
  check(again.ok());
  check(*again == *parsed);
  check(probe::format_tcp_options(*again) == canon);
  auto bytes = serialize_tcp_options(*parsed);
  check(bytes.ok());
  check(bytes->size() <= kTcpOptionSpace && bytes->size() % 4 == 0);
  // The bytes decode back to the same options (padding aside).
  bool malformed = true;
  auto back = parse_tcp_option_bytes(*bytes, &malformed);
  check(!malformed);
  const bool has_eol = std::any_of(parsed->begin(), parsed->end(),
                                   [](const TcpOption& o) { return o.kind == kTcpOptEol; });
  if (!has_eol) {
    // Without EOL in the list the walk sees every option, then the zero padding as one EOL.
    if (back.size() > parsed->size()) {
      check(back.back() == TcpOption::eol());
      back.pop_back();
    }
    check(back == *parsed);
  }
  IpSpec ip;
  ip.src = IpAddr::v4(0x0a000001);
  ip.dst = IpAddr::v4(0x0a000002);
  TcpSpec tcp;
  tcp.options = *parsed;
  auto pkt = build_tcp(ip, tcp);
  check(pkt.ok());
  const Decoded d = decode_ip(*pkt);
  check(d.anomalies.empty() && d.l4 == L4::tcp);
  return 0;
}

}  // namespace tandem::fuzz
