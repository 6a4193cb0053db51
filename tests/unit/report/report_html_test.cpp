// report.html as text, on the hand-made one-probe-per-fate correlation: self-contained (nothing to
// fetch, no script), everything escaped, one ladder per fate with the arrows its fate needs, and
// the per-variant table only when there are variants. The browser test checks the laid-out page.
#include <gtest/gtest.h>

#include <regex>
#include <string>

#include "controller/report/report_html.hpp"
#include "tests/unit/report/report_fixture.hpp"

namespace tandem::report {
namespace {

using test::Fixture;

std::size_t count(const std::string& s, const std::string& what) {
  std::size_t n = 0;
  for (auto pos = s.find(what); pos != std::string::npos; pos = s.find(what, pos + what.size())) ++n;
  return n;
}

TEST(ReportHtml, SelfContainedAndEscaped) {
  Fixture fx;
  fx.verdict.text = "Probes <b>lost</b> & \"dropped\"";
  const std::string html = report_html(fx.c, fx.verdict, fx.ctx);
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_EQ(count(html, "<script"), 0u);
  EXPECT_EQ(count(html, " src="), 0u);
  EXPECT_EQ(count(html, "<link"), 0u);
  EXPECT_EQ(count(html, "url("), 0u);
  // The only URL is the SVG namespace name, which is never fetched.
  std::regex url(R"(https?://[^"]+)");
  for (auto it = std::sregex_iterator(html.begin(), html.end(), url); it != std::sregex_iterator(); ++it) {
    EXPECT_EQ(it->str(), "http://www.w3.org/2000/svg");
  }
  EXPECT_NE(html.find("Probes &lt;b&gt;lost&lt;/b&gt; &amp; &quot;dropped&quot;"), std::string::npos);
  EXPECT_EQ(html.find("<b>lost</b>"), std::string::npos);
  // The verdict comes before everything else in the body.
  EXPECT_LT(html.find("id=\"verdict\""), html.find("id=\"fates\""));
  EXPECT_LT(html.find("id=\"fates\""), html.find("class=\"ladder\""));
}

TEST(ReportHtml, OneLadderPerFateWithItsArrows) {
  Fixture fx;
  const std::string html = report_html(fx.c, fx.verdict, fx.ctx);
  for (std::size_t i = 0; i < correlate::kFateCount; ++i) {
    const std::string fate(correlate::fate_name(static_cast<correlate::Fate>(i)));
    EXPECT_EQ(count(html, "data-fate=\"" + fate + "\""), 1u) << fate;
  }
  const auto& answered = fx.c.probes[0];
  const std::string a = ladder_svg(answered, fx.c, fx.ctx);
  EXPECT_EQ(count(a, "class=\"arrow probe\""), 1u);
  EXPECT_EQ(count(a, "class=\"arrow reply\""), 1u);
  EXPECT_EQ(count(a, "class=\"loss\""), 0u);
  EXPECT_NE(a.find("client.pcapng #1"), std::string::npos) << a;  // packet index 0 = frame 1
  const std::string lost = ladder_svg(fx.c.probes[1], fx.c, fx.ctx);
  EXPECT_EQ(count(lost, "class=\"arrow"), 1u);
  EXPECT_EQ(count(lost, "class=\"loss\""), 1u);
  EXPECT_NE(lost.find("client.pcapng #3"), std::string::npos) << lost;
}

TEST(ReportHtml, ForwardChangeIsWrittenOnTheProbeArrow) {
  Fixture fx;
  auto& p = fx.c.probes[0];
  p.changes.push_back({correlate::Direction::forward, "tcp.option.mss", 1460, 1200});
  p.changes.push_back({correlate::Direction::reverse, "ip.dscp", 46, 0});
  const std::string svg = ladder_svg(p, fx.c, fx.ctx);
  EXPECT_NE(svg.find(">mss 1460 → 1200<"), std::string::npos) << svg;
  EXPECT_NE(svg.find(">ip.dscp 46 → 0<"), std::string::npos) << svg;
}

TEST(ReportHtml, VariantTableOnlyWithVariants) {
  Fixture fx;
  fx.c.variants = {correlate::Variant{"baseline", "", 0, "random", 0}};
  EXPECT_EQ(report_html(fx.c, fx.verdict, fx.ctx).find("id=\"variants\""), std::string::npos);
  fx.c.variants.push_back(correlate::Variant{"wscale", "ws=7", 0, "random", 0});
  fx.c.probes[1].variant = 1;  // the lost_forward probe carries wscale
  const std::string html = report_html(fx.c, fx.verdict, fx.ctx);
  ASSERT_NE(html.find("id=\"variants\""), std::string::npos);
  EXPECT_NE(html.find("<td>wscale</td><td><code>ws=7</code></td><td class=\"n\">1</td><td class=\"n\">1</td>"),
            std::string::npos);
  EXPECT_EQ(failing_probe_ids(fx.c, 1, 8), (std::vector<std::uint32_t>{1}));
}


// What a capture could not prove and the flows left out are in the page too, escaped.
TEST(ReportHtml, CaptureProblemsAndFlowsAreListed) {
  Fixture fx;
  const std::string plain = report_html(fx.c, fx.verdict, fx.ctx);
  EXPECT_EQ(count(plain, "class=\"capture-problem\""), 0u);
  EXPECT_EQ(plain.find("id=\"flows\""), std::string::npos);
  fx.c.capture_problems.push_back(correlate::CaptureProblem{"server", "no_outbound", "Taken with -Q in <inbound>.",
                                                            "Capture both directions.", 7});
  fx.c.flows.push_back(correlate::FlowCount{*packet::IpAddr::parse("10.77.1.2"), *packet::IpAddr::parse("10.77.2.2"), 21, 30, true});
  fx.c.flows.push_back(correlate::FlowCount{*packet::IpAddr::parse("10.77.1.2"), *packet::IpAddr::parse("10.77.2.2"), 22, 5, false});
  const std::string html = report_html(fx.c, fx.verdict, fx.ctx);
  EXPECT_EQ(count(html, "class=\"capture-problem\""), 1u);
  EXPECT_NE(html.find("server capture: no_outbound"), std::string::npos);
  EXPECT_NE(html.find("Taken with -Q in &lt;inbound&gt;."), std::string::npos);
  EXPECT_NE(html.find("(7 probes left unknown.)"), std::string::npos);
  EXPECT_NE(html.find("id=\"flows\""), std::string::npos);
  EXPECT_EQ(count(html, "<tr><td>10.77.1.2</td><td>10.77.2.2</td>"), 2u);
}

}  // namespace
}  // namespace tandem::report
