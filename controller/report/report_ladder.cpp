// The ladder diagram of report.html: one probe's life as arrows between three lanes, client | path |
// server, like Wireshark's flow graph but with what only two captures can show: where the packet
// died, and which fields the path changed (drawn on the arrow of the direction they changed in).
// Rows are in event order, not to time scale (a 30 µs LAN hop and a 300 ms satellite hop must both
// stay readable); the times are written beside each event instead.
#include <cmath>

#include <fmt/format.h>

#include "controller/report/report_html.hpp"

namespace tandem::report {
namespace {

using correlate::Fate;
using correlate::ProbeRecord;

constexpr int kWidth = 700;
constexpr int kClientX = 120, kPathX = 310, kServerX = 500;
constexpr int kTop = 44, kProbeY = 64, kServerRxY = 112, kServerTxY = 148, kClientRxY = 196, kHeight = 224;

std::string num(double v) { return fmt::format("{:.1f}", v); }

// A line with a filled arrowhead at (x2, y2); no <marker> so that no id can collide between the
// many SVGs of one page.
std::string arrow(const char* cls, double x1, double y1, double x2, double y2, bool dashed) {
  const double dx = x2 - x1, dy = y2 - y1, len = std::hypot(dx, dy);
  const double ux = len > 0 ? dx / len : 1, uy = len > 0 ? dy / len : 0;
  const double bx = x2 - 10 * ux, by = y2 - 10 * uy;  // base of the head
  const double px = -uy * 4.5, py = ux * 4.5;
  return fmt::format(
      "<g class=\"arrow {}\"><line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"{}/>"
      "<polygon points=\"{},{} {},{} {},{}\"/></g>",
      cls, num(x1), num(y1), num(bx), num(by), dashed ? " stroke-dasharray=\"6 4\"" : "", num(x2), num(y2),
      num(bx + px), num(by + py), num(bx - px), num(by - py));
}

std::string cross(double x, double y) {
  return fmt::format("<g class=\"loss\"><line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"/>"
                     "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"/></g>",
                     x - 7, y - 7, x + 7, y + 7, x - 7, y + 7, x + 7, y - 7);
}

std::string text(double x, double y, const std::string& anchor, const std::string& cls, const std::string& body) {
  return fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"{}\" class=\"{}\">{}</text>", num(x), num(y), anchor, cls,
                     html_escape(body));
}

std::string value_short(const nlohmann::json& j) {
  if (j.is_null()) return "absent";
  if (j.is_string()) return j.get<std::string>();
  if (j.is_boolean()) return j.get<bool>() ? "set" : "clear";
  return j.dump();
}

// "tcp.option.wscale 7 → absent; ip.dscp 46 → 0" for one direction.
std::string changes_text(const ProbeRecord& p, correlate::Direction d) {
  std::string s;
  for (const auto& ch : p.changes) {
    if (ch.direction != d) continue;
    std::string field = ch.field.rfind("tcp.option.", 0) == 0 ? ch.field.substr(11) : ch.field;
    s += fmt::format("{}{} {} → {}", s.empty() ? "" : "; ", field, value_short(ch.sent), value_short(ch.received));
  }
  if (s.size() > 70) s = s.substr(0, 67) + "…";
  return s;
}

std::string frame(const char* file, std::uint32_t idx) {
  return idx == correlate::kNoPacket ? std::string() : fmt::format("{} #{}", file, idx + 1);
}

// Time of a server-side event relative to the probe leaving the client, on the client's clock when
// the offset is known; else the server's own clock gives only differences on that end.
std::string server_time(const ProbeRecord& p, Nanos ts, const Correlation& c) {
  if (ts == 0) return "";
  const bool clock = !c.clock.source.empty() && c.clock.source != "none";
  if (clock && p.client_tx_ns) {
    return fmt::format("+{:.1f} µs (±{:.1f})", static_cast<double>(ts - c.clock.offset_ns - p.client_tx_ns) / 1e3,
                       static_cast<double>(c.clock.error_ns) / 1e3);
  }
  if (p.server_rx_ns && ts != p.server_rx_ns) {
    return fmt::format("+{:.1f} µs after arrival", static_cast<double>(ts - p.server_rx_ns) / 1e3);
  }
  return "server clock";
}

}  // namespace

std::string ladder_svg(const ProbeRecord& p, const Correlation& c, const ReportContext& ctx) {
  const std::string fate(correlate::fate_name(p.fate));
  std::string s = fmt::format(
      "<svg class=\"ladder\" data-fate=\"{}\" data-probe=\"{}\" viewBox=\"0 0 {} {}\" role=\"img\" "
      "aria-label=\"probe {} ({})\" xmlns=\"http://www.w3.org/2000/svg\">",
      fate, p.id, kWidth, kHeight, p.id, fate);
  // Lanes.
  s += text(kClientX, 18, "middle", "lane", ctx.client ? "client " + ctx.client->to_string() : "client");
  s += text(kPathX, 18, "middle", "lane", "path");
  s += text(kServerX, 18, "middle", "lane", ctx.server ? "server " + ctx.server->to_string() : "server");
  for (int x : {kClientX, kServerX}) {
    s += fmt::format("<line class=\"lane-line\" x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"/>", x, kTop - 14, x, kHeight - 8);
  }
  s += fmt::format("<line class=\"path-line\" x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"/>", kPathX, kTop - 14, kPathX,
                   kHeight - 8);

  const bool at_client = p.client_probe != correlate::kNoPacket || p.client_tx_ns != 0;
  const bool at_server = p.server_probe != correlate::kNoPacket;
  const std::string probe_label = fmt::format("probe {} sport {}", p.id, p.sport);
  const std::string fwd = changes_text(p, correlate::Direction::forward);
  const std::string rev = changes_text(p, correlate::Direction::reverse);

  // The client's send, left of the client lane.
  if (at_client) {
    s += text(kClientX - 8, kProbeY - 4, "end", "time", "t = 0");
    s += text(kClientX - 8, kProbeY + 10, "end", "frame", frame("client.pcapng", p.client_probe));
  }
  // The probe's arrow: to the server if it got there, else into the path.
  if (p.fate == Fate::not_sent) {
    s += text(kClientX + 8, kProbeY + 4, "start", "note", "not in the client's own capture: never left");
  } else if (at_server) {
    s += arrow("probe", kClientX, kProbeY, kServerX, kServerRxY, false);
    s += text(kServerX + 8, kServerRxY - 4, "start", "time", server_time(p, p.server_rx_ns, c));
    s += text(kServerX + 8, kServerRxY + 10, "start", "frame", frame("server.pcapng", p.server_probe));
  } else if (p.fate == Fate::unknown) {
    s += arrow("probe", kClientX, kProbeY, kPathX, (kProbeY + kServerRxY) / 2.0, true);
    s += text(kPathX + 10, (kProbeY + kServerRxY) / 2.0 + 4, "start", "note", "? " + p.note);
  } else {
    // lost_forward, icmp_error and injected-without-server-copy all end on the path.
    const double y = (kProbeY + kServerRxY) / 2.0;
    s += arrow("probe", kClientX, kProbeY, kPathX - 4, y, false);
    if (p.fate == Fate::lost_forward) {
      s += cross(kPathX, y);
      s += text(kPathX + 12, y + 4, "start", "note", "lost: never in the server's capture");
    }
  }
  if (p.fate != Fate::not_sent) {
    s += text((kClientX + kPathX) / 2.0 - 20, kProbeY - 8, "middle", "label", probe_label);
  }
  if (!fwd.empty()) s += text((kClientX + kServerX) / 2.0, kServerRxY - 2, "middle", "change", fwd);

  // The way back.
  const double reply_y0 = kServerTxY;
  switch (p.fate) {
    case Fate::answered:
      s += arrow("reply", kServerX, reply_y0, kClientX, kClientRxY, false);
      break;
    case Fate::reply_lost: {
      const double y = (reply_y0 + kClientRxY) / 2.0;
      s += arrow("reply", kServerX, reply_y0, kPathX + 4, y, false);
      s += cross(kPathX, y);
      s += text(kPathX - 12, y + 4, "end", "note", "reply lost: never in the client's capture");
      break;
    }
    case Fate::unanswered:
      s += text(kServerX - 8, reply_y0 + 4, "end", "note", "the server sent nothing back");
      break;
    case Fate::injected:
      s += arrow("reply injected", kPathX, reply_y0, kClientX, kClientRxY, true);
      s += text(kPathX + 8, reply_y0 + 4, "start", "note",
                "not sent by the server" + (p.hop ? " (from " + p.hop->to_string() + ")" : std::string()));
      break;
    case Fate::icmp_error:
      s += arrow("icmp", kPathX, reply_y0, kClientX, kClientRxY, false);
      s += text(kPathX + 8, reply_y0 + 4, "start", "note",
                p.reply + (p.hop ? " from " + p.hop->to_string() : std::string()));
      break;
    default: break;
  }
  if (p.server_reply != correlate::kNoPacket) {
    s += text(kServerX + 8, reply_y0 - 4, "start", "time", server_time(p, p.server_tx_ns, c));
    s += text(kServerX + 8, reply_y0 + 10, "start", "frame", frame("server.pcapng", p.server_reply));
  }
  if (p.client_reply != correlate::kNoPacket) {
    s += text(kClientX - 8, kClientRxY - 4, "end", "time",
              p.rtt_us ? fmt::format("+{} µs", *p.rtt_us) : std::string("reply"));
    s += text(kClientX - 8, kClientRxY + 10, "end", "frame", frame("client.pcapng", p.client_reply));
  }
  if (!p.reply.empty() && p.fate != Fate::icmp_error) {
    s += text((kPathX + kServerX) / 2.0 + 20, reply_y0 + 2, "middle", "label", p.reply);
  }
  if (!rev.empty()) s += text((kClientX + kServerX) / 2.0, kClientRxY - 10, "middle", "change", rev);
  s += "</svg>";
  return s;
}

}  // namespace tandem::report
