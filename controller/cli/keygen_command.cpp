// `tandem keygen --out PREFIX [--force]`: a CurveZMQ key pair for a controller or an agent.
// Writes PREFIX.key (secret, created O_EXCL with mode 0600) and PREFIX.pub (public, one Z85 line
// to hand to the other side's operator). Exit codes: 0 written, 1 refused (exists, no --force) or
// bad usage, 2 environment (no CURVE in libzmq, cannot write).
#include <cstdio>
#include <string>

#include "common/transport/curve.hpp"
#include "controller/cli/command.hpp"

namespace tandem::cli {

void register_keygen(CLI::App& app, CommandContext& ctx) {
  struct Options {
    std::string prefix;
    bool force = false;
  };
  auto opt = std::make_shared<Options>();
  auto* sub = app.add_subcommand("keygen", "Create a CurveZMQ key pair: PREFIX.key (secret, 0600) and PREFIX.pub");
  sub->add_option("-o,--out", opt->prefix, "Path prefix of the two files")->required();
  sub->add_flag("-f,--force", opt->force, "Replace existing PREFIX.key / PREFIX.pub");
  sub->callback([opt, &ctx] {
    auto kp = transport::CurveKeypair::generate();
    if (!kp) {
      ctx.exit_code = report_error(kp.error());
      return;
    }
    if (auto st = transport::save_keypair(*kp, opt->prefix, opt->force); !st) {
      ctx.exit_code = report_error(st.error());
      return;
    }
    std::printf("secret key: %s.key (mode 0600, keep it private)\n", opt->prefix.c_str());
    std::printf("public key: %s.pub\n%s\n", opt->prefix.c_str(), kp->public_z85.c_str());
    ctx.exit_code = 0;
  });
}

}  // namespace tandem::cli
