// `c3 generate`: continue a prompt of token ids with a Qwen2 checkpoint; prints the new ids as JSON.
#include <charconv>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "cli/cli_common.h"
#include "cli/command.h"
#include "model/generate.h"
#include "model/qwen2_model.h"
#include "util/error.h"

namespace c3::cli {
namespace {

struct GenerateOptions {
  std::string model;           // HF Qwen2 folder: config.json + model.safetensors (or shards)
  std::string ids;             // the prompt: comma-separated token ids
  int64_t max_new_tokens = 64;
  int64_t no_repeat_ngram = 0;  // HF no_repeat_ngram_size over prompt + generated ids; 0 = off
  std::string device = "cpu";
  std::string dtype = "auto";  // f32 | bf16 | auto (bf16 on CUDA, f32 on CPU)
  double temperature = 0.0;    // 0 = greedy
  int64_t top_k = 0;
  double top_p = 1.0;
  uint64_t seed = 0;
};

// "1, 2,3" -> {1, 2, 3}; anything that is not an integer is an error naming it.
std::vector<int64_t> parse_ids(const std::string& s) {
  std::vector<int64_t> ids;
  size_t start = 0;
  while (start <= s.size()) {
    size_t end = s.find(',', start);
    if (end == std::string::npos) end = s.size();
    std::string tok = s.substr(start, end - start);
    tok.erase(0, tok.find_first_not_of(" \t"));
    tok.erase(tok.find_last_not_of(" \t") + 1);
    if (tok.empty() && s.find_first_not_of(" \t,") == std::string::npos) break;
    int64_t v = 0;
    const auto [ptr, ec] = std::from_chars(tok.data(), tok.data() + tok.size(), v);
    C3_CHECK(ec == std::errc() && ptr == tok.data() + tok.size() && !tok.empty(),
             "--ids: '{}' is not an integer token id (expected e.g. --ids 1,2,3)", tok);
    ids.push_back(v);
    start = end + 1;
  }
  C3_CHECK(!ids.empty(), "--ids is empty: give the prompt as comma-separated token ids, e.g. "
           "--ids 1,2,3");
  return ids;
}

void run(const GenerateOptions& o) {
  const std::vector<int64_t> ids = parse_ids(o.ids);
  const at::Device device = parse_device(o.device);
  const at::ScalarType dtype = parse_dtype(o.dtype, device);
  auto model = model::load_qwen2(o.model, dtype, device);

  model::GenerationConfig cfg;
  cfg.max_new_tokens = o.max_new_tokens;
  cfg.no_repeat_ngram_size = o.no_repeat_ngram;
  cfg.stop_tokens = model::read_stop_tokens(o.model, model->config());
  cfg.temperature = o.temperature;
  cfg.top_k = o.top_k;
  cfg.top_p = o.top_p;
  cfg.seed = o.seed;
  const auto out = model::generate(model, {{ids, {}}}, cfg);
  std::printf("%s\n", nlohmann::json(out[0]).dump().c_str());
}

void setup_generate(CLI::App& root) {
  auto o = std::make_shared<GenerateOptions>();
  CLI::App* cmd = root.add_subcommand(
      "generate", "Continue a prompt of token ids with a Qwen2 checkpoint; print the new ids as a "
                  "JSON array (stops at the checkpoint's eos tokens)");
  cmd->add_option("--model", o->model, "HF Qwen2 folder (config.json + safetensors)")->required();
  cmd->add_option("--ids", o->ids, "Prompt token ids, comma-separated, e.g. 1,2,3")->required();
  cmd->add_option("--max-new-tokens", o->max_new_tokens, "Most tokens to generate")
      ->capture_default_str();
  cmd->add_option("--no-repeat-ngram", o->no_repeat_ngram,
                  "Ban any n-gram of this size from repeating (HF semantics); 0 = off")
      ->capture_default_str();
  cmd->add_option("--device", o->device, "cpu | cuda | cuda:N")->capture_default_str();
  cmd->add_option("--dtype", o->dtype, "f32 | bf16 | auto (bf16 on CUDA, f32 on CPU)")
      ->capture_default_str();
  cmd->add_option("--temperature", o->temperature, "Sampling temperature; 0 = greedy")
      ->capture_default_str();
  cmd->add_option("--top-k", o->top_k, "Keep the k most likely tokens; 0 = off")
      ->capture_default_str();
  cmd->add_option("--top-p", o->top_p, "Keep the most likely tokens up to this mass; 1 = off")
      ->capture_default_str();
  cmd->add_option("--seed", o->seed, "Sampling seed")->capture_default_str();
  cmd->callback([o] { run(*o); });
}

}  // namespace

C3_REGISTER_COMMAND("generate", setup_generate);

}  // namespace c3::cli
