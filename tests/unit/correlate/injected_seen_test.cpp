// The injected fate when the server DID see the probe: a device forwards the SYN and also answers
// it in the server's name, while the server sends nothing (its firewall drops the SYN after the
// capture). Built from two synthetic pairs of the same plan: the client's capture of an
// `injected_rst` path (probe out, forged RST in) and the server's capture of an `unanswered` path
// (probe in, nothing out). The client's RST is a reply the server never sent, so the probe is
// `injected` though matched at the server, never `answered` (the lab version with a real forwarding
// injector is TraceInjectedSeen in tests/integration/trace/).
#include <gtest/gtest.h>

#include "controller/correlate/correlate.hpp"
#include "tests/unit/correlate/synth_capture.hpp"

namespace tandem::correlate {
namespace {

TEST(CorrelateInjectedSeen, ForgedReplyForAProbeTheServerSawIsInjected) {
  synth::Path path;
  synth::Plan plan;
  const std::vector<synth::Outcome> injected(8, synth::Outcome::injected_rst);
  const std::vector<synth::Outcome> seen(8, synth::Outcome::unanswered);
  auto client_side = synth::synthesize(path, plan, injected);
  auto server_side = synth::synthesize(path, plan, seen);
  auto c = correlate(client_side.client, server_side.server, client_side.manifest);
  ASSERT_TRUE(c.ok()) << c.error().text();
  ASSERT_EQ(c->probes.size(), 8u);
  for (const auto& p : c->probes) {
    EXPECT_EQ(p.fate, Fate::injected) << "probe " << p.id;
    EXPECT_NE(p.server_probe, kNoPacket) << "probe " << p.id << ": the server saw it";
    EXPECT_EQ(p.server_reply, kNoPacket) << "probe " << p.id;
    EXPECT_EQ(p.reply, "rst") << "probe " << p.id;
    ASSERT_TRUE(p.hop.has_value());
    EXPECT_EQ(*p.hop, path.server);  // the forged RST claims the server's address
  }
  // Mixed with real answers on the same path: only the forged ones are injected.
  std::vector<synth::Outcome> mixed_client(8, synth::Outcome::answered), mixed_server(8, synth::Outcome::answered);
  for (std::size_t i : {1u, 4u, 6u}) {
    mixed_client[i] = synth::Outcome::injected_rst;
    mixed_server[i] = synth::Outcome::unanswered;
  }
  auto cm = synth::synthesize(path, plan, mixed_client);
  auto sm = synth::synthesize(path, plan, mixed_server);
  auto m = correlate(cm.client, sm.server, cm.manifest);
  ASSERT_TRUE(m.ok()) << m.error().text();
  ASSERT_EQ(m->probes.size(), 8u);
  for (const auto& p : m->probes) {
    const bool forged = p.id == 1 || p.id == 4 || p.id == 6;
    EXPECT_EQ(p.fate, forged ? Fate::injected : Fate::answered) << "probe " << p.id;
    EXPECT_NE(p.server_probe, kNoPacket) << "probe " << p.id;
  }
}

}  // namespace
}  // namespace tandem::correlate
