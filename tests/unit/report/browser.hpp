// A real browser for report.html tests: Debian's chromium, headless. render() loads a copy of the
// page with a probe script appended that measures the laid-out page (not the HTML source) and
// writes what it found into <body data-probe='{...}'>; chromium --dump-dom then prints the DOM
// after layout. The script lives only in the test's copy: report.html itself has no script.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

namespace tandem::testing {

inline std::optional<std::string> chromium_binary() {
  for (const char* c : {"/usr/bin/chromium", "/usr/bin/chromium-browser"}) {
    if (::access(c, X_OK) == 0) return std::string(c);
  }
  return std::nullopt;
}

inline std::string run_capture(const std::string& cmd, int* code = nullptr) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return out;
  std::array<char, 4096> buf{};
  std::size_t n = 0;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  int st = ::pclose(p);
  if (code) *code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return out;
}

// What the page looks like after layout at a given window width.
struct Rendered {
  std::string dom;     // the DOM chromium serialised after loading (--dump-dom)
  nlohmann::json probe;  // the measurements (see kProbeScript); null if the page did not load
  std::string error;
};

// Measured in the browser: the verdict text as laid out, every ladder with its fate, drawn size and
// arrow count, tables with their row counts, and whether anything sticks out of the window
// horizontally (a narrow window must not need sideways scrolling of the page itself).
inline constexpr const char* kProbeScript = R"js(
<script>
addEventListener('load', () => {
  const r = {};
  const v = document.querySelector('#verdict .verdict-text');
  r.verdict = v ? v.innerText : null;
  r.verdict_height = v ? v.getBoundingClientRect().height : 0;
  r.ladders = [...document.querySelectorAll('svg.ladder')].map(s => {
    const b = s.getBoundingClientRect();
    return {fate: s.dataset.fate, probe: s.dataset.probe, width: b.width, height: b.height,
            arrows: s.querySelectorAll('.arrow').length, losses: s.querySelectorAll('.loss').length,
            texts: [...s.querySelectorAll('text')].map(t => t.textContent)};
  });
  r.tables = {};
  for (const t of document.querySelectorAll('table[id]')) r.tables[t.id] = t.tBodies[0] ? t.tBodies[0].rows.length : 0;
  r.page_width = document.documentElement.scrollWidth;
  r.window_width = window.innerWidth;
  r.external = [...document.querySelectorAll('[src],link[href]')].length;
  document.body.setAttribute('data-probe', JSON.stringify(r));
});
</script>
)js";

inline Rendered render(const std::filesystem::path& html, int width, const std::filesystem::path& scratch) {
  Rendered out;
  auto bin = chromium_binary();
  if (!bin) {
    out.error = "chromium not installed";
    return out;
  }
  std::ifstream in(html);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string page = ss.str();
  auto end = page.rfind("</body>");
  if (end == std::string::npos) {
    out.error = "no </body> in " + html.string();
    return out;
  }
  page.insert(end, kProbeScript);
  const auto copy = scratch / "probe.html";
  std::ofstream(copy) << page;
  // A private profile: no state shared with (or left for) anyone else's chromium.
  const std::string cmd = *bin + " --headless --no-sandbox --disable-gpu --disable-extensions --no-first-run "
                          "--user-data-dir=" + (scratch / "profile").string() +
                          " --window-size=" + std::to_string(width) + ",900 --virtual-time-budget=2000 --dump-dom file://" +
                          copy.string() + " 2>/dev/null";
  int code = 0;
  out.dom = run_capture(cmd, &code);
  const std::string key = "data-probe=\"";
  auto pos = out.dom.find(key);
  if (code != 0 || pos == std::string::npos) {
    out.error = "chromium exit " + std::to_string(code) + ", no data-probe in the DOM";
    return out;
  }
  auto close = out.dom.find('"', pos + key.size());
  std::string attr = out.dom.substr(pos + key.size(), close - pos - key.size());
  // Undo the attribute escaping of the serialiser.
  std::string text;
  for (std::size_t i = 0; i < attr.size(); ++i) {
    if (attr.compare(i, 6, "&quot;") == 0) { text += '"'; i += 5; }
    else if (attr.compare(i, 5, "&amp;") == 0) { text += '&'; i += 4; }
    else if (attr.compare(i, 4, "&lt;") == 0) { text += '<'; i += 3; }
    else if (attr.compare(i, 4, "&gt;") == 0) { text += '>'; i += 3; }
    else if (attr.compare(i, 6, "&nbsp;") == 0) { text += ' '; i += 5; }
    else text += attr[i];
  }
  out.probe = nlohmann::json::parse(text, nullptr, false);
  if (out.probe.is_discarded()) out.error = "data-probe is not JSON: " + text.substr(0, 200);
  return out;
}

// A PNG screenshot of the page itself (no probe script), `width` px wide. Returns the exit code.
inline int screenshot(const std::filesystem::path& html, const std::filesystem::path& png, int width, int height,
                      const std::filesystem::path& scratch) {
  auto bin = chromium_binary();
  if (!bin) return -1;
  int code = 0;
  run_capture(*bin + " --headless --no-sandbox --disable-gpu --hide-scrollbars --no-first-run --user-data-dir=" +
                  (scratch / "profile-shot").string() + " --window-size=" + std::to_string(width) + "," +
                  std::to_string(height) + " --screenshot=" + png.string() + " file://" + html.string() +
                  " >/dev/null 2>&1",
              &code);
  return code;
}

}  // namespace tandem::testing
