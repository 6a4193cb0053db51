// controller/run/vantage: merging the captures of several agents of a role, and the verdict that
// says which vantages fail. Oracles: hand-built inputs whose right answer is fixed by the contract
// in vantage.hpp / docs/vantage.md, not tandem's earlier output.
#include "controller/run/vantage.hpp"

#include <gtest/gtest.h>

namespace tandem::run {
namespace {

using correlate::Fate;

correlate::CaptureSide side_with(std::vector<Nanos> ts, std::uint8_t tag) {
  correlate::CaptureSide s;
  s.present = true;
  s.linktype = 276;
  s.vouched = true;
  s.stats.available = true;
  s.stats.received = ts.size();
  std::vector<std::uint8_t> bytes(4, tag);
  for (auto t : ts) s.packets.append(pcapio::PacketView{t, 4, bytes});
  return s;
}

TEST(MergeCaptures, OneCaptureIsReturnedUntouched) {
  std::vector<AgentCapture> in;
  in.push_back(AgentCapture{side_with({300, 100}, 1), 50, 1});
  auto m = merge_captures(std::move(in), false);
  ASSERT_TRUE(m);
  ASSERT_EQ(m->packets.size(), 2u);
  EXPECT_EQ(m->packets[0].ts_ns, 300);  // capture order and the agent's own clock kept
}

TEST(MergeCaptures, SeveralGoOnTheControllerClockInTimeOrder) {
  std::vector<AgentCapture> in;
  in.push_back(AgentCapture{side_with({1000, 3000}, 1), 500, 10});   // agent 1 runs 500 ns ahead
  in.push_back(AgentCapture{side_with({1000, 2000}, 2), -800, 20});  // agent 2 runs 800 ns behind
  in[1].side.stats.dropped = 3;
  auto m = merge_captures(std::move(in), true);
  ASSERT_TRUE(m);
  ASSERT_EQ(m->packets.size(), 4u);
  // Controller time = agent time - offset: 500, 2500 (agent 1); 1800, 2800 (agent 2).
  std::vector<Nanos> ts;
  std::vector<std::uint8_t> tags;
  for (std::size_t i = 0; i < 4; ++i) {
    ts.push_back(m->packets[i].ts_ns);
    tags.push_back(m->packets[i].data[0]);
  }
  EXPECT_EQ(ts, (std::vector<Nanos>{500, 1800, 2500, 2800}));
  EXPECT_EQ(tags, (std::vector<std::uint8_t>{1, 2, 1, 2}));
  EXPECT_EQ(m->stats.received, 4u);
  EXPECT_EQ(m->stats.dropped, 3u);
  EXPECT_TRUE(m->vouched);
}

TEST(MergeCaptures, DifferentLinkTypesAreRefused) {
  std::vector<AgentCapture> in;
  in.push_back(AgentCapture{side_with({1}, 1), 0, 0});
  in.push_back(AgentCapture{side_with({2}, 2), 0, 0});
  in[1].side.linktype = 1;
  auto m = merge_captures(std::move(in), true);
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().code, Errc::usage);
}

// Two vantages, `lost` of the second one's 30 probes lost in flight.
Combined two_vantages(int lost_a, int lost_b, std::vector<report::VantageRow>& rows, std::vector<CellInput>& cells) {
  Combined c;
  c.correlation.server_present = true;
  c.correlation.client_present = true;
  for (int v = 0; v < 2; ++v) {
    const int lost = v == 0 ? lost_a : lost_b;
    for (int i = 0; i < 30; ++i) {
      correlate::ProbeRecord p;
      p.id = static_cast<std::uint32_t>(c.correlation.probes.size());
      p.fate = i < lost ? Fate::lost_forward : Fate::answered;
      if (p.fate == Fate::answered) p.reply = "syn_ack";
      c.correlation.probes.push_back(p);
      c.probe_vantage.push_back(static_cast<std::uint16_t>(v));
    }
    c.cell_verdicts.push_back(diagnose::Verdict{lost ? "lost_forward" : "clean", "", diagnose::Severity::ok, lost > 0, {}});
    cells.push_back(CellInput{static_cast<std::size_t>(v), {}, {}});
    report::VantageRow row;
    row.client = "site";
    row.src = v == 0 ? "10.77.1.2" : "10.77.3.2";
    row.target = "10.77.2.2:21";
    rows.push_back(row);
  }
  count_vantages(c, cells, rows);
  return c;
}

TEST(VantageVerdict, NamesTheFailingVantageAndTheCleanOne) {
  std::vector<report::VantageRow> rows;
  std::vector<CellInput> cells;
  auto c = two_vantages(0, 9, rows, cells);
  EXPECT_EQ(rows[0].probes, 30u);
  EXPECT_EQ(rows[1].fates[static_cast<std::size_t>(Fate::lost_forward)], 9u);
  EXPECT_EQ(rows[0].verdict, "clean");
  EXPECT_EQ(rows[1].verdict, "lost_forward");
  auto v = vantage_verdict(c, rows);
  EXPECT_EQ(v.code, "lost_forward");
  EXPECT_TRUE(v.problem);
  EXPECT_NE(v.text.find("Only from 10.77.3.2 (9 of 30, 30 %); from 10.77.1.2 all 30 probes were answered."),
            std::string::npos)
      << v.text;
}

TEST(VantageVerdict, EveryVantageFailingNamesEachRate) {
  std::vector<report::VantageRow> rows;
  std::vector<CellInput> cells;
  auto c = two_vantages(3, 9, rows, cells);
  auto v = vantage_verdict(c, rows);
  EXPECT_NE(v.text.find("It happens from every vantage: 10.77.1.2 (3 of 30, 10 %) and 10.77.3.2 (9 of 30, 30 %)."),
            std::string::npos)
      << v.text;
  EXPECT_EQ(v.text.find("Only from"), std::string::npos) << v.text;
}

TEST(VantageVerdict, AllCleanIsThePlainVerdict) {
  std::vector<report::VantageRow> rows;
  std::vector<CellInput> cells;
  auto c = two_vantages(0, 0, rows, cells);
  auto v = vantage_verdict(c, rows);
  EXPECT_FALSE(v.problem);
  EXPECT_EQ(v.text, diagnose::diagnose(c.correlation).text);
}

}  // namespace
}  // namespace tandem::run
