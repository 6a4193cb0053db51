// The man pages and the bash completion cannot drift from --help: docs/man/gen-man.sh regenerates
// them from the built binaries and they must equal the committed files (docs/man/tandem.1,
// docs/man/tandem-agent.8, deploy/completion/tandem.bash). groff must format the pages without a
// warning, and the completion must complete what --help lists.
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

namespace {

namespace fs = std::filesystem;

const fs::path kSource = TANDEM_SOURCE_DIR;
const fs::path kBin = fs::path(TANDEM_BINARY_DIR) / "bin";

struct Out {
  int code = -1;
  std::string text;
};

Out sh(const std::string& cmd) {
  Out o;
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return o;
  std::array<char, 4096> buf{};
  std::size_t n = 0;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) o.text.append(buf.data(), n);
  int st = ::pclose(p);
  o.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return o;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class ManPages : public ::testing::Test {
 protected:
  void SetUp() override {
    out_ = fs::path(::testing::TempDir()) / ("tandem-man-" + std::to_string(::getpid()));
    fs::remove_all(out_);
    auto r = sh("bash " + (kSource / "docs/man/gen-man.sh").string() + " " + kBin.string() + " " + out_.string());
    ASSERT_EQ(r.code, 0) << r.text;
  }
  void TearDown() override { fs::remove_all(out_); }
  fs::path out_;
};

TEST_F(ManPages, CommittedPagesMatchTheBinariesHelp) {
  for (auto [generated, committed] : {std::pair{"tandem.1", "docs/man/tandem.1"},
                                      std::pair{"tandem-agent.8", "docs/man/tandem-agent.8"},
                                      std::pair{"tandem.bash", "deploy/completion/tandem.bash"}}) {
    EXPECT_EQ(slurp(out_ / generated), slurp(kSource / committed))
        << committed << " differs from --help: regenerate with docs/man/gen-man.sh (see its header)";
  }
}

TEST_F(ManPages, EverySubcommandAndOptionIsInThePage) {
  const std::string page = slurp(out_ / "tandem.1");
  for (const char* sub : {"ping", "trace", "bisect", "analyze", "lab", "demo", "keygen", "agent-status"}) {
    EXPECT_NE(page.find(std::string(".SS \"tandem ") + sub + "\""), std::string::npos) << sub;
  }
  // Options that this issue added, as roff writes them.
  for (const char* opt : {"\\-\\-json\\-lines", "\\-\\-time\\-format", "\\-D,\\-\\-timestamp"}) {
    EXPECT_NE(page.find(opt), std::string::npos) << opt;
  }
  EXPECT_NE(slurp(out_ / "tandem-agent.8").find("\\-\\-print\\-address"), std::string::npos);
}

TEST_F(ManPages, GroffFormatsThemWithoutWarnings) {
  for (const char* page : {"tandem.1", "tandem-agent.8"}) {
    auto r = sh("groff -man -ww -z " + (out_ / page).string());
    EXPECT_EQ(r.code, 0) << page << ": " << r.text;
    EXPECT_EQ(r.text, "") << page;
  }
}

TEST_F(ManPages, BashCompletionCompletesSubcommandsAndOptions) {
  auto complete = [&](const std::string& words, int cword) {
    return sh("bash -c 'source " + (out_ / "tandem.bash").string() + "; COMP_WORDS=(" + words +
              "); COMP_CWORD=" + std::to_string(cword) + "; _tandem; echo ${COMPREPLY[@]}'")
        .text;
  };
  EXPECT_EQ(complete("tandem pi", 1), "ping\n");
  EXPECT_NE(complete("tandem ping --json-l", 2).find("--json-lines"), std::string::npos);
  EXPECT_NE(complete("tandem trace --cl", 2).find("--client"), std::string::npos);
}

// `cmake --install` puts the pages and the completion where man(1) and bash-completion look.
TEST_F(ManPages, InstallTargetInstallsPagesAndCompletion) {
  const fs::path prefix = out_ / "prefix";
  auto r = sh("cmake --install " + std::string(TANDEM_BINARY_DIR) + " --prefix " + prefix.string());
  ASSERT_EQ(r.code, 0) << r.text;
  for (const char* f : {"bin/tandem", "bin/tandem-agent", "share/man/man1/tandem.1", "share/man/man8/tandem-agent.8",
                        "share/bash-completion/completions/tandem"}) {
    EXPECT_TRUE(fs::exists(prefix / f)) << f;
  }
  EXPECT_EQ(slurp(prefix / "share/man/man1/tandem.1"), slurp(kSource / "docs/man/tandem.1"));
  auto w = sh("MANPATH=" + (prefix / "share/man").string() + " man -w tandem-agent");
  EXPECT_EQ(w.text, (prefix / "share/man/man8/tandem-agent.8").string() + "\n");
}

}  // namespace
