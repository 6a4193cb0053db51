// CURVE key files and the AGENT address line. Runs as any user; ownership cases need root and skip otherwise.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "common/transport/agent_address.hpp"
#include "common/transport/curve.hpp"

namespace tandem::transport {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "tandem-keys-XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data());
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string operator/(const std::string& name) const { return (fs::path(path_) / name).string(); }

 private:
  std::string path_;
};

mode_t mode_of(const std::string& p) {
  struct stat st {};
  EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
  return st.st_mode & 07777;
}

const char* kKey = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";  // zmq_curve(7) example server public key

TEST(CurveKeys, GenerateSaveLoad) {
  ASSERT_TRUE(curve_available().ok());
  TempDir dir;
  auto kp = CurveKeypair::generate();
  ASSERT_TRUE(kp.ok());
  EXPECT_TRUE(is_z85_key(kp->public_z85));
  EXPECT_TRUE(is_z85_key(kp->secret_z85));
  const mode_t old = ::umask(0);  // even with umask 0 the secret file is born 0600
  auto st = save_keypair(*kp, dir / "ctl", false);
  ::umask(old);
  ASSERT_TRUE(st.ok()) << st.error().text();
  EXPECT_EQ(mode_of(dir / "ctl.key"), 0600u);
  EXPECT_EQ(mode_of(dir / "ctl.pub"), 0644u);
  auto back = CurveKeypair::load_secret_file(dir / "ctl.key");
  ASSERT_TRUE(back.ok()) << back.error().text();
  EXPECT_EQ(back->public_z85, kp->public_z85);
  EXPECT_EQ(back->secret_z85, kp->secret_z85);
  auto pub = load_public_key_file(dir / "ctl.pub");
  ASSERT_TRUE(pub.ok());
  EXPECT_EQ(*pub, kp->public_z85);
}

TEST(CurveKeys, RefusesOverwriteWithoutForce) {
  TempDir dir;
  auto a = CurveKeypair::generate();
  auto b = CurveKeypair::generate();
  ASSERT_TRUE(save_keypair(*a, dir / "k", false).ok());
  auto again = save_keypair(*b, dir / "k", false);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code, Errc::usage);
  EXPECT_NE(again.error().message.find("--force"), std::string::npos);
  EXPECT_EQ(CurveKeypair::load_secret_file(dir / "k.key")->public_z85, a->public_z85);  // untouched
  ASSERT_TRUE(save_keypair(*b, dir / "k", true).ok());
  EXPECT_EQ(CurveKeypair::load_secret_file(dir / "k.key")->public_z85, b->public_z85);
  EXPECT_EQ(mode_of(dir / "k.key"), 0600u);
}

TEST(CurveKeys, RefusesOverwriteWhenOnlyThePublicFileExists) {
  TempDir dir;
  std::ofstream(dir / "k.pub") << "x\n";
  ASSERT_FALSE(save_keypair(*CurveKeypair::generate(), dir / "k", false).ok());
  EXPECT_FALSE(fs::exists(dir / "k.key"));
}

TEST(CurveKeys, SecretReadableByOthersIsRefused) {
  TempDir dir;
  ASSERT_TRUE(save_keypair(*CurveKeypair::generate(), dir / "k", false).ok());
  ASSERT_EQ(::chmod((dir / "k.key").c_str(), 0640), 0);
  auto r = CurveKeypair::load_secret_file(dir / "k.key");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::config);
  EXPECT_NE(r.error().message.find("mode 0640"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("chmod 600"), std::string::npos);
}

TEST(CurveKeys, SecretOwnedBySomeoneElseIsRefused) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to chown";
  TempDir dir;
  ASSERT_TRUE(save_keypair(*CurveKeypair::generate(), dir / "k", false).ok());
  ASSERT_EQ(::chown((dir / "k.key").c_str(), 65534, 65534), 0);
  auto r = CurveKeypair::load_secret_file(dir / "k.key");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("owned by uid 65534"), std::string::npos) << r.error().message;
}

TEST(CurveKeys, SymlinkedSecretIsRefused) {
  TempDir dir;
  ASSERT_TRUE(save_keypair(*CurveKeypair::generate(), dir / "k", false).ok());
  fs::create_symlink(dir / "k.key", dir / "link.key");
  EXPECT_FALSE(CurveKeypair::load_secret_file(dir / "link.key").ok());
}

TEST(CurveKeys, MalformedKeyFiles) {
  TempDir dir;
  std::ofstream(dir / "two.pub") << kKey << "\n" << kKey << "\n";
  std::ofstream(dir / "short.pub") << "abc\n";
  std::ofstream(dir / "comment.pub") << "# hello\n\n  " << kKey << "  \r\n";
  EXPECT_FALSE(load_public_key_file(dir / "two.pub").ok());
  EXPECT_FALSE(load_public_key_file(dir / "short.pub").ok());
  EXPECT_FALSE(load_public_key_file(dir / "missing.pub").ok());
  auto ok = load_public_key_file(dir / "comment.pub");
  ASSERT_TRUE(ok.ok()) << ok.error().text();
  EXPECT_EQ(*ok, kKey);
}

TEST(AgentAddress, ParsesTheOneLineForm) {
  auto a = parse_agent_address(std::string("tcp://203.0.113.5:7070#") + kKey);
  ASSERT_TRUE(a.ok()) << a.error().text();
  EXPECT_EQ(a->endpoint, "tcp://203.0.113.5:7070");
  EXPECT_EQ(a->host, "203.0.113.5");
  EXPECT_EQ(a->port, 7070);
  EXPECT_EQ(a->server_key, kKey);
  EXPECT_EQ(a->to_string(), std::string("tcp://203.0.113.5:7070#") + kKey);

  auto v6 = parse_agent_address(std::string("tcp://[2001:db8::5]:7070#") + kKey);
  ASSERT_TRUE(v6.ok()) << v6.error().text();
  EXPECT_EQ(v6->host, "2001:db8::5");
  auto name = parse_agent_address(std::string("tcp://agent.example.net:1#") + kKey);
  ASSERT_TRUE(name.ok());
}

TEST(AgentAddress, KeyMayContainHash) {
  // '#' is a Z85 digit: everything after the FIRST '#' is the key.
  std::string key;
  for (int i = 0; i < 1000 && key.find('#') == std::string::npos; ++i) key = CurveKeypair::generate()->public_z85;
  ASSERT_NE(key.find('#'), std::string::npos);
  auto a = parse_agent_address("tcp://127.0.0.1:7070#" + key);
  ASSERT_TRUE(a.ok()) << a.error().text();
  EXPECT_EQ(a->server_key, key);
}

TEST(AgentAddress, RejectsWithTheExpectedForm) {
  for (std::string bad : {std::string("tcp://1.2.3.4:7070"), std::string("udp://1.2.3.4:7070#") + kKey,
                          std::string("tcp://1.2.3.4#") + kKey, std::string("tcp://1.2.3.4:0#") + kKey,
                          std::string("tcp://1.2.3.4:70000#") + kKey, std::string("tcp://1.2.3.4:7070#short"),
                          std::string("tcp://:7070#") + kKey, std::string("tcp://*:7070#") + kKey,
                          std::string("tcp://[zz::1]:7070#") + kKey, std::string("tcp://2001:db8::1:7070#") + kKey,
                          std::string("tcp://1.2.3.4:7070#") + kKey + "x"}) {
    auto r = parse_agent_address(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().code, Errc::usage);
    EXPECT_NE(r.error().message.find("tcp://HOST:PORT/KEY"), std::string::npos) << r.error().message;
  }
}

// The quote-free form: the same 32 bytes in base64url after a '/'.
TEST(AgentAddress, QuoteFreeBase64UrlForm) {
  for (int i = 0; i < 200; ++i) {
    auto kp = CurveKeypair::generate();
    ASSERT_TRUE(kp.ok());
    const std::string b64 = z85_key_to_base64url(kp->public_z85);
    ASSERT_EQ(b64.size(), 43u);
    EXPECT_EQ(b64.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
              std::string::npos)
        << b64;
    EXPECT_EQ(base64url_key_to_z85(b64), kp->public_z85);
    auto a = parse_agent_address("tcp://[2001:db8::5]:7070/" + b64);
    ASSERT_TRUE(a.ok()) << a.error().text();
    EXPECT_EQ(a->server_key, kp->public_z85);
    EXPECT_EQ(a->host, "2001:db8::5");
    EXPECT_EQ(a->to_url(), "tcp://[2001:db8::5]:7070/" + b64);
  }
  // A known vector: 32 zero bytes are "0000…" in Z85 and "AAAA…A" (43) in base64url.
  EXPECT_EQ(z85_key_to_base64url(std::string(40, '0')), std::string(43, 'A'));
  // The last character carries 2 unused bits, which must be zero: 'B' (000001) is not a key.
  EXPECT_EQ(base64url_key_to_z85(std::string(42, 'A') + "B"), "");
  for (std::string bad : {std::string("tcp://1.2.3.4:7070/") + std::string(42, 'A'),
                          std::string("tcp://1.2.3.4:7070/") + std::string(42, 'A') + "=",
                          std::string("tcp://1.2.3.4:7070/") + std::string(44, 'A'), std::string("tcp://1.2.3.4:7070/")}) {
    auto r = parse_agent_address(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.error().message.find("base64url"), std::string::npos) << r.error().message;
  }
}

TEST(CurveKeys, TheOtherHalfIsRefusedAtOnce) {
  TempDir dir;
  auto kp = CurveKeypair::generate();
  ASSERT_TRUE(save_keypair(*kp, dir / "k", false).ok());
  auto pub_as_secret = CurveKeypair::load_secret_file(dir / "k.pub");
  ASSERT_FALSE(pub_as_secret.ok());
  EXPECT_NE(pub_as_secret.error().message.find("public key file"), std::string::npos) << pub_as_secret.error().text();
  auto secret_as_pub = load_public_key_file(dir / "k.key");
  ASSERT_FALSE(secret_as_pub.ok());
  EXPECT_NE(secret_as_pub.error().message.find("secret key file"), std::string::npos);
  // Renamed files are told apart by keygen's comment line.
  fs::copy_file(dir / "k.key", dir / "renamed-secret");
  EXPECT_FALSE(load_public_key_file(dir / "renamed-secret").ok());
  EXPECT_TRUE(CurveKeypair::load_secret_file(dir / "k.key").ok());
  EXPECT_TRUE(load_public_key_file(dir / "k.pub").ok());
}

TEST(AgentAddress, KeyFromFile) {
  TempDir dir;
  std::ofstream(dir / "agent.pub") << kKey << "\n";
  auto a = parse_agent_address("tcp://10.0.0.1:7070", dir / "agent.pub");
  ASSERT_TRUE(a.ok()) << a.error().text();
  EXPECT_EQ(a->server_key, kKey);
  // Both given and different: refuse rather than guess.
  auto other = CurveKeypair::generate();
  auto clash = parse_agent_address("tcp://10.0.0.1:7070#" + other->public_z85, dir / "agent.pub");
  EXPECT_FALSE(clash.ok());
}

}  // namespace
}  // namespace tandem::transport
