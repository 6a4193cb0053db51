// Placeholder registration; replaced by the real demo command.
#include "controller/cli/command.hpp"

namespace tandem::cli {
void register_demo(CLI::App& app, CommandContext& ctx) {
  auto* sub = app.add_subcommand("demo", "(not built yet)");
  sub->callback([&ctx] {
    std::fprintf(stderr, "tandem: demo is not built yet\n");
    ctx.exit_code = 1;
  });
}
}  // namespace tandem::cli
