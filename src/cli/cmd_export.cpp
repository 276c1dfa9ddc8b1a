// c3 export: rewrite a c3 checkpoint (e.g. a training step) as a release folder in another dtype;
// the tokenizer files go along as they are (tokenizer.json and/or qwen.tiktoken + companions).
#include "c3/c3_model.h"
#include "cli/cli_common.h"
#include "cli/command.h"

namespace c3::cli {
namespace {

void setup_export(CLI::App& root) {
  auto* app = root.add_subcommand("export", "Write a c3 checkpoint as a release folder (bf16 by default)");
  static std::string in, out, dtype = "bf16";
  app->add_option("--model", in, "c3 checkpoint folder")->required();
  app->add_option("--out", out, "folder to write (official C3 layout)")->required();
  app->add_option("--dtype", dtype, "f32 | bf16 for the saved weights")->capture_default_str();
  app->callback([]() {
    cascade::LoadedC3 m = cascade::load_c3(in, at::kFloat, at::kCPU);
    cascade::save_c3(m.model, in, out, parse_dtype(dtype, at::kCPU));
    std::printf("%s -> %s (%s), fingerprint %s\n", in.c_str(), out.c_str(), dtype.c_str(),
                cascade::fingerprint_c3(out).c_str());
  });
}

}  // namespace

C3_REGISTER_COMMAND("export", setup_export);

}  // namespace c3::cli
