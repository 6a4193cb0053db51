// Placeholder registration; replaced by the real ping command.
#include "controller/cli/command.hpp"

namespace tandem::cli {
void register_ping(CLI::App& app, CommandContext& ctx) {
  auto* sub = app.add_subcommand("ping", "(not built yet)");
  sub->callback([&ctx] {
    std::fprintf(stderr, "tandem: ping is not built yet\n");
    ctx.exit_code = 1;
  });
}
}  // namespace tandem::cli
