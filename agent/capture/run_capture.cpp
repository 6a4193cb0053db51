#include "agent/capture/run_capture.hpp"

#include <sodium.h>

#include <algorithm>
#include <cstring>
#include <fstream>

#include <fmt/format.h>

#include "common/base/clock.hpp"
#include "common/packet/addr.hpp"
#include "common/packet/decode.hpp"
#include "common/pcapio/bpf.hpp"
#include "common/pcapio/pcapng_writer.hpp"

namespace tandem::agent {
namespace {

// 32-bit words of an address, for BPF comparisons ("icmp[24:4] == 0x0a000001").
std::vector<std::uint32_t> words(const packet::IpAddr& a) {
  std::vector<std::uint32_t> w;
  for (std::size_t i = 0; i < a.size(); i += 4)
    w.push_back(static_cast<std::uint32_t>(a.bytes[i]) << 24 | static_cast<std::uint32_t>(a.bytes[i + 1]) << 16 |
                static_cast<std::uint32_t>(a.bytes[i + 2]) << 8 | a.bytes[i + 3]);
  return w;
}

// ICMP errors addressed to `src` that quote a packet of flow `f` (src -> dst, its protocol, its
// dport). IPv4: the quoted header starts at icmp[8] (IHL from icmp[8]); IPv6: at icmp6[8], 40
// bytes, no extension headers assumed (an error quoting one is not kept).
std::string quoted_flow_filter(const proto::Flow& f, const packet::IpAddr& dst, const packet::IpAddr& src) {
  const int proto_num = f.l4 == proto::L4::udp ? 17 : 6;
  std::string q;
  if (dst.is_v4()) {
    q = fmt::format("icmp and dst host {} and (icmp[icmptype] == icmp-unreach or icmp[icmptype] == icmp-timxceed or "
                    "icmp[icmptype] == icmp-paramprob) and icmp[17] == {} and icmp[20:4] == {:#x} and icmp[24:4] == {:#x} "
                    "and icmp[8 + ((icmp[8] & 0xf) << 2) + 2 : 2] == {}",
                    src.to_string(), proto_num, words(src)[0], words(dst)[0], f.dport);
  } else {
    q = fmt::format("icmp6 and dst host {} and ip6[40] < 5 and icmp6[14] == {}", src.to_string(), proto_num);
    auto ws = words(src), wd = words(dst);
    for (std::size_t i = 0; i < 4; ++i) q += fmt::format(" and icmp6[{}:4] == {:#x}", 16 + 4 * i, ws[i]);
    for (std::size_t i = 0; i < 4; ++i) q += fmt::format(" and icmp6[{}:4] == {:#x}", 32 + 4 * i, wd[i]);
    q += fmt::format(" and icmp6[50:2] == {}", f.dport);
  }
  return "(" + q + ")";
}

std::string flow_filter(const proto::Flow& f) {
  auto dst = packet::IpAddr::parse(f.dst);
  std::optional<packet::IpAddr> src;
  if (!f.src.empty()) src = packet::IpAddr::parse(f.src);
  bool v4 = dst->is_v4();
  std::string d = dst->to_string();
  std::string s = src ? src->to_string() : std::string();
  const char* icmp = v4 ? "icmp" : "icmp6";
  if (f.l4 == proto::L4::icmp) {
    return src ? fmt::format("({} and host {} and host {})", icmp, d, s) : fmt::format("({} and host {})", icmp, d);
  }
  const char* l4 = f.l4 == proto::L4::udp ? "udp" : "tcp";
  std::string fwd = fmt::format("dst host {} and dst port {}", d, f.dport);
  std::string rev = fmt::format("src host {} and src port {}", d, f.dport);
  if (src) {
    fwd += " and src host " + s;
    rev += " and dst host " + s;
  }
  if (f.sport_max != 0) {
    fwd += fmt::format(" and src portrange {}-{}", f.sport_min, f.sport_max);
    rev += fmt::format(" and dst portrange {}-{}", f.sport_min, f.sport_max);
  }
  std::string out = fmt::format("({} and (({}) or ({})))", l4, fwd, rev);
  if (src) {
    // ICMP errors about a probe come from any router on the path, addressed to the prober. Only
    // errors that QUOTE this flow are kept (quoted protocol, source, destination and destination
    // port at their fixed offsets), so errors about the host's other traffic never enter the
    // capture (attack-report row C2).
    out += " or " + quoted_flow_filter(f, *dst, *src);
  }
  return out;
}

}  // namespace

Result<std::string> flows_filter(const std::vector<proto::Flow>& flows, const std::string& extra, int snaplen) {
  std::string f;
  for (const auto& flow : flows) {
    auto d = packet::IpAddr::parse(flow.dst);
    if (!d || (!flow.src.empty() && !packet::IpAddr::parse(flow.src)))
      return make_error(Errc::usage, "capture", "flow address does not parse: " + flow.dst);
    if (!f.empty()) f += " or ";
    f += flow_filter(flow);
  }
  if (f.empty()) return make_error(Errc::usage, "capture", "no flows");
  if (!extra.empty()) {
    // Operator-allowed filter text may only narrow (T13, attack-report row P11). It must compile
    // on its own, so it is one balanced expression; parenthesised and AND-ed, it cannot reach
    // outside its parentheses ("1=1) or (1=1" does not compile alone and is refused).
    if (auto st = pcapio::check_filter(pcapio::linktype::kLinuxSll, extra, snaplen); !st)
      return make_error(Errc::usage, "capture", "filter text does not compile on its own: " + st.error().message);
    int depth = 0;
    for (char c : extra) {
      depth += c == '(' ? 1 : c == ')' ? -1 : 0;
      if (depth < 0) return make_error(Errc::usage, "capture", "filter text has unbalanced parentheses");
    }
    if (depth != 0) return make_error(Errc::usage, "capture", "filter text has unbalanced parentheses");
    f = "(" + f + ") and (" + extra + ")";
  }
  // Device "any" gives Linux cooked frames; the filter is checked for that link type now, so a bad
  // one is a RUN_SETUP refusal rather than a CAPTURE_START failure.
  if (auto st = pcapio::check_filter(pcapio::linktype::kLinuxSll, f, snaplen); !st) return st.error();
  return f;
}

namespace {
// Where the quoted packet's L4 header ends in an ICMP error (the frame's end if unknown).
template <class OffsetOf>
std::uint32_t quoted_headers_end(const packet::Decoded& d, OffsetOf offset_of) {
  const auto& q = d.icmp.quoted;
  if (!d.icmp.has_quoted || q.ip.payload.empty()) return offset_of(nullptr);
  const std::uint32_t start = offset_of(q.ip.payload.data());
  const auto& l4 = q.ip.payload;
  std::uint32_t len = 8;
  if (q.ip.protocol == 6 && l4.size() >= 13) len = std::max<std::uint32_t>(20, 4u * (l4[12] >> 4));
  else if ((q.ip.protocol == 17 || q.ip.protocol == 1 || q.ip.protocol == 58) && l4.size() >= 12 &&
           std::memcmp(l4.data() + 8, "TNDM", 4) == 0)
    len = 20;  // the 12-byte tandem identity tag after the UDP/ICMP header
  return start + len;
}
}  // namespace

std::uint32_t scrubbed_length(int linktype, const pcapio::PacketView& p) {
  auto caplen = p.caplen();
  packet::Decoded d = packet::decode(static_cast<std::uint32_t>(linktype), p.data, p.origlen);
  auto offset_of = [&](const std::uint8_t* at) -> std::uint32_t {
    if (!at) return caplen;
    return static_cast<std::uint32_t>(at - p.data.data());
  };
  if (d.l3 != packet::L3::ip) return std::min<std::uint32_t>(caplen, 64);
  std::uint32_t l4_start = d.ip.payload.empty() ? offset_of(d.ip.header.data()) + static_cast<std::uint32_t>(d.ip.header.size())
                                                 : offset_of(d.ip.payload.data());
  auto tag = [](std::span<const std::uint8_t> payload) -> std::uint32_t {
    return payload.size() >= 4 && std::memcmp(payload.data(), "TNDM", 4) == 0 ? 12u : 0u;
  };
  std::uint32_t keep = l4_start;
  switch (d.l4) {
    case packet::L4::tcp: keep = l4_start + 4u * d.tcp.data_offset; break;
    case packet::L4::udp: keep = l4_start + 8 + tag(d.udp.payload); break;
    case packet::L4::icmp:
      // An error keeps the quoted packet's headers (the evidence: addresses, ports, sequence,
      // TCP options), scrubbed like any packet: the quoted payload goes.
      keep = d.icmp.is_error ? quoted_headers_end(d, offset_of) : l4_start + 8 + tag(d.icmp.body);
      break;
    default: break;
  }
  return std::min(keep, caplen);
}

RunCapture::RunCapture(RunCaptureConfig config, pcapio::PcapngWriter writer)
    : config_(std::move(config)), writer_(std::move(writer)), session_([this] {
        pcapio::CaptureSessionConfig sc;
        sc.capture.device = "any";
        sc.capture.snaplen = config_.snaplen;
        sc.capture.filter = config_.filter;
        sc.capture.promisc = false;
        // Nothing is kept in memory: every packet goes to the file as it arrives.
        sc.store = false;
        sc.on_packet = [this](const pcapio::PacketView& p) { on_packet(p); };
        return sc;
      }()) {}

RunCapture::~RunCapture() {
  if (!finished_) abort();
}

Result<std::unique_ptr<RunCapture>> RunCapture::start(RunCaptureConfig config) {
  pcapio::PcapngOptions po;
  po.buffer_bytes = config.write_buffer_bytes;
  auto w = pcapio::PcapngWriter::create(config.path.string(), po);
  if (!w) return w.error();
  std::unique_ptr<RunCapture> c(new RunCapture(std::move(config), std::move(w).value()));
  if (auto st = c->session_.start(); !st) {
    c->abort();
    return st.error();
  }
  return c;
}

Status RunCapture::ensure_interface() {
  if (iface_) return ok_status();
  pcapio::PcapngInterface iface;
  iface.linktype = session_.linktype();
  iface.snaplen = static_cast<std::uint32_t>(config_.snaplen);
  iface.name = config_.interface_name;
  iface.description = config_.description;
  auto id = writer_->add_interface(iface);
  if (!id) return id.error();
  iface_ = *id;
  // The quota counts every byte of the file (attack-report row P15): the SHB and IDB as written
  // (the IDB description holds the whole filter), each EPB (32 bytes + padded data), and room for
  // the closing ISB with its comment.
  if (auto st = writer_->flush(); !st) return st;
  std::error_code hec;
  const std::uint64_t header_bytes = std::filesystem::file_size(config_.path, hec);
  if (hec) return make_error(Errc::environment, "capture", "stat " + config_.path.string() + ": " + hec.message());
  constexpr std::uint64_t kStatisticsReserve = 256;
  estimate_ = header_bytes + kStatisticsReserve;
  if (estimate_ > config_.quota_bytes) {
    return make_error(Errc::environment, "capture",
                      fmt::format("disk quota: the file's header blocks alone take {} bytes, {} bytes of quota left",
                                  header_bytes, config_.quota_bytes));
  }
  return ok_status();
}

void RunCapture::on_packet(const pcapio::PacketView& p) {
  if (write_error_) {
    ++not_stored_;
    return;
  }
  if (auto st = ensure_interface(); !st) {
    write_error_ = st.error();
    ++not_stored_;
    return;
  }
  std::uint32_t keep = config_.scrub_payload ? scrubbed_length(session_.linktype(), p) : p.caplen();
  // Each EPB is 32 bytes + padded data (estimate_ starts with the header blocks as written).
  std::uint64_t block = 32 + ((keep + 3u) & ~3u);
  if (estimate_ + block > config_.quota_bytes) {
    ++not_stored_;
    return;
  }
  pcapio::PacketView v{p.ts_ns, p.origlen, p.data.first(keep)};
  if (auto st = writer_->write(*iface_, v); !st) {
    write_error_ = st.error();
    ++not_stored_;
    return;
  }
  estimate_ += block;
  written_.fetch_add(1, std::memory_order_relaxed);
}

void RunCapture::remove_file() {
  std::error_code ec;
  std::filesystem::remove(config_.path, ec);
}

void RunCapture::abort() {
  if (finished_) return;
  finished_ = true;
  if (session_.running()) (void)session_.stop(std::chrono::milliseconds(0));
  if (writer_) (void)writer_->close();
  writer_.reset();
  remove_file();
}

Result<StoredCapture> RunCapture::stop_and_write(std::chrono::milliseconds drain) {
  if (finished_) return make_error(Errc::usage, "capture", "capture already stopped");
  auto res = session_.stop(drain);  // joins the capture thread: the writer is ours from here
  finished_ = true;
  auto fail = [&](const Error& e) -> Error {
    if (writer_) (void)writer_->close();
    writer_.reset();
    remove_file();
    return e;
  };
  if (!res) return fail(res.error());
  if (write_error_) return fail(*write_error_);
  if (auto st = ensure_interface(); !st) return fail(st.error());
  StoredCapture out;
  out.path = config_.path;
  out.packets_written = written_.load(std::memory_order_relaxed);
  out.not_stored = not_stored_;
  // The capture's own counters travel with the file (Wireshark: Statistics > Capture File
  // Properties), so a remote admin who only gets the pcapng still sees whether it is complete.
  pcapio::PcapngInterfaceStats isb;
  isb.ts_ns = realtime_ns();
  if (res->stats.available) {
    isb.filter_accept = res->stats.received;
    isb.os_drop = res->stats.dropped;
  }
  isb.user_delivered = out.packets_written;  // if_drop stays unknown: libpcap does not fill it here (T17)
  if (out.not_stored > 0) {
    isb.comment = fmt::format("tandem: {} captured packets not stored (quota or write error)", out.not_stored);
  }
  if (auto st = writer_->write_statistics(*iface_, isb); !st) return fail(st.error());
  if (auto st = writer_->close(); !st) return fail(st.error());
  writer_.reset();
  std::error_code ec;
  out.size = std::filesystem::file_size(config_.path, ec);
  if (ec) return fail(make_error(Errc::environment, "capture", "stat " + config_.path.string() + ": " + ec.message()));
  if (out.size > config_.quota_bytes)  // the accounting above is exact; this is its check
    return fail(make_error(Errc::internal, "capture",
                           fmt::format("capture file of {} bytes exceeds the quota left ({} bytes)", out.size,
                                       config_.quota_bytes)));
  auto h = sha256_file(config_.path);
  if (!h) return fail(h.error());
  out.sha256 = std::move(h).value();

  out.stats.received = res->seen;
  out.stats.dropped = res->stats.dropped + out.not_stored;
  // T17: libpcap fills ps_ifdrop on Linux only in promiscuous mode; we never are, so it is unknown.
  out.stats.if_dropped = res->stats.if_dropped;
  out.stats.if_dropped_known = false;
  out.stats.available_bytes = out.size;
  return out;
}

Result<std::vector<std::uint8_t>> sha256_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error(Errc::environment, "capture", "cannot read " + path.string());
  crypto_hash_sha256_state st;
  crypto_hash_sha256_init(&st);
  std::vector<char> buf(1 << 16);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    auto n = in.gcount();
    if (n > 0) crypto_hash_sha256_update(&st, reinterpret_cast<const unsigned char*>(buf.data()), static_cast<unsigned long long>(n));
  }
  if (in.bad()) return make_error(Errc::environment, "capture", "read error on " + path.string());
  std::vector<std::uint8_t> out(crypto_hash_sha256_BYTES);
  crypto_hash_sha256_final(&st, out.data());
  return out;
}

}  // namespace tandem::agent
