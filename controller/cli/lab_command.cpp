// Placeholder registration; replaced by the real lab command.
#include "controller/cli/command.hpp"

namespace tandem::cli {
void register_lab(CLI::App& app, CommandContext& ctx) {
  auto* sub = app.add_subcommand("lab", "(not built yet)");
  sub->callback([&ctx] {
    std::fprintf(stderr, "tandem: lab is not built yet\n");
    ctx.exit_code = 1;
  });
}
}  // namespace tandem::cli
