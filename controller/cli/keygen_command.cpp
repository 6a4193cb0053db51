// Placeholder registration; replaced by the real keygen command.
#include "controller/cli/command.hpp"

namespace tandem::cli {
void register_keygen(CLI::App& app, CommandContext& ctx) {
  auto* sub = app.add_subcommand("keygen", "(not built yet)");
  sub->callback([&ctx] {
    std::fprintf(stderr, "tandem: keygen is not built yet\n");
    ctx.exit_code = 1;
  });
}
}  // namespace tandem::cli
