// Subcommand registry: each cmd_<name>.cpp registers itself; main() builds the CLI from them.
#pragma once
#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

namespace c3::cli {

// `setup` adds one subcommand (its flags, each declared once with default and help) and its
// callback to the root app.
using CommandSetup = std::function<void(CLI::App& root)>;
int register_command(const std::string& name, CommandSetup setup);
std::vector<std::pair<std::string, CommandSetup>>& registry();

// The process's command line (for launchers that re-execute it).
std::vector<std::string>& raw_args();

}  // namespace c3::cli

#define C3_REGISTER_COMMAND(name, fn) \
  static const int c3_cmd_registered_##fn = ::c3::cli::register_command(name, fn)
