// Wire protocol: golden bytes, round trips, limits, and malformed input (named errors, no crash,
// no allocation driven by a declared size).
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <new>

#include "common/proto/wire.hpp"
#include "tests/unit/proto/samples.hpp"

#include "tests/unit/proto/alloc_probe.hpp"

namespace tandem::proto {
namespace {

using Bytes = std::vector<std::uint8_t>;

using testing::AllocScope;

Bytes enc(const Message& m, std::uint32_t id = 7) {
  auto r = encode(m, id);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().text());
  return r.ok() ? *r : Bytes{};
}

WireErrc err_of(const Bytes& b) {
  auto d = decode(b);
  EXPECT_FALSE(d.ok());
  return d.ok() ? WireErrc::bad_value : d.error().code;
}

void put_u64le(Bytes& b, std::size_t at, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) b[at + i] = static_cast<std::uint8_t>(v >> (8 * i));
}
void set_body_len(Bytes& b, std::uint32_t n) {
  for (int i = 0; i < 4; ++i) b[14 + i] = static_cast<std::uint8_t>(n >> (24 - 8 * i));
}

// The normative example of docs/wire-protocol.md §4.
TEST(WireGolden, HelloBytes) {
  const Bytes expected = {
      'T', 'N', 'D', 'M',            // magic
      0x00, 0x01,                    // version 1
      0x00, 0x01,                    // type HELLO
      0x00, 0x00,                    // flags
      0x00, 0x00, 0x00, 0x07,        // request id 7
      0x00, 0x00, 0x00, 0x25,        // body length 37
      0x01,                          // Cereal portable binary: little-endian
      0x01, 0x00,                    // min_version 1
      0x01, 0x00,                    // max_version 1
      0x03, 0, 0, 0, 0, 0, 0, 0,     // controller_name length 3
      'c', 't', 'l',
      0x01, 0, 0, 0, 0, 0, 0, 0,     // capabilities: 1 entry
      0x05, 0, 0, 0, 0, 0, 0, 0,     // length 5
      'c', 'l', 'o', 'c', 'k',
  };
  EXPECT_EQ(enc(Hello{1, 1, "ctl", {"clock"}}, 7), expected);
  auto d = decode(expected);
  ASSERT_TRUE(d.ok()) << d.error().detail;
  EXPECT_EQ(d.value().header.request_id, 7u);
  EXPECT_EQ(std::get<Hello>(d.value().message), (Hello{1, 1, "ctl", {"clock"}}));
}

TEST(WireGolden, EmptyMessageIsHeaderPlusEndiannessByte) {
  const Bytes expected = {'T', 'N', 'D', 'M', 0, 1, 0, 18, 0, 0, 0, 0, 0, 9, 0, 0, 0, 1, 0x01};
  EXPECT_EQ(enc(Bye{}, 9), expected);
}

TEST(WireRoundTrip, EveryMessageType) {
  auto all = testing::sample_messages();
  ASSERT_EQ(all.size(), kMessageTable.size());
  std::uint32_t id = 100;
  for (const auto& m : all) {
    SCOPED_TRACE(std::string(message_name(type_of(m))));
    Bytes b = enc(m, id);
    auto d = decode(b);
    ASSERT_TRUE(d.ok()) << d.error().to_error().text();
    EXPECT_EQ(d.value().header.request_id, id);
    EXPECT_EQ(d.value().header.type, static_cast<std::uint16_t>(type_of(m)));
    EXPECT_EQ(d.value().message, m);
    ++id;
  }
}

TEST(WireTable, NamesAndNumbersAreConsistent) {
  for (std::size_t i = 0; i < kMessageTable.size(); ++i) {
    EXPECT_EQ(static_cast<std::size_t>(kMessageTable[i].type), i + 1);
    EXPECT_EQ(find_message(static_cast<std::uint16_t>(i + 1)), &kMessageTable[i]);
    EXPECT_LE(kHeaderSize + kMessageTable[i].max_body, kMaxEnvelopeSize);
  }
  EXPECT_EQ(find_message(0), nullptr);
  EXPECT_EQ(find_message(19), nullptr);
}

// Every field at its maximum still fits its type's body limit: the encoder can never produce a
// message the decoder must refuse.
TEST(WireLimits, MaximalMessagesFitTheirLimits) {
  const std::string name(kMaxNameLen, 'n');
  std::vector<std::string> caps(kMaxCapabilities, std::string(kMaxCapabilityLen, 'c'));
  ProbePlan plan;
  plan.dst = std::string(kMaxAddressLen, 'a');
  plan.tcp_options = std::string(kMaxTcpOptionsLen, 'o');
  plan.sport = std::string(kMaxSportPolicyLen, 's');
  plan.variants.assign(kMaxVariants, ProbeVariant{std::string(kMaxTcpOptionsLen, 'o'), 1,
                                                  std::string(kMaxSportPolicyLen, 's'), 255});
  RunSetup setup;
  setup.run_id = name;
  setup.capture_filter = std::string(kMaxFilterLen, 'f');
  setup.flows.assign(kMaxFlows, Flow{std::string(kMaxAddressLen, 'a'), std::string(kMaxAddressLen, 'b'), L4::udp,
                                     1, 2, 3});
  setup.plan = plan;
  CaptureChunk chunk;
  chunk.bytes.assign(kMaxChunkBytes, 0xee);
  chunk.total = kMaxChunkBytes;
  chunk.sha256.assign(kSha256Len, 1);
  const std::vector<Message> maximal = {
      Hello{1, 1, name, caps},
      HelloOk{1, name, std::string(kMaxVersionTextLen, 'v'), caps, std::string(kMaxPolicySummaryLen, 'p'),
              std::vector<std::string>(kMaxSources, std::string(kMaxAddressLen, 'a'))},
      setup,
      RunOk{name, std::vector<Flow>(kMaxFlows, Flow{std::string(kMaxAddressLen, 's'), std::string(kMaxAddressLen, 'd'), L4::tcp, 1, 2, 3})},
      SendPlan{plan},
      StatusReply{AgentState::failed, 1000, std::string(kMaxDetailLen, 'd')},
      chunk,
      ErrorReply{ErrorCode::internal, std::string(kMaxErrorTextLen, 'e')},
  };
  for (const auto& m : maximal) {
    SCOPED_TRACE(std::string(message_name(type_of(m))));
    auto r = encode(m, 1);
    ASSERT_TRUE(r.ok()) << r.error().text();
    auto d = decode(*r);
    ASSERT_TRUE(d.ok()) << d.error().to_error().text();
    EXPECT_EQ(d.value().message, m);
  }
}

TEST(WireEncode, RefusesWhatThePeerWouldRefuse) {
  auto too_long = encode(Hello{1, 1, std::string(kMaxNameLen + 1, 'x'), {}}, 1);
  ASSERT_FALSE(too_long.ok());
  EXPECT_EQ(too_long.error().code, Errc::usage);
  EXPECT_NE(too_long.error().message.find("controller_name"), std::string::npos);
  EXPECT_FALSE(encode(RunOk{"../etc", {}}, 1).ok());              // token charset
  EXPECT_FALSE(encode(RunOk{"", {}}, 1).ok());                    // empty run id
  EXPECT_FALSE(encode(ErrorReply{ErrorCode::internal, "a\x1b[2Jb"}, 1).ok());  // escape sequence
  EXPECT_FALSE(encode(Hello{2, 1, "c", {}}, 1).ok());         // min > max
  EXPECT_FALSE(encode(FetchCapture{0, 0}, 1).ok());
  EXPECT_FALSE(encode(StatusReply{static_cast<AgentState>(9), 0, ""}, 1).ok());
}

// --- malformed input ---

TEST(WireMalformed, HeaderProblemsHaveNames) {
  Bytes good = enc(Hello{1, 1, "ctl", {"clock"}});
  EXPECT_EQ(err_of(Bytes(good.begin(), good.begin() + 17)), WireErrc::short_header);
  EXPECT_EQ(err_of({}), WireErrc::short_header);
  Bytes b = good;
  b[0] = 'X';
  EXPECT_EQ(err_of(b), WireErrc::bad_magic);
  b = good;
  b[5] = 2;
  EXPECT_EQ(err_of(b), WireErrc::unsupported_version);
  b = good;
  b[5] = 0;
  EXPECT_EQ(err_of(b), WireErrc::unsupported_version);
  b = good;
  b[7] = 99;
  EXPECT_EQ(err_of(b), WireErrc::unknown_type);
  b = good;
  b[6] = 0xff;
  EXPECT_EQ(err_of(b), WireErrc::unknown_type);
  b = good;
  b[9] = 1;
  EXPECT_EQ(err_of(b), WireErrc::bad_flags);
}

TEST(WireMalformed, DeclaredBodyLongerThanWhatArrived) {
  Bytes b = enc(Hello{1, 1, "ctl", {"clock"}});
  set_body_len(b, 38);
  auto d = decode(b);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.error().code, WireErrc::body_length_mismatch);
  EXPECT_NE(d.error().to_error().text().find("HELLO: declared 38, got 37"), std::string::npos);
  set_body_len(b, 0xffffffffu);
  EXPECT_EQ(err_of(b), WireErrc::body_too_large);
  b.push_back(0);  // body one byte longer than declared
  set_body_len(b, 37);
  EXPECT_EQ(err_of(b), WireErrc::body_length_mismatch);
}

TEST(WireMalformed, StringLengthOf2Pow31IsRefusedWithoutAllocating) {
  Bytes b = enc(Hello{1, 1, "ctl", {"clock"}});
  put_u64le(b, kHeaderSize + 5, 1ULL << 31);  // controller_name length
  AllocScope alloc;
  auto d = decode(b);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.error().code, WireErrc::length_exceeds_input);
  EXPECT_LT(alloc.largest(), 4096u);
}

TEST(WireMalformed, HugeVectorCountIsRefusedWithoutAllocating) {
  for (std::uint64_t count : {1ULL << 62, 0xffffffffffffffffULL, 1ULL << 32, 1000ULL}) {
    Bytes b = enc(Hello{1, 1, "ctl", {"clock"}});
    put_u64le(b, kHeaderSize + 16, count);  // capabilities count
    AllocScope alloc;
    auto d = decode(b);
    ASSERT_FALSE(d.ok());
    EXPECT_EQ(d.error().code, WireErrc::length_exceeds_input) << count;
    EXPECT_LT(alloc.largest(), 4096u);
  }
}

TEST(WireMalformed, LengthWithinInputButAboveFieldMaximum) {
  // A RUN_OK whose run_id claims 100 bytes and really carries them: fits the body, breaks the field max.
  Bytes b = {'T', 'N', 'D', 'M', 0, 1, 0, 6, 0, 0, 0, 0, 0, 1, 0, 0, 0, 109, 1, 100, 0, 0, 0, 0, 0, 0, 0};
  b.resize(b.size() + 100, 'r');
  auto d = decode(b);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.error().code, WireErrc::field_too_long);
  EXPECT_NE(d.error().detail.find("run_id"), std::string::npos);
}

TEST(WireMalformed, VariantListAboveItsMaximum) {
  SendPlan sp{testing::sample_plan()};
  sp.plan.variants.assign(kMaxVariants, ProbeVariant{"", 0, ""});
  Bytes b = enc(sp);
  // The plan ends with the (empty) streams list: its 8-byte size tag. Before it, the variants size
  // tag and kMaxVariants entries of (8 + 1 + 8 + 1) bytes each (tcp_options length, tos, sport
  // length, ttl).
  b.resize(b.size() - 8);
  const std::size_t at = b.size() - kMaxVariants * 18 - 8;
  put_u64le(b, at, kMaxVariants + 1);
  b.insert(b.end(), 18, 0);
  b.insert(b.end(), 8, 0);  // streams: 0
  set_body_len(b, static_cast<std::uint32_t>(b.size() - kHeaderSize));
  EXPECT_EQ(err_of(b), WireErrc::field_too_long);
}

TEST(WireMalformed, StreamCountsMustAddUpToThePlanCount) {
  SendPlan sp{testing::sample_plan()};
  sp.plan.streams = {ProbeStream{"10.77.1.2", "10.77.2.2", 21, 1, sp.plan.count, {}},
                     ProbeStream{"10.77.1.3", "10.77.2.2", 21, 2, sp.plan.count, {}}};
  EXPECT_FALSE(encode(sp, 1).ok());  // 2 x count != count
  sp.plan.count *= 2;
  auto b = encode(sp, 1);
  ASSERT_TRUE(b.ok());
  auto d = decode(b.value());
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(std::get<SendPlan>(d.value().message).plan.streams, sp.plan.streams);
}

TEST(WireMalformed, ValuesOutOfRange) {
  Bytes b = enc(CaptureStats{1, 2, 3, true, 4});
  b[kHeaderSize + 1 + 24] = 2;  // if_dropped_known byte
  EXPECT_EQ(err_of(b), WireErrc::bad_value);

  b = enc(StatusReply{AgentState::idle, 0, ""});
  b[kHeaderSize + 1] = 0;  // state
  EXPECT_EQ(err_of(b), WireErrc::bad_value);

  b = enc(RunOk{"abc", {}});
  b[kHeaderSize + 1 + 8] = '/';
  EXPECT_EQ(err_of(b), WireErrc::bad_value);

  b = enc(Bye{});
  b[kHeaderSize] = 7;  // endianness byte
  EXPECT_EQ(err_of(b), WireErrc::bad_endianness);

  CaptureChunk c;
  c.offset = 0;
  c.total = 10;
  c.bytes = {1, 2, 3};
  b = enc(c);
  b[kHeaderSize + 1 + 8] = 2;  // total 10 -> 2: offset + size > total
  EXPECT_EQ(err_of(b), WireErrc::bad_value);
}

TEST(WireMalformed, TrailingBytes) {
  Bytes b = enc(ClockProbe{5});
  b.push_back(0);
  set_body_len(b, static_cast<std::uint32_t>(b.size() - kHeaderSize));
  EXPECT_EQ(err_of(b), WireErrc::trailing_bytes);
}

// Cut every valid message at every byte offset: each prefix is refused by name, nothing crashes,
// nothing allocates more than the message itself could need.
TEST(WireMalformed, TruncatedAtEveryOffset) {
  for (const auto& m : testing::sample_messages()) {
    SCOPED_TRACE(std::string(message_name(type_of(m))));
    const Bytes full = enc(m);
    for (std::size_t cut = 0; cut < full.size(); ++cut) {
      Bytes part(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(cut));
      auto d = decode(part);
      ASSERT_FALSE(d.ok()) << "cut at " << cut;
      const WireErrc e = d.error().code;
      EXPECT_TRUE(e == WireErrc::short_header || e == WireErrc::body_length_mismatch) << to_string(e);
      // Same prefix with the header's length fixed up: the body parser itself must see the cut.
      if (cut > kHeaderSize) {
        set_body_len(part, static_cast<std::uint32_t>(cut - kHeaderSize));
        AllocScope alloc;
        auto d2 = decode(part);
        ASSERT_FALSE(d2.ok()) << "cut at " << cut;
        const WireErrc e2 = d2.error().code;
        EXPECT_TRUE(e2 == WireErrc::truncated || e2 == WireErrc::length_exceeds_input || e2 == WireErrc::bad_value)
            << "cut at " << cut << ": " << to_string(e2);
        EXPECT_LE(alloc.largest(), std::max<std::size_t>(full.size() * 4, 8192));
      }
    }
  }
}

TEST(WireMalformed, BitFlipsNeverCrash) {
  for (const auto& m : testing::sample_messages()) {
    const Bytes full = enc(m);
    for (std::size_t i = 0; i < full.size(); ++i) {
      for (std::uint8_t mask : {std::uint8_t{0x01}, std::uint8_t{0x80}, std::uint8_t{0xff}}) {
        Bytes b = full;
        b[i] ^= mask;
        auto d = decode(b);
        if (d.ok()) {
          // Whatever decodes must re-encode (the encoder applies the same rules).
          EXPECT_TRUE(encode(d.value().message, 1).ok());
        }
      }
    }
  }
}

TEST(WireSession, StateMachine) {
  using S = SessionState;
  using T = MsgType;
  EXPECT_EQ(next_state(S::start, T::hello), S::ready);
  EXPECT_EQ(next_state(S::start, T::status), S::invalid);
  EXPECT_EQ(next_state(S::start, T::bye), S::closed);
  EXPECT_EQ(next_state(S::ready, T::run_setup), S::armed);
  EXPECT_EQ(next_state(S::ready, T::capture_start), S::invalid);
  EXPECT_EQ(next_state(S::armed, T::capture_start), S::capturing);
  EXPECT_EQ(next_state(S::capturing, T::send_plan), S::capturing);
  EXPECT_EQ(next_state(S::capturing, T::capture_stop), S::stopped);
  EXPECT_EQ(next_state(S::stopped, T::fetch_capture), S::stopped);
  EXPECT_EQ(next_state(S::stopped, T::run_end), S::ready);
  EXPECT_EQ(next_state(S::capturing, T::clock_probe), S::capturing);
  EXPECT_EQ(next_state(S::ready, T::hello), S::invalid);
  EXPECT_EQ(next_state(S::closed, T::hello), S::invalid);
  // Replies are never valid requests.
  for (auto reply : {T::hello_ok, T::clock_reply, T::run_ok, T::capture_stats, T::send_report, T::status_reply,
                     T::capture_chunk, T::error})
    for (auto s : {S::start, S::ready, S::armed, S::capturing, S::stopped}) EXPECT_EQ(next_state(s, reply), S::invalid);
}

// Writes the sample messages as fuzz seeds when TANDEM_WRITE_WIRE_CORPUS names a directory.
TEST(WireCorpus, WriteSeedsOnRequest) {
  const char* dir = std::getenv("TANDEM_WRITE_WIRE_CORPUS");
  if (!dir) GTEST_SKIP() << "set TANDEM_WRITE_WIRE_CORPUS=DIR to regenerate the seed corpus";
  for (const auto& m : testing::sample_messages()) {
    std::string name(message_name(type_of(m)));
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::ofstream out(std::string(dir) + "/seed-" + name + ".bin", std::ios::binary);
    const Bytes b = enc(m);
    out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  }
}

}  // namespace
}  // namespace tandem::proto
