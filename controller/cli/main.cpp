// tandem: the controller CLI. Thin on purpose: parse, dispatch, map failures to exit codes.
#include <cstdio>
#include <exception>

#include "common/base/log.hpp"
#include "common/base/version.hpp"
#include "controller/cli/command.hpp"

namespace tandem::cli {
int report_error(const ::tandem::Error& err) {
  std::fprintf(stderr, "tandem: %s\n", err.text().c_str());
  return ::tandem::exit_code(err.code);
}
}  // namespace tandem::cli

int main(int argc, char** argv) {
  using namespace tandem::cli;
  CommandContext ctx;
  CLI::App app{"tandem - two-ended distributed trace coordinator.\n"
               "Pinpoints where TCP probes die on a path and which option triggers it.",
               "tandem"};
  app.set_version_flag("--version", std::string("tandem ") + tandem::kVersion);
  app.add_flag("-v,--verbose", ctx.verbosity, "More logging on stderr (repeat for more)");
  app.require_subcommand(1);
  app.fallthrough();
  app.parse_complete_callback([&] { tandem::log::set_verbosity(ctx.verbosity); });

  register_ping(app, ctx);
  register_lab(app, ctx);
  register_demo(app, ctx);
  register_keygen(app, ctx);
  register_trace(app, ctx);
  register_analyze(app, ctx);
  register_bisect(app, ctx);
  register_agent_status(app, ctx);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 1;  // usage errors are exit 1 (DESIGN.md §3)
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tandem: internal error: %s\n", e.what());
    return 3;
  }
  return ctx.exit_code;
}
