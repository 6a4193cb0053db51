#include "controller/report/bundle.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <string_view>
#include <unordered_map>

#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>

#include "common/packet/decode.hpp"
#include "common/pcapio/pcapng_writer.hpp"
#include "controller/report/report_html.hpp"

namespace tandem::report {
namespace fs = std::filesystem;
namespace {

Error env_error(const std::string& what, const std::string& path, int err) {
  return make_error(Errc::environment, "report", fmt::format("{} {}: {}", what, path, std::strerror(err)));
}

using Emit = std::function<void(std::string_view)>;

// Writes what produce() hands to its emit callback, in order, and fsyncs the file (the rename that
// follows must not publish a file whose bytes are still only in the page cache). Pieces are
// gathered into writes of about 1 MiB; the whole text never needs to exist at once.
Status write_streamed(const fs::path& path, const std::function<void(const Emit&)>& produce) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return env_error("create", path.string(), errno);
  constexpr std::size_t kChunk = std::size_t{1} << 20;
  std::string buf;
  buf.reserve(kChunk);
  int werr = 0;
  auto put = [&](std::string_view s) {
    if (werr == 0 && !s.empty() && std::fwrite(s.data(), 1, s.size(), f) != s.size()) werr = errno;
  };
  produce([&](std::string_view s) {
    if (buf.size() + s.size() > kChunk) {
      put(buf);
      buf.clear();
    }
    if (s.size() >= kChunk) put(s);
    else buf.append(s);
  });
  put(buf);
  if (werr == 0 && std::fflush(f) != 0) werr = errno;
  if (werr == 0 && ::fsync(::fileno(f)) != 0) werr = errno;
  if (std::fclose(f) != 0 && werr == 0) werr = errno;
  if (werr != 0) return env_error("write", path.string(), werr);
  return ok_status();
}

Status write_text(const fs::path& path, const std::string& text) {
  return write_streamed(path, [&](const Emit& emit) { emit(text); });
}

fs::path temp_path(const fs::path& dir, const std::string& name) { return dir / (name + kBundleTempSuffix); }

// Produces dir/name through its temporary: write(tmp) writes and fsyncs the whole file, then it is
// renamed over name (atomic within the directory). On any failure the temporary is removed and
// name is left as it was.
template <class WriteFn>
Status write_atomic(const fs::path& dir, const std::string& name, std::vector<std::string>& written,
                    WriteFn write) {
  const fs::path tmp = temp_path(dir, name);
  Status st = write(tmp);
  if (st && ::rename(tmp.c_str(), (dir / name).c_str()) != 0) st = env_error("rename", tmp.string(), errno);
  if (!st) {
    std::error_code ec;
    fs::remove(tmp, ec);
    return st;
  }
  written.push_back(name);
  return ok_status();
}

// Makes the renames durable (a crash after the summary must not lose report.json's directory
// entry). Filesystems that cannot sync a directory (EINVAL) lose nothing by it.
Status sync_dir(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return env_error("open", dir.string(), errno);
  int err = ::fsync(fd) != 0 && errno != EINVAL ? errno : 0;
  ::close(fd);
  if (err != 0) return env_error("fsync", dir.string(), err);
  return ok_status();
}

// A previous bundle: only bundle files, and a report.json written by tandem. Anything else in the
// directory belongs to someone and is not ours to overwrite.
Status check_dir(const fs::path& dir, bool force) {
  std::error_code ec;
  auto st = fs::status(dir, ec);
  if (ec || !fs::exists(st)) {
    fs::create_directories(dir, ec);
    if (ec) return make_error(Errc::environment, "report", fmt::format("create directory {}: {}", dir.string(), ec.message()));
    return ok_status();
  }
  if (!fs::is_directory(st)) {
    return make_error(Errc::usage, "report", fmt::format("--out {}: exists and is not a directory", dir.string()));
  }
  if (force) return ok_status();
  std::vector<std::string> foreign;
  bool has_report = false;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    std::string name = e.path().filename().string();
    if (!is_bundle_file(name)) foreign.push_back(name);
    if (name == "report.json") has_report = true;
  }
  if (ec) return make_error(Errc::environment, "report", fmt::format("list {}: {}", dir.string(), ec.message()));
  if (foreign.empty() && !has_report) return ok_status();  // empty, or only a partial bundle of ours
  if (foreign.empty()) {
    std::ifstream in(dir / "report.json");
    auto j = nlohmann::json::parse(in, nullptr, false);
    if (!j.is_discarded() && j.is_object() && j.value("tool", "") == "tandem") return ok_status();
    return make_error(Errc::usage, "report",
                      fmt::format("--out {}: its report.json was not written by tandem; refusing to overwrite "
                                  "(use --force)", dir.string()));
  }
  return make_error(Errc::usage, "report",
                    fmt::format("--out {}: not empty and not a tandem bundle (contains {}{}); refusing to overwrite "
                                "(use --force or another directory)",
                                dir.string(), foreign.front(), foreign.size() > 1 ? fmt::format(" and {} more", foreign.size() - 1) : ""));
}

struct RecordIndex {
  std::unordered_map<std::uint32_t, std::size_t> by_id;
  explicit RecordIndex(const Correlation& c) {
    for (std::size_t i = 0; i < c.probes.size(); ++i) by_id.emplace(c.probes[i].id, i);
  }
};

bool is_icmp_error(const packet::Decoded& d) { return d.l4 == packet::L4::icmp && d.icmp.is_error; }

std::string comment_for(const Correlation& c, const RecordIndex& idx, bool server_side, std::uint32_t i,
                        const CaptureSide& side) {
  const auto& owner = server_side ? c.server_packet_probe : c.client_packet_probe;
  if (i >= owner.size() || owner[i] < 0) return "unmatched";
  auto it = idx.by_id.find(static_cast<std::uint32_t>(owner[i]));
  if (it == idx.by_id.end()) return "unmatched";
  const auto& p = c.probes[it->second];
  std::uint32_t probe_pkt = server_side ? p.server_probe : p.client_probe;
  std::string role;
  if (i == probe_pkt) {
    role = "probe";
  } else {
    // Replies, ICMP errors and retransmissions: the packet itself says which.
    auto pv = side.packets[i];
    auto d = packet::decode(static_cast<std::uint32_t>(side.linktype), pv.data, pv.origlen);
    if (is_icmp_error(d)) {
      role = "icmp";
    } else if (probe_pkt != correlate::kNoPacket && d.l3 == packet::L3::ip) {
      auto ppv = side.packets[probe_pkt];
      auto pd = packet::decode(static_cast<std::uint32_t>(side.linktype), ppv.data, ppv.origlen);
      role = pd.l3 == packet::L3::ip && pd.ip.src == d.ip.src ? "probe" : "reply";
    } else {
      std::uint32_t reply_pkt = server_side ? p.server_reply : p.client_reply;
      role = i == reply_pkt ? "reply" : (server_side ? "probe" : "reply");
    }
  }
  return fmt::format("probe {} {} {}", p.id, correlate::fate_name(p.fate), role);
}

// The side's capture counters as an Interface Statistics Block (omitted when unknown), stamped at
// `ts_ns` (the last packet; the statistics were taken after it).
pcapio::PcapngInterfaceStats side_stats(const CaptureSide& side, std::int64_t ts_ns) {
  pcapio::PcapngInterfaceStats s;
  s.ts_ns = ts_ns < 0 ? 0 : ts_ns;
  if (side.stats.available) {
    s.filter_accept = side.stats.received;
    s.os_drop = side.stats.dropped;
  } else if (!side.stats.unavailable_reason.empty()) {
    s.comment = "drops unknown: " + side.stats.unavailable_reason;
  }
  for (const auto& w : side.stats.warnings) s.comment += (s.comment.empty() ? "" : "; ") + w;
  s.user_delivered = side.packets.size();
  return s;
}

std::int64_t last_ts(const CaptureSide& side) {
  return side.packets.size() == 0 ? 0 : side.packets.index().back().ts_ns;
}

Status write_side(const fs::path& path, const char* name, const Correlation& c, const RecordIndex& idx,
                  bool server_side, const CaptureSide& side) {
  auto w = pcapio::PcapngWriter::create(path.string());
  if (!w) return w.error();
  auto fill = [&]() -> Status {
    if (!side.present) return ok_status();
    auto iface = w->add_interface({side.linktype, 0, name, std::string("tandem ") + name + " capture"});
    if (!iface) return iface.error();
    for (std::uint32_t i = 0; i < side.packets.size(); ++i) {
      if (auto st = w->write(*iface, side.packets[i], comment_for(c, idx, server_side, i, side)); !st) {
        if (st.error().code != Errc::usage) return st.error();
      }
    }
    return w->write_statistics(*iface, side_stats(side, last_ts(side)));
  };
  Status st = fill();
  // Closed after an error too: the writer's destructor would log the same error a second time.
  Status closed = w->close();
  return st ? closed : st;
}

// The IP packet inside a frame, wrapped in a synthetic Ethernet header (zero MACs, EtherType from
// the IP version) into `out`. Returns false when the frame has no IP layer.
bool as_ethernet(const CaptureSide& side, std::uint32_t i, std::vector<std::uint8_t>& out, std::uint32_t& origlen) {
  auto pv = side.packets[i];
  auto d = packet::decode(static_cast<std::uint32_t>(side.linktype), pv.data, pv.origlen);
  if (d.l3 != packet::L3::ip || d.ip.header.empty()) return false;
  auto off = static_cast<std::size_t>(d.ip.header.data() - pv.data.data());
  std::size_t len = pv.data.size() - off;
  std::size_t wire = pv.origlen > off ? pv.origlen - off : len;
  // Ethernet pads short frames to 60 bytes: keep only what the IP header says is the packet.
  if (d.ip.total_length != 0) {
    len = std::min<std::size_t>(len, d.ip.total_length);
    wire = std::min<std::size_t>(wire, d.ip.total_length);
  }
  out.assign(12, 0);
  out.push_back(d.ip.is_v4() ? 0x08 : 0x86);
  out.push_back(d.ip.is_v4() ? 0x00 : 0xdd);
  out.insert(out.end(), pv.data.begin() + static_cast<std::ptrdiff_t>(off),
             pv.data.begin() + static_cast<std::ptrdiff_t>(off + len));
  origlen = static_cast<std::uint32_t>(14 + std::max(wire, len));
  return true;
}

}  // namespace

bool is_bundle_file(const std::string& name) {
  for (const char* f : kBundleFiles) {
    if (name == f || name == std::string(f) + kBundleTempSuffix) return true;
  }
  // The per-agent captures of a run with several client or server agents: client1.pcapng, ...
  for (std::string role : {"client", "server"}) {
    if (!name.starts_with(role) || !name.ends_with(".pcapng")) continue;
    std::string digits = name.substr(role.size(), name.size() - role.size() - 7);
    if (!digits.empty() && digits.size() <= 3 && std::all_of(digits.begin(), digits.end(), [](char ch) { return ch >= '0' && ch <= '9'; }))
      return true;
  }
  return false;
}

std::string packet_comment(const Correlation& c, bool server_side, std::uint32_t index, const CaptureSide& side) {
  return comment_for(c, RecordIndex(c), server_side, index, side);
}

Result<MergeResult> write_merged(const std::string& path, const Correlation& c, const CaptureSide& client,
                                 const CaptureSide& server) {
  MergeResult res;
  bool same = !client.present || !server.present || client.linktype == server.linktype;
  int lt = client.present ? client.linktype : server.present ? server.linktype : pcapio::linktype::kEthernet;
  // libpcap (1.10) refuses a pcapng whose interfaces differ in link type, and also one with two
  // LINKTYPE_RAW interfaces (it compares the first one's DLT_RAW 12 with the next one's 101). So
  // frames are kept as captured only when both sides share a link type libpcap numbers the same
  // way; otherwise every frame is rewrapped in a synthetic Ethernet header.
  bool keep = same && pcapio::dlt_from_linktype(lt) == lt;
  res.linktype = keep ? lt : pcapio::linktype::kEthernet;

  struct Item {
    Nanos ts;
    bool server;
    std::uint32_t index;
  };
  std::vector<Item> items;
  items.reserve((client.present ? client.packets.size() : 0) + (server.present ? server.packets.size() : 0));
  if (client.present) {
    for (std::uint32_t i = 0; i < client.packets.size(); ++i) items.push_back({client.packets.index()[i].ts_ns, false, i});
  }
  if (server.present) {
    for (std::uint32_t i = 0; i < server.packets.size(); ++i) {
      items.push_back({server.packets.index()[i].ts_ns - c.clock.offset_ns, true, i});
    }
  }
  // Stable: equal timestamps keep client before server and each side's own capture order.
  std::stable_sort(items.begin(), items.end(), [](const Item& a, const Item& b) {
    if (a.ts != b.ts) return a.ts < b.ts;
    return !a.server && b.server;
  });

  auto w = pcapio::PcapngWriter::create(path);
  if (!w) return w.error();
  auto fill = [&]() -> Status {
    auto ci = w->add_interface({res.linktype, 0, "client", "client capture"});
    if (!ci) return ci.error();
    auto si = w->add_interface({res.linktype, 0, "server", "server capture, timestamps moved to the client clock"});
    if (!si) return si.error();
    RecordIndex idx(c);
    std::vector<std::uint8_t> scratch;
    for (const auto& it : items) {
      const CaptureSide& side = it.server ? server : client;
      pcapio::PacketView pv;
      if (keep) {
        pv = side.packets[it.index];
      } else {
        std::uint32_t origlen = 0;
        if (!as_ethernet(side, it.index, scratch, origlen)) {
          ++res.skipped_non_ip;
          continue;
        }
        pv = {0, origlen, scratch};
      }
      pv.ts_ns = it.ts < 0 ? 0 : it.ts;
      auto st = w->write(it.server ? *si : *ci, pv, comment_for(c, idx, it.server, it.index, side));
      if (!st) {
        if (st.error().code != Errc::usage) return st.error();
        continue;
      }
      ++res.written;
    }
    if (client.present) {
      if (auto st = w->write_statistics(*ci, side_stats(client, last_ts(client))); !st) return st.error();
    }
    if (server.present) {
      auto st = w->write_statistics(*si, side_stats(server, last_ts(server) - c.clock.offset_ns));
      if (!st) return st.error();
    }
    return ok_status();
  };
  Status st = fill();
  Status closed = w->close();  // after an error too (see write_side)
  if (!st) return st.error();
  if (!closed) return closed.error();
  return res;
}

Result<std::vector<std::string>> write_bundle(const std::string& dir, const Correlation& c, const Verdict& v,
                                              const ReportContext& ctx, const CaptureSide& client,
                                              const CaptureSide& server, const BundleOptions& options) {
  fs::path d(dir);
  if (auto st = check_dir(d, options.force); !st) return st.error();
  // A report.json next to files of another run would pass for one bundle: the previous report.json
  // goes first, before anything of this run is written, and the new one is renamed in last. With
  // --json-only the previous run's other files go too, and so do temporaries a killed run left.
  for (const char* f : kBundleFiles) {
    for (const fs::path& p : {d / f, temp_path(d, f)}) {
      if (!options.json_only && std::string(f) != "report.json" && p == d / f) continue;
      std::error_code ec;
      fs::remove(p, ec);
      if (ec) return make_error(Errc::environment, "report", fmt::format("remove {}: {}", p.string(), ec.message()));
    }
  }
  std::vector<std::string> written;
  if (!options.json_only) {
    RecordIndex idx(c);
    auto side = [&](const char* name, const char* iface, bool server_side, const CaptureSide& cap) {
      return write_atomic(d, name, written, [&](const fs::path& tmp) {
        return write_side(tmp, iface, c, idx, server_side, cap);
      });
    };
    if (auto st = side("client.pcapng", "client", false, client); !st) return st.error();
    if (auto st = side("server.pcapng", "server", true, server); !st) return st.error();
    auto merged = write_atomic(d, "merged.pcapng", written, [&](const fs::path& tmp) -> Status {
      auto m = write_merged(tmp.string(), c, client, server);
      if (!m) return m.error();
      return ok_status();
    });
    if (!merged) return merged.error();
    ReportContext md_ctx = ctx;
    md_ctx.client_capture = client.present ? &client : nullptr;
    md_ctx.server_capture = server.present ? &server : nullptr;
    auto md = write_atomic(d, "report.md", written,
                           [&](const fs::path& tmp) { return write_text(tmp, report_md(c, v, md_ctx)); });
    if (!md) return md.error();
    auto html = write_atomic(d, "report.html", written,
                             [&](const fs::path& tmp) { return write_text(tmp, report_html(c, v, md_ctx)); });
    if (!html) return html.error();
  }
  auto json = write_atomic(d, "report.json", written,
                           [&](const fs::path& tmp) {
                             return write_streamed(tmp, [&](const Emit& emit) { write_report_json(c, v, ctx, emit); });
                           });
  if (!json) return json.error();
  if (auto st = sync_dir(d); !st) return st.error();
  return written;
}

}  // namespace tandem::report
