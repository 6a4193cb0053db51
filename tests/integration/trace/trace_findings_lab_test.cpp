// `tandem trace` in the namespace lab, continued: one scenario per finding of DESIGN.md §5 (fields
// changed in transit, every probe still answered), over IPv4 and IPv6 (ip.id, ip.df: IPv4 only).
// The fixture and the assertions are in trace_lab_fixture.hpp; the fates are in trace_lab_test.cpp.
#include "tests/integration/trace/trace_lab_fixture.hpp"

#include <gtest/gtest.h>

namespace tandem::testing {
namespace {

// --- findings: fields changed in transit, every probe still answered --------------------------

void check_modified(const TraceRun& r, const std::string& field, const json& sent, const json& received) {
  expect_fates(r, {{"answered", kCount}});
  expect_all_answered_one_hop(r);
  expect_finding(r, "forward", field, sent, received);
  expect_only_findings(r, {{"forward", field}});
  expect_verdict(r, "path_modifies", 4);
}

TEST_F(TraceDscp, EfRewrittenToCs1Ipv4) { check_modified(run(kV4, {"--dscp", "ef"}), "ip.dscp", 46, 8); }
TEST_F(TraceDscp, EfRewrittenToCs1Ipv6) { check_modified(run(kV6, {"--dscp", "ef"}), "ip.dscp", 46, 8); }

TEST_F(TraceMss, ClampedTo1200Ipv4) {
  check_modified(run(kV4, {"--tcp-options", kOptions}), "tcp.option.mss", 1460, 1200);
}
TEST_F(TraceMss, ClampedTo1200Ipv6) {
  check_modified(run(kV6, {"--tcp-options", kOptions}), "tcp.option.mss", 1460, 1200);
}

TEST_F(TraceSack, SackPermittedStrippedIpv4) {
  check_modified(run(kV4, {"--tcp-options", kOptions}), "tcp.option.sack_perm", true, nullptr);
}
TEST_F(TraceSack, SackPermittedStrippedIpv6) {
  check_modified(run(kV6, {"--tcp-options", kOptions}), "tcp.option.sack_perm", true, nullptr);
}

TEST_F(TraceEcn, NotEctRewrittenToCeIpv4) { check_modified(run(kV4), "ip.ecn", 0, 3); }
TEST_F(TraceEcn, NotEctRewrittenToCeIpv6) { check_modified(run(kV6), "ip.ecn", 0, 3); }

// The TTL went up: a finding, and no (negative) hop count.
void check_ttl(const TraceRun& r) {
  expect_fates(r, {{"answered", kCount}});
  expect_finding(r, "forward", "ip.ttl", 64, 200);
  expect_only_findings(r, {{"forward", "ip.ttl"}});
  for (const auto& p : r.report["probes"]) {
    EXPECT_FALSE(p.contains("forward_hops")) << p.dump();
    EXPECT_EQ(p["reverse_hops"], 1) << p.dump();
  }
  expect_verdict(r, "path_modifies", 4);
}
TEST_F(TraceTtl, RaisedTo200Ipv4) { check_ttl(run(kV4)); }
TEST_F(TraceTtl, HopLimitRaisedTo200Ipv6) { check_ttl(run(kV6)); }

// Per-probe values rewritten to one: a single merged finding (`distinct` pairs, one example) on
// `changed` probes.
void check_merged(const TraceRun& r, const std::string& field, const json& received, int changed) {
  expect_fates(r, {{"answered", kCount}});
  expect_all_answered_one_hop(r);
  expect_only_findings(r, {{"forward", field}});
  ASSERT_EQ(r.report["findings"].size(), 1u) << r.report["findings"].dump(2);
  const auto& f = r.report["findings"][0];
  EXPECT_EQ(f["field"], field);
  EXPECT_EQ(f["received"], received) << f.dump();
  EXPECT_EQ(f["probes"], changed) << f.dump();
  EXPECT_EQ(f["distinct"], changed) << f.dump();
  expect_verdict(r, "path_modifies", 4);
}
// A probe's IP ID comes from the run's random key: one already sent as 4242 (1 in 65536 per
// probe) is not changed by the rewrite. tshark on the client's capture says how many were sent
// otherwise, so the expected count is exact for every key.
TEST_F(TraceIpId, RewrittenTo4242Ipv4) {
  auto r = run(kV4);
  ProcOutput ts = lab_->lab->run_in(lab::Node::client,
                                    {"tshark", "-r", r.dir + "/client.pcapng", "-Y",
                                     "ip.dst == 10.77.2.2 && tcp.dstport == 21 && tcp.flags.syn == 1 && "
                                     "tcp.flags.ack == 0",
                                     "-T", "fields", "-e", "ip.id"});
  ASSERT_EQ(ts.exit_code, 0) << ts.err;
  std::istringstream ids(ts.out);
  int sent = 0, already = 0;
  for (std::string id; std::getline(ids, id);) {
    if (id.empty()) continue;
    ++sent;
    already += std::stoul(id, nullptr, 0) == 4242;
  }
  ASSERT_EQ(sent, kCount) << ts.out;
  check_merged(r, "ip.id", 4242, kCount - already);
}
TEST_F(TraceTimestamp, TsvalRewrittenIpv4) {
  check_modified(run(kV4, {"--tcp-options", "mss=1460,sack,ts=1000:0,nop,ws=7"}), "tcp.option.timestamp",
                 json{{"tsval", 1000}, {"tsecr", 0}}, json{{"tsval", 7}, {"tsecr", 0}});
}
TEST_F(TraceTimestamp, TsvalRewrittenIpv6) {
  check_modified(run(kV6, {"--tcp-options", "mss=1460,sack,ts=1000:0,nop,ws=7"}), "tcp.option.timestamp",
                 json{{"tsval", 1000}, {"tsecr", 0}}, json{{"tsval", 7}, {"tsecr", 0}});
}

TEST_F(TraceDf, DfClearedIpv4) { check_modified(run(kV4, {"--df"}), "ip.df", true, false); }

TEST_F(TraceWindow, Rewritten1024Ipv4) { check_modified(run(kV4), "tcp.window", 64240, 1024); }
TEST_F(TraceWindow, Rewritten1024Ipv6) { check_modified(run(kV6), "tcp.window", 64240, 1024); }

TEST_F(TraceWscale, ShiftCount7To14Ipv4) {
  check_modified(run(kV4, {"--tcp-options", kOptions}), "tcp.option.wscale", 7, 14);
}
TEST_F(TraceWscale, ShiftCount7To14Ipv6) {
  check_modified(run(kV6, {"--tcp-options", kOptions}), "tcp.option.wscale", 7, 14);
}

TEST_F(TraceUnknownKind, Kind253StrippedIpv4) {
  check_modified(run(kV4, {"--tcp-options", "mss=1460,kind=253:4e46"}), "tcp.option.kind253", "4e46", nullptr);
}
TEST_F(TraceUnknownKind, Kind253StrippedIpv6) {
  check_modified(run(kV6, {"--tcp-options", "mss=1460,kind=253:4e46"}), "tcp.option.kind253", "4e46", nullptr);
}

TEST_F(TraceOrder, MssMovedBehindSackIpv4) {
  check_modified(run(kV4, {"--tcp-options", "mss=1460,sack,nop,nop"}), "tcp.options.order",
                 json::array({"mss", "sack_perm"}), json::array({"sack_perm", "mss"}));
}

void check_corrupt(const TraceRun& r) {
  expect_fates(r, {{"unanswered", kCount}});
  expect_finding(r, "forward", "tcp.option.wscale", 7, 14);
  expect_finding(r, "forward", "tcp.checksum", "valid", "bad");
  expect_only_findings(r, {{"forward", "tcp.option.wscale"}, {"forward", "tcp.checksum"}});
  for (const auto& p : r.report["probes"]) {
    EXPECT_NE(p.value("note", "").find("bad tcp checksum"), std::string::npos) << p.dump();
  }
  expect_verdict(r, "corrupted", 4);
}
TEST_F(TraceCorrupt, RewriteWithoutChecksumFixIsBlamedOnThePathIpv4) {
  check_corrupt(run(kV4, {"--tcp-options", kOptions}));
}
TEST_F(TraceCorrupt, RewriteWithoutChecksumFixIsBlamedOnThePathIpv6) {
  check_corrupt(run(kV6, {"--tcp-options", kOptions}));
}

// Behind a port forward: every probe matched across the DNAT, the rewrite named both ways.
void check_dnat(const TraceRun& r, const std::string& front, const std::string& server) {
  expect_fates(r, {{"answered", kCount}});
  expect_all_answered_one_hop(r);
  expect_finding(r, "forward", "ip.dst", front, server);
  expect_finding(r, "forward", "tcp.dport", 21, 2121);
  expect_finding(r, "reverse", "ip.src", server, front);
  expect_finding(r, "reverse", "tcp.sport", 2121, 21);
  expect_only_findings(r, {{"forward", "ip.dst"}, {"forward", "tcp.dport"}, {"reverse", "ip.src"}, {"reverse", "tcp.sport"}});
  expect_verdict(r, "path_modifies", 4);
}
TEST_F(TraceDnat, PortForwardWithServerTargetIpv4) {
  Family front = kV4;
  front.target = "10.77.1.1:21";
  check_dnat(run(front, {"--server-target", "10.77.2.2:2121"}), "10.77.1.1", "10.77.2.2");
}
TEST_F(TraceDnat, PortForwardWithServerTargetIpv6) {
  Family front = kV6;
  front.target = "[fd77:1::1]:21";
  check_dnat(run(front, {"--server-target", "[fd77:2::2]:2121"}), "fd77:1::1", "fd77:2::2");
}

// The reverse direction: the server's SYN-ACK as sent vs as the client got it.
void check_reply_mss(const TraceRun& r, int server_mss) {
  expect_fates(r, {{"answered", kCount}});
  expect_all_answered_one_hop(r);
  expect_finding(r, "reverse", "tcp.option.mss", server_mss, 1000);
  expect_only_findings(r, {{"reverse", "tcp.option.mss"}});
  expect_verdict(r, "path_modifies", 4);
}
TEST_F(TraceReplyMss, SynAckClampedTo1000Ipv4) { check_reply_mss(run(kV4, {"--tcp-options", kOptions}), 1460); }
TEST_F(TraceReplyMss, SynAckClampedTo1000Ipv6) { check_reply_mss(run(kV6, {"--tcp-options", kOptions}), 1440); }

}  // namespace
}  // namespace tandem::testing
