// The lab state file with client sites: what `Lab` records is what `read_state` gives back, and a
// state file is trusted only for names of its own lab (client-site namespaces included).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "controller/lab/state.hpp"

namespace tandem::lab {
namespace {

namespace fs = std::filesystem;

class StateFile : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("tandem-state-unit-" + std::to_string(::getpid()));
    fs::create_directories(root_ / "tdmunit");
    ::setenv("TANDEM_LAB_STATE_DIR", root_.c_str(), 1);
  }
  void TearDown() override {
    ::unsetenv("TANDEM_LAB_STATE_DIR");
    std::error_code ec;
    fs::remove_all(root_, ec);
  }
  static LabState two_sites() {
    LabState s;
    s.prefix = "tdmunit";
    s.scenario = "two-sites";
    s.namespaces = {"tdmunit-cli", "tdmunit-mbx", "tdmunit-srv", "tdmunit-cl2"};
    s.clients = {{"client", Node::client, "tdmunit-cli", {"10.77.1.2", "fd77:1::2", "10.77.1.3"}},
                 {"client2", Node::client2, "tdmunit-cl2", {"10.77.3.2", "fd77:3::2"}}};
    return s;
  }
  std::string state_text() const {
    std::ifstream in(root_ / "tdmunit" / "state.json");
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  void write_text(const std::string& text) const { std::ofstream(root_ / "tdmunit" / "state.json") << text; }
  fs::path root_;
};

TEST_F(StateFile, ClientSitesRoundTrip) {
  ASSERT_TRUE(write_state(two_sites()).ok());
  auto r = read_state("tdmunit");
  ASSERT_TRUE(r.ok()) << r.error().text();
  ASSERT_EQ(r->clients.size(), 2U);
  EXPECT_EQ(r->clients[0].name, "client");
  EXPECT_EQ(r->clients[0].node, Node::client);
  EXPECT_EQ(r->clients[0].ns, "tdmunit-cli");
  EXPECT_EQ(r->clients[0].addresses, (std::vector<std::string>{"10.77.1.2", "fd77:1::2", "10.77.1.3"}));
  EXPECT_EQ(r->clients[1].name, "client2");
  EXPECT_EQ(r->clients[1].node, Node::client2);
  EXPECT_EQ(r->clients[1].ns, "tdmunit-cl2");
  EXPECT_EQ(r->namespaces.back(), "tdmunit-cl2");
}

TEST_F(StateFile, OlderStateWithoutClientsStillReads) {
  LabState s = two_sites();
  s.clients.clear();
  s.namespaces.pop_back();
  ASSERT_TRUE(write_state(s).ok());
  auto j = nlohmann::json::parse(state_text());
  ASSERT_EQ(j.erase("clients"), 1U);
  const std::string text = j.dump(2);
  write_text(text);
  auto r = read_state("tdmunit");
  ASSERT_TRUE(r.ok()) << r.error().text() << "\n" << text;
  EXPECT_TRUE(r->clients.empty());
}

TEST_F(StateFile, ForeignOrUnknownClientSiteIsRefused) {
  LabState s = two_sites();
  s.clients[1].ns = "someone-else";
  ASSERT_TRUE(write_state(s).ok());
  auto r = read_state("tdmunit");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::config);
  EXPECT_NE(r.error().text().find("foreign namespace 'someone-else'"), std::string::npos) << r.error().text();

  s = two_sites();
  s.clients[1].name = "client9";
  ASSERT_TRUE(write_state(s).ok());
  r = read_state("tdmunit");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().text().find("unknown client site 'client9'"), std::string::npos) << r.error().text();

  // The client2 namespace suffix is the lab's own; anything else is not.
  s = two_sites();
  s.namespaces.push_back("tdmunit-cl3");
  ASSERT_TRUE(write_state(s).ok());
  r = read_state("tdmunit");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().text().find("foreign namespace 'tdmunit-cl3'"), std::string::npos) << r.error().text();
}

}  // namespace
}  // namespace tandem::lab
