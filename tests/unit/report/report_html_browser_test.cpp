// report.html in a real browser (headless chromium): bundles written by the real `tandem analyze` on
// the golden capture pairs of tests/scenarios/ (fates answered, lost_forward, reply_lost, injected,
// icmp_error, unanswered; findings; NAT). Asserts on the page as laid out — the verdict, one ladder
// per representative probe with the arrows its fate needs, the tables' rows, nothing wider than a
// 360 px window — with report.json as the independent count of what must be drawn.
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/unit/report/browser.hpp"

namespace tandem::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const fs::path kScenarios = fs::path(TANDEM_SOURCE_DIR) / "tests" / "scenarios";
const fs::path kTandem = fs::path(TANDEM_BINARY_DIR) / "bin" / "tandem";
constexpr std::size_t kLaddersPerFate = 2;  // docs/report-format.md

struct Bundle {
  fs::path dir;
  json report;
};

Bundle analyze(const std::string& name) {
  Bundle b;
  b.dir = fs::path(::testing::TempDir()) / ("tandem-html-" + name + "-" + std::to_string(::getpid()));
  fs::remove_all(b.dir);
  const fs::path in = kScenarios / name;
  std::string cmd = kTandem.string() + " analyze --client-pcap " + (in / "client.pcap").string() + " --server-pcap " +
                    (in / "server.pcap").string() + " --out " + b.dir.string();
  if (fs::exists(in / "manifest.json")) cmd += " --manifest " + (in / "manifest.json").string();
  run_capture(cmd + " >/dev/null 2>&1");
  std::ifstream f(b.dir / "report.json");
  b.report = json::parse(f, nullptr, false);
  return b;
}

// The arrows each fate's ladder must show (docs/report-format.md): probe and reply for answered,
// the probe and a loss mark for lost_forward, ...
struct Shape {
  int arrows;
  int losses;
};
const std::map<std::string, Shape> kShapes = {
    {"answered", {2, 0}},   {"lost_forward", {1, 1}}, {"unanswered", {1, 0}}, {"reply_lost", {2, 1}},
    {"injected", {2, 0}},   {"icmp_error", {2, 0}},   {"not_sent", {0, 0}},
};

class ReportHtmlBrowser : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (!chromium_binary()) GTEST_SKIP() << "chromium not installed (deploy/install-deps.sh installs it)";
    scratch_ = fs::path(::testing::TempDir()) / ("tandem-chromium-" + std::to_string(::getpid()));
    fs::create_directories(scratch_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(scratch_, ec);
  }
  fs::path scratch_;
};

TEST_P(ReportHtmlBrowser, VerdictLaddersAndTablesAsLaidOut) {
  Bundle b = analyze(GetParam());
  ASSERT_FALSE(b.report.is_discarded()) << b.dir;
  ASSERT_TRUE(fs::exists(b.dir / "report.html"));

  for (int width : {1000, 360}) {
    SCOPED_TRACE("window width " + std::to_string(width));
    Rendered r = render(b.dir / "report.html", width, scratch_);
    ASSERT_TRUE(r.error.empty()) << r.error;
    const json& p = r.probe;
    // The verdict, first and visible.
    EXPECT_EQ(p["verdict"], b.report["verdict"]["text"]);
    EXPECT_GT(p["verdict_height"].get<double>(), 0.0);
    // One ladder per representative probe of every fate report.json counts, each drawn (non-zero
    // size) with the arrows and loss marks its fate needs.
    std::map<std::string, std::size_t> want, got;
    for (const auto& [fate, n] : b.report["summary"]["fates"].items()) {
      if (n.get<std::size_t>() > 0) want[fate] = std::min(n.get<std::size_t>(), kLaddersPerFate);
    }
    for (const auto& l : p["ladders"]) {
      const std::string fate = l["fate"];
      ++got[fate];
      EXPECT_GT(l["width"].get<double>(), 100.0) << fate;
      EXPECT_LE(l["width"].get<double>(), p["window_width"].get<double>()) << fate;
      EXPECT_GT(l["height"].get<double>(), 30.0) << fate;
      auto shape = kShapes.find(fate);
      if (shape != kShapes.end()) {
        EXPECT_EQ(l["arrows"], shape->second.arrows) << fate << " probe " << l["probe"];
        EXPECT_EQ(l["losses"], shape->second.losses) << fate << " probe " << l["probe"];
      }
      // The frame numbers of the probe's packets are written beside its events.
      bool frame = false;
      for (const auto& t : l["texts"]) frame = frame || t.get<std::string>().find("pcapng #") != std::string::npos;
      if (fate != "not_sent" && fate != "unknown") {
        EXPECT_TRUE(frame) << fate << ": " << l["texts"].dump();
      }
    }
    EXPECT_EQ(got, want);
    // Tables: every fate has a row; every finding of report.json has one.
    EXPECT_EQ(p["tables"]["fates"], 8);
    if (!b.report["findings"].empty()) {
      EXPECT_EQ(p["tables"]["findings"], b.report["findings"].size());
    }
    // Self-contained: nothing to fetch.
    EXPECT_EQ(p["external"], 0);
    // Readable in a narrow window: the page itself does not scroll sideways. (Headless chromium
    // keeps a window at least 500 px wide: "narrow" is that.)
    if (width < 1000) {
      EXPECT_LE(p["window_width"].get<int>(), 520);
    }
    EXPECT_LE(p["page_width"].get<int>(), p["window_width"].get<int>());
  }
}

// Field changes are drawn on the arrow of their direction: the MSS clamp on the probe's arrow.
TEST_F(ReportHtmlBrowser, FieldChangeIsWrittenOnTheArrow) {
  Bundle b = analyze("mss_clamped");
  Rendered r = render(b.dir / "report.html", 1000, scratch_);
  ASSERT_TRUE(r.error.empty()) << r.error;
  ASSERT_FALSE(r.probe["ladders"].empty());
  std::string texts = r.probe["ladders"][0]["texts"].dump();
  EXPECT_NE(texts.find("mss 1460 → 1200"), std::string::npos) << texts;
  // And the screenshot renders (a PNG of the page at a phone's width).
  const fs::path png = scratch_ / "shot.png";
  ASSERT_EQ(screenshot(b.dir / "report.html", png, 390, 1400, scratch_), 0);
  ASSERT_TRUE(fs::exists(png));
  EXPECT_GT(fs::file_size(png), 10'000u);
}

INSTANTIATE_TEST_SUITE_P(Scenarios, ReportHtmlBrowser,
                         ::testing::Values("lost_forward_30", "reply_lost", "injected_rst", "icmp_admin_prohibited",
                                           "unanswered", "nat_masquerade", "clean"),
                         [](const auto& param_info) { return param_info.param; });

}  // namespace
}  // namespace tandem::testing
