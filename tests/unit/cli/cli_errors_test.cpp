// The tandem CLI on bad input: one line on stderr, the documented exit code, nothing run. These run
// the real binary without privileges or network (every case fails before anything is sent).
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <string>

#include <gtest/gtest.h>

namespace {

struct Out {
  int code = -1;
  std::string err;
};

Out run(const std::string& args) {
  std::string cmd = std::string(TANDEM_BINARY_DIR) + "/bin/tandem " + args + " 2>&1 >/dev/null";
  Out o;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return o;
  std::array<char, 512> buf{};
  while (std::fgets(buf.data(), buf.size(), p)) o.err += buf.data();
  int status = ::pclose(p);
  o.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return o;
}

class CliErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("tandem-cli-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    ASSERT_EQ(run("keygen --out " + (dir_ / "ctl").string() + " --force").code, 0);
    ASSERT_EQ(run("keygen --out " + (dir_ / "agent").string() + " --force").code, 0);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string trace_prefix() const {
    return "trace --client tcp://127.0.0.1:7070 --client-key " + (dir_ / "agent.pub").string() +
           " --server tcp://127.0.0.1:7071 --server-key " + (dir_ / "agent.pub").string() + " --key " +
           (dir_ / "ctl.key").string() + " --out " + (dir_ / "out").string() + " ";
  }
  std::filesystem::path dir_;
};

TEST_F(CliErrors, TraceRefusesFlagsItsPlanCannotCarry) {
  for (const char* extra : {"--flags SA", "--data-len 20", "--icmp --icmp-type 13"}) {
    auto o = run(trace_prefix() + "--target 10.77.2.2:21 " + extra);
    EXPECT_EQ(o.code, 1) << extra << ": " << o.err;
    EXPECT_NE(o.err.find("`tandem ping` only"), std::string::npos) << o.err;
    EXPECT_EQ(std::count(o.err.begin(), o.err.end(), '\n'), 1) << o.err;
  }
}

TEST_F(CliErrors, TraceTargetNeedsHostAndPort) {
  auto o = run(trace_prefix() + "--target 10.77.2.2");
  EXPECT_EQ(o.code, 1);
  EXPECT_NE(o.err.find("HOST:PORT"), std::string::npos) << o.err;
  auto p = run(trace_prefix() + "--target 10.77.2.2:70000");
  EXPECT_EQ(p.code, 1);
  EXPECT_NE(p.err.find("out of range"), std::string::npos) << p.err;
}

TEST_F(CliErrors, ServerTargetIsChecked) {
  struct C {
    const char* value;
    const char* says;
  };
  for (const C& c : {C{"10.77.2.2:70000", "out of range"}, C{":0", "1-65535"}, C{"fd77:2::2", "IP version"},
                     C{"server.example:21", "not an IP address"}}) {
    auto o = run(trace_prefix() + "--target 10.77.2.2:21 --server-target " + c.value);
    EXPECT_EQ(o.code, 1) << c.value << ": " << o.err;
    EXPECT_NE(o.err.find(c.says), std::string::npos) << c.value << ": " << o.err;
    EXPECT_EQ(std::count(o.err.begin(), o.err.end(), '\n'), 1) << o.err;
  }
}

TEST_F(CliErrors, TraceBadOptionListNamesTheItem) {
  auto o = run(trace_prefix() + "--target 10.77.2.2:21 --tcp-options mss=1460,wat");
  EXPECT_EQ(o.code, 1);
  EXPECT_NE(o.err.find("wat"), std::string::npos) << o.err;
}

TEST_F(CliErrors, BisectFeatureFlagsAreChecked) {
  std::string prefix = trace_prefix();
  prefix.replace(0, 5, "bisect");
  struct C {
    const char* extra;
    const char* says;
  };
  for (const C& c : {C{"--bisect-ttl 64", "equals --ttl"}, C{"--ttl 100 --bisect-ttl 100", "equals --ttl"},
                     C{"--bisect-ttl 300", "--bisect-ttl"}, C{"--bisect-ttl 0", "--bisect-ttl"},
                     C{"--bisect-dscp nosuch", "nosuch"}, C{"--bisect-sport 41000-40000", "41000-40000"},
                     C{"--seed 0", "--seed"}, C{"--tcp-options none", "nothing to bisect"}}) {
    auto o = run(prefix + "--target 10.77.2.2:21 " + c.extra);
    EXPECT_EQ(o.code, 1) << c.extra << ": " << o.err;
    EXPECT_NE(o.err.find(c.says), std::string::npos) << c.extra << ": " << o.err;
  }
}

TEST_F(CliErrors, UnknownSubcommandAndMissingArgumentsAreUsageErrors) {
  EXPECT_EQ(run("frobnicate").code, 1);
  EXPECT_EQ(run("ping").code, 1);
  EXPECT_EQ(run("trace --target 10.77.2.2:21").code, 1);
}


// analyze --target names the flow; literal addresses only (analyze touches no network).
TEST_F(CliErrors, AnalyzeTargetIsALiteralAddressAndPort) {
  const std::string pcaps = std::string("--client-pcap ") + TANDEM_SOURCE_DIR + "/tests/scenarios/clean/client.pcap" +
                            " --server-pcap " + TANDEM_SOURCE_DIR + "/tests/scenarios/clean/server.pcap --out " +
                            (dir_ / "a").string() + " --force -q ";
  for (const char* bad : {"example.com:21", "10.77.2.2:0", "10.77.2.2:99999", "[fd77:2::2]21"}) {
    auto o = run("analyze " + pcaps + "--target " + bad);
    EXPECT_EQ(o.code, 1) << bad << ": " << o.err;
    EXPECT_EQ(std::count(o.err.begin(), o.err.end(), '\n'), 1) << o.err;
  }
  // The flow given is analysed; one that is not in the capture has no probes (exit 4, no_probes).
  EXPECT_EQ(run("analyze " + pcaps + "--target 10.77.2.2:21").code, 0);
  EXPECT_EQ(run("analyze " + pcaps + "--target 10.77.2.2:22").code, 4);
}

}  // namespace
