// c3 qwen2 init: a random-weight HF Qwen2 folder (config.json + model.safetensors, and the
// tokenizer's files) from a config, to stand in for a pretrained checkpoint where none can be had.
#include <cstdio>
#include <filesystem>

#include "cli/cli_common.h"
#include "cli/command.h"
#include "model/qwen2_model.h"
#include "tokenizer/tokenizer_files.h"
#include "util/error.h"
#include "util/remove_tree.h"

namespace c3::cli {
namespace {
namespace fs = std::filesystem;

struct InitOptions {
  std::string config;      // Qwen2 config.json with the dims
  std::string out;         // folder to create
  std::string tokenizer;   // optional: its files are copied in, and it must fit the vocabulary
  int64_t vocab_size = 0;  // 0: the config's
  uint64_t seed = 0;
  double std = 0.02;  // HF's initializer_range
  std::string dtype = "f32";
};

void run_init(const InitOptions& o) {
  C3_CHECK(!fs::exists(o.out) || fs::is_empty(o.out),
           "--out '{}' exists and is not empty; c3 qwen2 init writes a new folder only", o.out);
  model::Qwen2Config cfg = model::Qwen2Config::from_file(o.config);
  if (o.vocab_size > 0) cfg.vocab_size = o.vocab_size;
  if (!o.tokenizer.empty()) {
    const tokenizer::BpeTokenizer tok = tokenizer::load_tokenizer(o.tokenizer);
    C3_CHECK(tok.vocab_size() <= cfg.vocab_size,
             "{} has {} tokens but the model would have vocab_size {} (from {}{}): its "
             "embeddings could not hold ids up to {}. Pass --vocab-size {} or more.",
             tok.origin(), tok.vocab_size(), cfg.vocab_size, o.config,
             o.vocab_size > 0 ? ", overridden by --vocab-size" : "", tok.vocab_size() - 1,
             tok.vocab_size());
  }
  torch::manual_seed(o.seed);
  model::Qwen2ForCausalLM m(cfg);
  model::init_weights(*m, o.std);
  // Written into a temporary sibling and renamed: a folder is either whole or absent.
  const fs::path out(o.out), tmp = out.string() + ".tmp-qwen2-init";
  c3::remove_tree(tmp);
  model::save_qwen2(m, tmp.string(), parse_dtype(o.dtype, at::kCPU));
  if (!o.tokenizer.empty())
    tokenizer::copy_tokenizer_files(tokenizer::find_tokenizer(o.tokenizer, /*quiet=*/true),
                                    tmp.string());
  if (fs::exists(out)) fs::remove(out);  // empty, checked above
  fs::rename(tmp, out);
  std::printf(
      "%s: Qwen2ForCausalLM, %lld parameters (hidden %lld, %lld layers, vocab %lld%s), "
      "random normal(0, %g), seed %llu, %s\n",
      o.out.c_str(), static_cast<long long>(cfg.n_params()),
      static_cast<long long>(cfg.hidden_size), static_cast<long long>(cfg.num_hidden_layers),
      static_cast<long long>(cfg.vocab_size), cfg.tie_word_embeddings ? ", tied" : "", o.std,
      static_cast<unsigned long long>(o.seed), o.dtype.c_str());
}

void setup_qwen2(CLI::App& root) {
  auto* cmd = root.add_subcommand("qwen2", "Plain Qwen2 (HF layout) model folders");
  cmd->require_subcommand(1);
  static InitOptions o;
  auto* init = cmd->add_subcommand(
      "init",
      "Write a Qwen2ForCausalLM folder with random weights (HF's init: normal(0, std), "
      "zero biases, unit norms) from a config.json: a stand-in for a pretrained model");
  init->add_option("--config", o.config,
                   "Qwen2 config.json with the dims (e.g. configs/tiny-encoder.json)")
      ->required();
  init->add_option("--out", o.out, "folder to create (must not exist, or be empty)")->required();
  init->add_option(
      "--tokenizer", o.tokenizer,
      "tokenizer.json or qwen.tiktoken to copy into the folder; must fit the vocabulary");
  init->add_option("--vocab-size", o.vocab_size, "embedding rows (0 = the config's)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  init->add_option("--seed", o.seed, "seed of the random weights")->capture_default_str();
  init->add_option("--std", o.std, "standard deviation of the weights")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  init->add_option("--dtype", o.dtype, "f32 | bf16 for the saved weights")->capture_default_str();
  init->callback([] { run_init(o); });
}

}  // namespace

C3_REGISTER_COMMAND("qwen2", setup_qwen2);

}  // namespace c3::cli
