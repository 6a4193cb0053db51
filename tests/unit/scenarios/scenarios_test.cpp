// Golden scenarios (Zeek btest style): for every tests/scenarios/<name>/ with an expected/report.json,
// run the real `tandem analyze` on client.pcap + server.pcap (+ manifest.json when present) and
// compare its report.json with the baseline. Only "version" is ignored (docs/report-format.md,
// "Volatile fields"). Baselines are rewritten by tests/scenarios/regen.sh, whose diff is reviewed.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/unit/scenarios/run_command.hpp"

namespace {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

const fs::path kScenarios = fs::path(TANDEM_SOURCE_DIR) / "tests" / "scenarios";
const fs::path kTandem = fs::path(TANDEM_BINARY_DIR) / "bin" / "tandem";

std::vector<std::string> scenario_names() {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(kScenarios)) {
    if (e.is_directory() && fs::exists(e.path() / "expected" / "report.json")) names.push_back(e.path().filename());
  }
  std::sort(names.begin(), names.end());
  return names;
}

using tandem::test::CmdResult;
using tandem::test::quote;
using tandem::test::run;

fs::path fresh_dir(const std::string& name) {
  fs::path d = fs::path(::testing::TempDir()) / ("tandem-scenario-" + name + "-" + std::to_string(getpid()));
  fs::remove_all(d);
  return d;
}

CmdResult analyze(const std::string& name, const fs::path& out, bool json_only) {
  fs::path dir = kScenarios / name;
  std::string cmd = quote(kTandem.string()) + " analyze --client-pcap " + quote((dir / "client.pcap").string()) +
                    " --server-pcap " + quote((dir / "server.pcap").string()) + " --out " + quote(out.string());
  if (fs::exists(dir / "manifest.json")) cmd += " --manifest " + quote((dir / "manifest.json").string());
  if (json_only) cmd += " --json-only";
  return run(cmd);
}

ojson load(const fs::path& p) {
  std::ifstream in(p);
  return ojson::parse(in, nullptr, false);
}

// The fields that legitimately change between builds; see docs/report-format.md.
void strip_volatile(ojson& j) { j.erase("version"); }

class Scenario : public ::testing::TestWithParam<std::string> {};

TEST_P(Scenario, ReportMatchesBaseline) {
  const std::string name = GetParam();
  fs::path out = fresh_dir(name);
  CmdResult r = analyze(name, out, true);
  int expected_exit = 0;
  std::ifstream(kScenarios / name / "expected" / "exit_code") >> expected_exit;
  EXPECT_EQ(r.exit_code, expected_exit) << r.output;

  ojson got = load(out / "report.json");
  ojson want = load(kScenarios / name / "expected" / "report.json");
  ASSERT_FALSE(got.is_discarded()) << "no report.json written: " << r.output;
  ASSERT_FALSE(want.is_discarded());
  strip_volatile(got);
  strip_volatile(want);
  // ordered_json equality is order-sensitive, so key order is part of the baseline too.
  EXPECT_EQ(got, want) << "report.json differs from the baseline; if the change is intended, run "
                          "tests/scenarios/regen.sh and review its diff.\n--- got ---\n"
                       << got.dump(2);
  fs::remove_all(out);
}

INSTANTIATE_TEST_SUITE_P(Golden, Scenario, ::testing::ValuesIn(scenario_names()),
                         [](const auto& p) { return p.param; });

// The whole bundle on two scenarios: one link type on both ends, and Ethernet vs raw IP (merged is
// then converted to LINKTYPE_RAW). merged.pcapng must be readable by tshark, commented, time ordered.
class Bundle : public ::testing::TestWithParam<std::string> {};

TEST_P(Bundle, MergedIsReadableCommentedAndOrdered) {
  const std::string name = GetParam();
  fs::path out = fresh_dir(name + "-bundle");
  CmdResult r = analyze(name, out, false);
  ASSERT_TRUE(r.exit_code == 0 || r.exit_code == 4) << r.output;
  for (const char* f : {"report.json", "report.md", "client.pcapng", "server.pcapng", "merged.pcapng"}) {
    EXPECT_TRUE(fs::exists(out / f)) << f;
  }
  EXPECT_NE(r.output.find("bundle:"), std::string::npos) << r.output;
  if (run("command -v tshark").exit_code != 0) GTEST_SKIP() << "tshark not installed";
  CmdResult t = run("tshark -r " + quote((out / "merged.pcapng").string()) +
              " -T fields -E separator=/t -e frame.time_epoch -e frame.interface_name -e frame.comment",
                  false);
  ASSERT_EQ(t.exit_code, 0) << t.output;
  std::istringstream lines(t.output);
  std::string line;
  double prev = 0;
  int n = 0, client = 0, server = 0;
  while (std::getline(lines, line)) {
    if (line.empty()) continue;
    std::istringstream f(line);
    std::string ts, iface, comment;
    std::getline(f, ts, '\t');
    std::getline(f, iface, '\t');
    std::getline(f, comment);
    double t0 = std::stod(ts);
    EXPECT_GE(t0, prev) << line;
    prev = t0;
    ++n;
    client += iface == "client";
    server += iface == "server";
    EXPECT_TRUE(comment.rfind("probe ", 0) == 0 || comment == "unmatched") << line;
  }
  EXPECT_GT(client, 0);
  EXPECT_GT(server, 0);
  // Running again into the same directory reuses our own bundle; a foreign file blocks it.
  EXPECT_EQ(analyze(name, out, false).exit_code, r.exit_code);
  std::ofstream(out / "notes.txt") << "mine\n";
  CmdResult refused = analyze(name, out, false);
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.output.find("--force"), std::string::npos) << refused.output;
  fs::remove_all(out);
}

INSTANTIATE_TEST_SUITE_P(Golden, Bundle, ::testing::Values("clean", "nat_masquerade"),
                         [](const auto& p) { return p.param; });

}  // namespace

namespace {

TEST(AnalyzeCli, MissingOrGarbageFileIsUsageErrorNamingTheFile) {
  fs::path out = fresh_dir("bad-input");
  fs::path clean = kScenarios / "clean";
  CmdResult missing = run(quote(kTandem.string()) + " analyze --client-pcap /nonexistent/c.pcap --server-pcap " +
                    quote((clean / "server.pcap").string()) + " --out " + quote(out.string()));
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.output.find("/nonexistent/c.pcap"), std::string::npos) << missing.output;

  fs::path garbage = fs::path(::testing::TempDir()) / ("garbage-" + std::to_string(getpid()) + ".pcap");
  std::ofstream(garbage) << "this is not a capture file\n";
  CmdResult bad = run(quote(kTandem.string()) + " analyze --client-pcap " + quote((clean / "client.pcap").string()) +
                " --server-pcap " + quote(garbage.string()) + " --out " + quote(out.string()));
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.output.find(garbage.string()), std::string::npos) << bad.output;
  EXPECT_FALSE(fs::exists(out / "report.json"));
  fs::remove(garbage);
  fs::remove_all(out);
}

}  // namespace
