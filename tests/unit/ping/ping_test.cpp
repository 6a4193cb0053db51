// tandem ping without a network: classify(), the RTT statistics, the verdict, and the renderers
// on hand-made results.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "controller/ping/ping_engine.hpp"
#include "controller/ping/ping_report.hpp"

namespace tandem::ping {
namespace {

using probe::ProbeSpec;
using probe::ReplyKind;
using L4 = ProbeSpec::L4;

packet::IpAddr addr(const char* s) { return *packet::IpAddr::parse(s); }

// --- classify ---

struct ClassifyCase {
  ReplyKind reply;
  std::uint8_t type, code;
  PortState tcp, udp, icmp;
};

void expect_table(bool v6, const std::vector<ClassifyCase>& table) {
  for (const auto& c : table) {
    SCOPED_TRACE(std::string(probe::reply_kind_name(c.reply)) + " " + std::to_string(c.type) + "/" +
                 std::to_string(c.code) + (v6 ? " v6" : " v4"));
    EXPECT_EQ(classify(L4::tcp, v6, c.reply, c.type, c.code), c.tcp);
    EXPECT_EQ(classify(L4::udp, v6, c.reply, c.type, c.code), c.udp);
    EXPECT_EQ(classify(L4::icmp, v6, c.reply, c.type, c.code), c.icmp);
  }
}

TEST(Classify, TableV4) {
  using S = PortState;
  expect_table(false, {
                          {ReplyKind::none, 0, 0, S::filtered, S::open_filtered, S::filtered},
                          {ReplyKind::syn_ack, 0, 0, S::open, S::open, S::open},
                          {ReplyKind::rst, 0, 0, S::closed, S::closed, S::closed},
                          {ReplyKind::tcp_other, 0, 0, S::filtered, S::filtered, S::filtered},
                          {ReplyKind::udp, 0, 0, S::open, S::open, S::open},
                          {ReplyKind::echo_reply, 0, 0, S::open, S::open, S::open},
                          // port unreachable: closed for UDP only
                          {ReplyKind::icmp_error, 3, 3, S::filtered, S::closed, S::filtered},
                          // admin-prohibited, host-unreachable, TTL exceeded: filtered
                          {ReplyKind::icmp_error, 3, 13, S::filtered, S::filtered, S::filtered},
                          {ReplyKind::icmp_error, 3, 1, S::filtered, S::filtered, S::filtered},
                          {ReplyKind::icmp_error, 11, 0, S::filtered, S::filtered, S::filtered},
                          // the v6 port-unreachable numbers mean something else in v4
                          {ReplyKind::icmp_error, 1, 4, S::filtered, S::filtered, S::filtered},
                      });
}

TEST(Classify, TableV6) {
  using S = PortState;
  expect_table(true, {
                         {ReplyKind::none, 0, 0, S::filtered, S::open_filtered, S::filtered},
                         {ReplyKind::syn_ack, 0, 0, S::open, S::open, S::open},
                         {ReplyKind::rst, 0, 0, S::closed, S::closed, S::closed},
                         {ReplyKind::tcp_other, 0, 0, S::filtered, S::filtered, S::filtered},
                         {ReplyKind::udp, 0, 0, S::open, S::open, S::open},
                         {ReplyKind::echo_reply, 0, 0, S::open, S::open, S::open},
                         {ReplyKind::icmp_error, 1, 4, S::filtered, S::closed, S::filtered},
                         {ReplyKind::icmp_error, 1, 1, S::filtered, S::filtered, S::filtered},
                         {ReplyKind::icmp_error, 1, 3, S::filtered, S::filtered, S::filtered},
                         {ReplyKind::icmp_error, 3, 0, S::filtered, S::filtered, S::filtered},
                         {ReplyKind::icmp_error, 3, 3, S::filtered, S::filtered, S::filtered},
                     });
}

TEST(PortState, NamesRoundTrip) {
  for (auto s : {PortState::open, PortState::closed, PortState::filtered, PortState::open_filtered}) {
    EXPECT_EQ(parse_state(state_name(s)), s);
  }
  EXPECT_EQ(state_name(PortState::open_filtered), "open|filtered");
  EXPECT_EQ(parse_state("opened"), std::nullopt);
}

// --- hand-made results ---

constexpr Nanos kT0 = 1'700'000'000'000'000'000;

ProbeOutcome answered(std::uint32_t index, std::uint16_t sport, ReplyKind reply, std::int64_t rtt_us,
                      PortState state) {
  ProbeOutcome p;
  p.index = index;
  p.src = addr("10.77.1.3");
  p.sport = sport;
  p.sent = true;
  p.sent_ns = kT0 + Nanos{index} * 1'000'000'000;
  p.answered = true;
  p.reply_ns = p.sent_ns + rtt_us * 1000 + 999;  // sub-microsecond remainder is cut, not rounded
  p.reply = reply;
  p.reply_from = addr("10.77.2.2");
  p.state = state;
  return p;
}

ProbeOutcome unanswered(std::uint32_t index, std::uint16_t sport, PortState state = PortState::filtered) {
  ProbeOutcome p;
  p.index = index;
  p.src = addr("10.77.1.3");
  p.sport = sport;
  p.sent = true;
  p.sent_ns = kT0 + Nanos{index} * 1'000'000'000;
  p.state = state;
  return p;
}

PingOptions tcp_options_v4() {
  PingOptions o;
  o.target = addr("10.77.2.2");
  o.spec = probe::default_spec(L4::tcp, packet::IpVersion::v4);
  o.spec.dport = 21;
  o.count = 3;
  return o;
}

PingResult result_with(std::vector<ProbeOutcome> probes) {
  PingResult r;
  r.ends = {addr("10.77.1.2"), addr("10.77.2.2")};
  r.module = "tcp-syn";
  r.filter = "(tcp and host 10.77.2.2 and port 21) or (icmp and dst host 10.77.1.2)";
  r.probes = std::move(probes);
  r.started_ns = kT0;
  r.ended_ns = kT0 + 3'000'000'000;
  r.capture.available = true;
  r.capture.dropped = 2;
  r.capture.if_dropped = 1;
  r.capture_seen = 6;
  return r;
}

TEST(RttStats, KnownSamples) {
  auto r = result_with({answered(0, 1, ReplyKind::syn_ack, 100, PortState::open),
                        answered(1, 2, ReplyKind::syn_ack, 200, PortState::open), unanswered(2, 3),
                        answered(3, 4, ReplyKind::rst, 600, PortState::closed)});
  auto s = r.rtt();
  EXPECT_EQ(s.samples, 3u);
  EXPECT_DOUBLE_EQ(s.min_us, 100);
  EXPECT_DOUBLE_EQ(s.max_us, 600);
  EXPECT_DOUBLE_EQ(s.avg_us, 300);
  // ping(8)'s mdev: the population standard deviation, sqrt(mean(x^2) - mean(x)^2).
  EXPECT_NEAR(s.mdev_us, std::sqrt((200.0 * 200 + 100.0 * 100 + 300.0 * 300) / 3), 1e-6);

  auto one = result_with({answered(0, 1, ReplyKind::syn_ack, 250, PortState::open)}).rtt();
  EXPECT_EQ(one.samples, 1u);
  EXPECT_DOUBLE_EQ(one.min_us, 250);
  EXPECT_DOUBLE_EQ(one.max_us, 250);
  EXPECT_DOUBLE_EQ(one.mdev_us, 0);

  auto none = result_with({unanswered(0, 1)}).rtt();
  EXPECT_EQ(none.samples, 0u);
  EXPECT_DOUBLE_EQ(none.avg_us, 0);
}

TEST(ProbeOutcome, RttNeedsSentAndAnswered) {
  auto p = answered(0, 1, ReplyKind::syn_ack, 1234, PortState::open);
  EXPECT_EQ(p.rtt_us(), 1234);
  p.sent = false;
  EXPECT_EQ(p.rtt_us(), std::nullopt);
  EXPECT_EQ(unanswered(0, 1).rtt_us(), std::nullopt);
}

TEST(PingResult, CountsSentProbesByState) {
  auto never_sent = unanswered(4, 5);
  never_sent.sent = false;
  auto r = result_with({answered(0, 1, ReplyKind::syn_ack, 100, PortState::open),
                        answered(1, 2, ReplyKind::rst, 100, PortState::closed), unanswered(2, 3),
                        unanswered(3, 4), never_sent});
  EXPECT_EQ(r.count(PortState::open), 1u);
  EXPECT_EQ(r.count(PortState::closed), 1u);
  EXPECT_EQ(r.count(PortState::filtered), 2u);
  EXPECT_EQ(r.count(PortState::open_filtered), 0u);
}

// --- verdict ---

TEST(Verdict, Clean) {
  auto v = verdict_of(tcp_options_v4(), result_with({answered(0, 1, ReplyKind::syn_ack, 100, PortState::open),
                                                     answered(1, 2, ReplyKind::rst, 100, PortState::closed)}));
  // DESIGN.md §3: a closed port is an answer, not the healthy one: exit 4.
  EXPECT_EQ(v.code, "loss");
  EXPECT_EQ(v.text, "1 of 2 probes (50.0 %) did not end open: 1 closed.");
  EXPECT_TRUE(v.problem);
  v = verdict_of(tcp_options_v4(), result_with({answered(0, 1, ReplyKind::syn_ack, 100, PortState::open),
                                                answered(1, 2, ReplyKind::syn_ack, 100, PortState::open)}));
  EXPECT_EQ(v.code, "clean");
  EXPECT_EQ(v.text, "All 2 probes were answered open by the target.");
  EXPECT_FALSE(v.problem);
  v = verdict_of(tcp_options_v4(), result_with({answered(0, 1, ReplyKind::rst, 100, PortState::closed),
                                                answered(1, 2, ReplyKind::rst, 100, PortState::closed)}));
  EXPECT_EQ(v.code, "closed");
  EXPECT_TRUE(v.problem);
}

TEST(Verdict, HealthyAnswerDependsOnTheProbe) {
  auto ack = tcp_options_v4();
  ack.spec.tcp_flags = 0x10;
  auto v = verdict_of(ack, result_with({answered(0, 1, ReplyKind::rst, 100, PortState::unfiltered)}));
  EXPECT_EQ(v.code, "clean") << v.text;
  v = verdict_of(ack, result_with({unanswered(0, 1)}));
  EXPECT_TRUE(v.problem);
  auto fin = tcp_options_v4();
  fin.spec.tcp_flags = 0x01;
  EXPECT_EQ(healthy_state(fin.spec), PortState::closed);
  v = verdict_of(fin, result_with({unanswered(0, 1, PortState::open_filtered)}));
  EXPECT_TRUE(v.problem);
  EXPECT_EQ(v.text, "None of 1 probes was answered (1 open|filtered).");
}

TEST(Verdict, Loss) {
  auto err = answered(2, 3, ReplyKind::icmp_error, 50, PortState::filtered);
  err.icmp_type = 3;
  err.icmp_code = 13;
  auto v = verdict_of(tcp_options_v4(), result_with({answered(0, 1, ReplyKind::syn_ack, 100, PortState::open),
                                                     unanswered(1, 2), err, unanswered(3, 4)}));
  EXPECT_EQ(v.code, "loss");
  // An ICMP error from a router is not an answer from the target.
  EXPECT_EQ(v.text, "3 of 4 probes (75.0 %) did not end open: 3 filtered.");
  EXPECT_TRUE(v.problem);
}

TEST(Verdict, NoAnswerAndNoProbes) {
  auto v = verdict_of(tcp_options_v4(), result_with({unanswered(0, 1), unanswered(1, 2)}));
  EXPECT_EQ(v.code, "no_answer");
  EXPECT_EQ(v.text, "None of 2 probes was answered (2 filtered).");
  EXPECT_TRUE(v.problem);
  v = verdict_of(tcp_options_v4(), result_with({}));
  EXPECT_EQ(v.code, "no_probes");
  EXPECT_TRUE(v.problem);
}

TEST(Verdict, Until) {
  auto opts = tcp_options_v4();
  opts.until = PortState::filtered;
  auto r = result_with({answered(0, 1, ReplyKind::syn_ack, 100, PortState::open), unanswered(1, 2)});
  r.until_reached = true;
  auto v = verdict_of(opts, r);
  EXPECT_EQ(v.code, "until_reached");
  EXPECT_EQ(v.text, "A probe ended filtered after 2 probes.");
  EXPECT_FALSE(v.problem);
  r.until_reached = false;
  v = verdict_of(opts, r);
  EXPECT_EQ(v.code, "until_not_reached");
  EXPECT_EQ(v.text, "No probe ended filtered in 2 probes.");
  EXPECT_TRUE(v.problem);
}

// --- report.json ---

TEST(ToJson, ShapeOfDesignSection5) {
  auto err = answered(2, 40002, ReplyKind::icmp_error, 50, PortState::filtered);
  err.icmp_type = 3;
  err.icmp_code = 13;
  err.reply_from = addr("10.77.1.1");
  auto r = result_with({answered(0, 40000, ReplyKind::syn_ack, 1234, PortState::open), unanswered(1, 40001), err});
  auto j = to_json(tcp_options_v4(), r);

  EXPECT_EQ(j["tool"], "tandem");
  ASSERT_TRUE(j["version"].is_string());
  EXPECT_FALSE(j["version"].get<std::string>().empty());
  EXPECT_EQ(j["mode"], "ping");

  const auto& client = j["capture"]["client"];
  EXPECT_EQ(client["received"], 6);
  EXPECT_EQ(client["dropped"], 3);

  EXPECT_EQ(j["summary"]["probes"], 3);
  EXPECT_EQ(j["summary"]["states"]["open"], 1);
  EXPECT_EQ(j["summary"]["states"]["closed"], 0);
  EXPECT_EQ(j["summary"]["states"]["filtered"], 2);
  EXPECT_FALSE(j["summary"]["states"].contains("open|filtered"));  // TCP has no open|filtered

  EXPECT_EQ(j["verdict"]["code"], "loss");
  EXPECT_TRUE(j["verdict"]["text"].is_string());
  EXPECT_TRUE(j["findings"].is_array());
  EXPECT_TRUE(j["findings"].empty());

  const auto& probes = j["probes"];
  ASSERT_TRUE(probes.is_array());
  ASSERT_EQ(probes.size(), 3u);
  for (const auto& p : probes) {
    for (const char* key : {"id", "src", "sport", "state", "reply", "rtt_us"}) EXPECT_TRUE(p.contains(key)) << key << p;
    EXPECT_EQ(p["src"], "10.77.1.3");  // the probe's own source, as --json-lines writes it too
  }
  EXPECT_EQ(j["source"], "10.77.1.2");  // the run's (PingResult::ends.src)
  EXPECT_TRUE(j["interface"].is_null());
  auto on_eth1 = tcp_options_v4();
  on_eth1.interface = "eth1";
  EXPECT_EQ(to_json(on_eth1, r)["interface"], "eth1");
  EXPECT_EQ(probes[0]["id"], 0);
  EXPECT_EQ(probes[0]["sport"], 40000);
  EXPECT_EQ(probes[0]["state"], "open");
  EXPECT_EQ(probes[0]["reply"], "syn_ack");
  EXPECT_EQ(probes[0]["rtt_us"], 1234);

  EXPECT_EQ(probes[1]["id"], 1);
  EXPECT_EQ(probes[1]["state"], "filtered");
  EXPECT_TRUE(probes[1]["reply"].is_null());
  EXPECT_TRUE(probes[1]["rtt_us"].is_null());
  EXPECT_FALSE(probes[1].contains("from"));

  EXPECT_EQ(probes[2]["reply"], "icmp:3/13");
  EXPECT_EQ(probes[2]["rtt_us"], 50);
  EXPECT_EQ(probes[2]["from"], "10.77.1.1");
}

TEST(ToJson, CaptureDropsNullWhenUnavailable) {
  auto r = result_with({unanswered(0, 1)});
  r.capture.available = false;
  r.capture.unavailable_reason = "pcap_stats not supported";
  auto j = to_json(tcp_options_v4(), r);
  const auto& client = j["capture"]["client"];
  EXPECT_TRUE(client["dropped"].is_null());
  EXPECT_EQ(client["received"], 6);  // what our own capture saw is always known
  EXPECT_EQ(client["unavailable_reason"], "pcap_stats not supported");
  EXPECT_TRUE(j["summary"]["rtt_us"].is_null());
}

TEST(ToJson, UdpStatesIncludeOpenFiltered) {
  auto opts = tcp_options_v4();
  opts.spec = probe::default_spec(L4::udp, packet::IpVersion::v4);
  auto j = to_json(opts, result_with({unanswered(0, 1, PortState::open_filtered)}));
  EXPECT_EQ(j["summary"]["states"]["open|filtered"], 1);
  EXPECT_EQ(j["probes"][0]["state"], "open|filtered");
}

// --- lines ---

TEST(FormatProbeLine, Examples) {
  EXPECT_EQ(format_probe_line(answered(0, 40000, ReplyKind::syn_ack, 1234, PortState::open), false),
            "seq=0     sport=40000 open          syn_ack  rtt=1234 µs");
  EXPECT_EQ(format_probe_line(answered(12, 1025, ReplyKind::rst, 87, PortState::closed), false),
            "seq=12    sport=1025  closed        rst  rtt=87 µs");
  EXPECT_EQ(format_probe_line(unanswered(3, 40003), false), "seq=3     sport=40003 filtered      no reply");
  EXPECT_EQ(format_probe_line(unanswered(4, 33434, PortState::open_filtered), false),
            "seq=4     sport=33434 open|filtered no reply");

  auto err = answered(5, 40005, ReplyKind::icmp_error, 310, PortState::filtered);
  err.icmp_type = 3;
  err.icmp_code = 13;
  err.reply_from = addr("10.77.1.1");
  EXPECT_EQ(format_probe_line(err, false),
            "seq=5     sport=40005 filtered      icmp 3/13 admin-prohibited from 10.77.1.1  rtt=310 µs");

  auto err6 = answered(6, 40006, ReplyKind::icmp_error, 42, PortState::closed);
  err6.icmp_type = 1;
  err6.icmp_code = 4;
  err6.reply_from = addr("fd77:2::2");
  EXPECT_EQ(format_probe_line(err6, true),
            "seq=6     sport=40006 closed        icmp 1/4 port-unreachable from fd77:2::2  rtt=42 µs");

  auto echo = answered(7, 0, ReplyKind::echo_reply, 99, PortState::open);
  echo.duplicates = 2;
  EXPECT_EQ(format_probe_line(echo, true), "seq=7     sport=0     open          icmp:129/0  rtt=99 µs  (+2 dup)");
}

TEST(FormatTimestamp, EpochAndIso) {
  const Nanos t = 1'733'515'200'123'456'789;  // 2024-12-06T20:00:00.123456789Z
  EXPECT_EQ(format_timestamp(t, TimeFormat::epoch), "[1733515200.123456]");
  EXPECT_EQ(format_timestamp(t, TimeFormat::iso), "2024-12-06T20:00:00.123456Z");
}

TEST(FormatHeader, NamesEveryNonDefaultField) {
  auto o = tcp_options_v4();
  EXPECT_EQ(non_default_fields(o), "");
  o.spec.tos = 0xb8;
  o.spec.ttl = 7;
  o.spec.df = true;
  o.spec.window = 1024;
  o.spec.tcp_flags = 0x10;
  o.spec.sport = *probe::parse_sport("40000");
  o.spec.payload_len = 20;
  o.interface = "eth1";
  EXPECT_EQ(non_default_fields(o),
            ", tos 0xb8 (dscp 46, ecn 0), ttl 7, df, window 1024, flags A, sport 40000, payload 20 bytes, interface eth1");
}

TEST(Classify, NonSynProbesFollowNmap) {
  using probe::ReplyKind;
  // ACK: RST = unfiltered; nothing or an ICMP error = filtered.
  EXPECT_EQ(classify(L4::tcp, false, ReplyKind::rst, 0, 0, 0x10), PortState::unfiltered);
  EXPECT_EQ(classify(L4::tcp, false, ReplyKind::none, 0, 0, 0x10), PortState::filtered);
  EXPECT_EQ(classify(L4::tcp, false, ReplyKind::icmp_error, 3, 13, 0x10), PortState::filtered);
  // FIN, NULL, Xmas: RST = closed; silence = open|filtered; ICMP error = filtered.
  for (std::uint8_t f : {std::uint8_t{0x01}, std::uint8_t{0x00}, std::uint8_t{0x29}}) {
    EXPECT_EQ(classify(L4::tcp, false, ReplyKind::rst, 0, 0, f), PortState::closed);
    EXPECT_EQ(classify(L4::tcp, false, ReplyKind::none, 0, 0, f), PortState::open_filtered);
    EXPECT_EQ(classify(L4::tcp, false, ReplyKind::icmp_error, 3, 13, f), PortState::filtered);
  }
  EXPECT_TRUE(tcp_probe_kind(0x02).ok());
  EXPECT_FALSE(tcp_probe_kind(0x12).ok());  // SYN-ACK: no defined state
  EXPECT_FALSE(tcp_probe_kind(0x04).ok());  // RST
  EXPECT_FALSE(tcp_probe_kind(0x11).ok());  // FIN-ACK
}

TEST(IcmpName, Examples) {
  EXPECT_EQ(icmp_name(false, 3, 13), "admin-prohibited");
  EXPECT_EQ(icmp_name(false, 3, 3), "port-unreachable");
  EXPECT_EQ(icmp_name(false, 3, 1), "host-unreachable");
  EXPECT_EQ(icmp_name(false, 11, 0), "ttl-exceeded");
  EXPECT_EQ(icmp_name(false, 3, 200), "unreachable");
  EXPECT_EQ(icmp_name(true, 1, 4), "port-unreachable");
  EXPECT_EQ(icmp_name(true, 1, 1), "admin-prohibited");
  EXPECT_EQ(icmp_name(true, 3, 0), "hop-limit-exceeded");
  EXPECT_EQ(icmp_name(true, 2, 0), "packet-too-big");
  EXPECT_EQ(icmp_name(true, 1, 99), "unreachable");
}

TEST(ReplyCode, DesignNames) {
  auto p = answered(0, 1, ReplyKind::syn_ack, 1, PortState::open);
  EXPECT_EQ(reply_code(p, false), "syn_ack");
  p.reply = ReplyKind::rst;
  EXPECT_EQ(reply_code(p, false), "rst");
  p.reply = ReplyKind::udp;
  EXPECT_EQ(reply_code(p, false), "udp");
  p.reply = ReplyKind::echo_reply;
  EXPECT_EQ(reply_code(p, false), "icmp:0/0");
  EXPECT_EQ(reply_code(p, true), "icmp:129/0");
  p.reply = ReplyKind::icmp_error;
  p.icmp_type = 1;
  p.icmp_code = 1;
  EXPECT_EQ(reply_code(p, true), "icmp:1/1");
  p.reply = ReplyKind::none;
  EXPECT_EQ(reply_code(p, false), "");
}

TEST(FormatSummary, LossAndRtt) {
  auto r = result_with({answered(0, 1, ReplyKind::syn_ack, 100, PortState::open),
                        answered(1, 2, ReplyKind::syn_ack, 300, PortState::open), unanswered(2, 3)});
  std::string s = format_summary(tcp_options_v4(), r);
  EXPECT_NE(s.find("--- 10.77.2.2 port 21/tcp tandem ping statistics ---\n"), std::string::npos) << s;
  EXPECT_NE(s.find("3 probes sent, 2 open, 0 closed, 1 filtered, 33.3% unanswered, time 3000 ms\n"),
            std::string::npos)
      << s;
  EXPECT_NE(s.find("rtt min/avg/max/mdev = 100/200/300/100 µs\n"), std::string::npos) << s;
  EXPECT_NE(s.find("capture: 6 packets, 3 dropped by the kernel"), std::string::npos) << s;
  EXPECT_NE(s.find("1 of 3 probes (33.3 %) did not end open: 1 filtered.\n"), std::string::npos) << s;
}

}  // namespace
}  // namespace tandem::ping
