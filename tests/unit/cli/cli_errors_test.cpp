// The tandem CLI on bad input: one line on stderr, the documented exit code, nothing run. These run
// the real binary without privileges or network (every case fails before anything is sent).
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
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

// A .pub given where the secret key belongs (and the other way round) is named at once, in one
// line, before any connection is tried (it used to give "chmod 600" advice, then fail 3 s later).
TEST_F(CliErrors, PublicKeyGivenAsSecretKeyAndViceVersa) {
  std::string prefix = trace_prefix();
  auto swap = [&](const std::string& from, const std::string& to) {
    std::string s = prefix;
    s.replace(s.find(from), from.size(), to);
    return s;
  };
  auto pub_as_secret = run(swap("--key " + (dir_ / "ctl.key").string(), "--key " + (dir_ / "ctl.pub").string()) +
                           "--target 10.77.2.2:21");
  EXPECT_EQ(pub_as_secret.code, 1) << pub_as_secret.err;
  EXPECT_NE(pub_as_secret.err.find("public key file"), std::string::npos) << pub_as_secret.err;
  EXPECT_EQ(pub_as_secret.err.find("chmod"), std::string::npos) << pub_as_secret.err;
  EXPECT_EQ(std::count(pub_as_secret.err.begin(), pub_as_secret.err.end(), '\n'), 1) << pub_as_secret.err;

  auto secret_as_pub = run(swap("--client-key " + (dir_ / "agent.pub").string(),
                                "--client-key " + (dir_ / "agent.key").string()) +
                           "--target 10.77.2.2:21");
  EXPECT_EQ(secret_as_pub.code, 1) << secret_as_pub.err;
  EXPECT_NE(secret_as_pub.err.find("secret key file"), std::string::npos) << secret_as_pub.err;
  EXPECT_EQ(std::count(secret_as_pub.err.begin(), secret_as_pub.err.end(), '\n'), 1) << secret_as_pub.err;

  // A key file renamed away from keygen's names is still told apart by keygen's comment line.
  std::filesystem::copy_file(dir_ / "ctl.pub", dir_ / "renamed");
  auto renamed = run(swap("--key " + (dir_ / "ctl.key").string(), "--key " + (dir_ / "renamed").string()) +
                     "--target 10.77.2.2:21");
  EXPECT_EQ(renamed.code, 1) << renamed.err;
  EXPECT_NE(renamed.err.find("public key file"), std::string::npos) << renamed.err;
}

// Things that used to be refused before the run and now reach the connection to the (absent)
// agent, which fails with exit 3: the quote-free agent address tcp://HOST:PORT/BASE64URL, an ICMP
// trace with --target HOST (no port), and an --out whose parents do not exist (created).
TEST_F(CliErrors, QuoteFreeAddressIcmpTargetAndOutParentsGetToTheAgent) {
  // The agent key in base64url, computed independently of tandem: Z85 decode by hand.
  std::ifstream pub(dir_ / "agent.pub");
  std::string z85;
  for (std::string line; std::getline(pub, line);) if (!line.empty() && line[0] != '#') z85 = line;
  ASSERT_EQ(z85.size(), 40u);
  static const std::string kZ85 =
      "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";
  std::string bytes;
  for (std::size_t i = 0; i < z85.size(); i += 5) {
    std::uint32_t v = 0;
    for (std::size_t k = 0; k < 5; ++k) v = v * 85 + static_cast<std::uint32_t>(kZ85.find(z85[i + k]));
    for (int k = 3; k >= 0; --k) bytes += static_cast<char>((v >> (8 * k)) & 0xff);
  }
  static const std::string kB64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string b64;
  for (std::size_t i = 0; i < bytes.size(); i += 3) {
    std::uint32_t v = 0;
    std::size_t n = std::min<std::size_t>(3, bytes.size() - i);
    for (std::size_t k = 0; k < 3; ++k) v = v << 8 | (k < n ? static_cast<std::uint8_t>(bytes[i + k]) : 0u);
    for (std::size_t k = 0; k < n + 1; ++k) b64 += kB64[(v >> (18 - 6 * k)) & 63];
  }
  ASSERT_EQ(b64.size(), 43u);

  const auto out = dir_ / "no" / "such" / "parents";
  std::string args = "trace --client tcp://127.0.0.1:9/" + b64 + " --server tcp://127.0.0.1:9/" + b64 + " --key " +
                     (dir_ / "ctl.key").string() + " --out " + out.string() + " --icmp --target 10.77.2.2 -q";
  auto o = run(args);
  EXPECT_EQ(o.code, 3) << o.err;  // nothing listens on port 9: the agent is not reached
  EXPECT_EQ(o.err.find("HOST:PORT"), std::string::npos) << o.err;
  EXPECT_EQ(o.err.find("agent-address"), std::string::npos) << o.err;
  EXPECT_TRUE(std::filesystem::is_directory(out)) << o.err;

  // A mistyped key in the new form is still a one-line usage error.
  auto bad = run("trace --client tcp://127.0.0.1:9/" + b64.substr(1) + " --server tcp://127.0.0.1:9/" + b64 +
                 " --key " + (dir_ / "ctl.key").string() + " --out " + out.string() + " --target 10.77.2.2:21");
  EXPECT_EQ(bad.code, 1) << bad.err;
  EXPECT_NE(bad.err.find("base64url"), std::string::npos) << bad.err;
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

// `tandem ping -S/-e` (DESIGN.md §3) are checked before any socket is opened, so these need no
// privilege: a source that is not this host's (192.0.2.0/24 is TEST-NET-1, never assigned), one of
// the wrong IP version, and an interface that does not exist.
TEST(PingSourceErrors, OneLineNamingTheValue) {
  struct C {
    const char* args;
    int code;
    const char* line;
  };
  for (const C& c :
       {C{"ping 127.0.0.1 -S 192.0.2.77", 1, "tandem: ping: --source 192.0.2.77 is not an address of this host\n"},
        C{"ping 127.0.0.1 --source ::1", 1, "tandem: ping: --source ::1 is IPv6 but the target 127.0.0.1 is IPv4\n"},
        C{"ping 127.0.0.1 -S not-an-address", 1, "tandem: ping: --source 'not-an-address' is not an IP address\n"},
        C{"ping 127.0.0.1 -e tdmnodev0", 2, "tandem: ping: --interface tdmnodev0: no such interface on this host\n"},
        C{"ping 127.0.0.1 --device tdmnodev0", 2,
          "tandem: ping: --interface tdmnodev0: no such interface on this host\n"}}) {
    auto o = run(c.args);
    EXPECT_EQ(o.code, c.code) << c.args << ": " << o.err;
    EXPECT_EQ(o.err, c.line) << c.args;
  }
}

}  // namespace
