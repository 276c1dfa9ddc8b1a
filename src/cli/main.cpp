// c3: the command-line tool. Each subcommand lives in cmd_<name>.cpp.
#include "io/torch_compat.h"
#include <algorithm>
#include <cstdio>
#include <exception>

#include <c10/util/Exception.h>

#include "cli/command.h"
#include "util/error.h"

namespace c3::cli {

std::vector<std::pair<std::string, CommandSetup>>& registry() {
  static std::vector<std::pair<std::string, CommandSetup>> r;
  return r;
}

std::vector<std::string>& raw_args() {
  static std::vector<std::string> a;
  return a;
}

int register_command(const std::string& name, CommandSetup setup) {
  registry().emplace_back(name, std::move(setup));
  return 0;
}

}  // namespace c3::cli

int main(int argc, char** argv) {
  c3::cli::raw_args().assign(argv, argv + argc);
  c3::compat::prefer_flash_attention();
  CLI::App app{"c3: Context Cascade Compression. Compress long text into a few latent vectors "
               "with a small LLM and regenerate it with a larger one."};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Print the full usage of every subcommand");
  auto& reg = c3::cli::registry();
  std::sort(reg.begin(), reg.end(), [](auto& a, auto& b) { return a.first < b.first; });
  for (auto& [name, setup] : reg) setup(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const c3::Error& e) {
    std::fprintf(stderr, "c3: error: %s\n", e.what());
    return 1;
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "c3: error: %s\n", e.what_without_backtrace());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "c3: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
