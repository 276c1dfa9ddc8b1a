// A cascade's checkpoint files in save_c3's layout, weights sharded as HF does (see model_files.h).
#include "train/model_files.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "util/atomic_file.h"

namespace c3::train {
namespace {

CheckpointFile json_file(const std::string& name, const nlohmann::json& j) {
  CheckpointFile f;
  f.name = name;
  f.text = j.dump(2) + "\n";  // as io::save_json writes it
  return f;
}

// One module's parameters as model.safetensors, or as shards of at most max_bytes (a larger
// tensor gets a shard of its own) with their index, in `folder` ("" or "llm1/").
void add_weights(std::vector<CheckpointFile>& out, const torch::nn::Module& module,
                 const std::string& folder, at::ScalarType dtype, int64_t max_bytes) {
  std::vector<std::vector<CheckpointFile::Tensor>> shards(1);
  int64_t shard_bytes = 0, total = 0;
  for (const auto& p : module.named_parameters(/*recurse=*/true)) {
    const at::Tensor t = host_copy(p.value().detach().to(dtype));
    const int64_t n = static_cast<int64_t>(t.nbytes());
    if (shard_bytes > 0 && shard_bytes + n > max_bytes) {
      shards.emplace_back();
      shard_bytes = 0;
    }
    shards.back().push_back({p.key(), dtype, t.sizes().vec(), {t}});
    shard_bytes += n;
    total += n;
  }
  const std::map<std::string, std::string> meta = {{"format", "pt"}};
  if (shards.size() == 1) {
    out.push_back({folder + "model.safetensors", std::move(shards[0]), meta, ""});
    return;
  }
  nlohmann::json weight_map = nlohmann::json::object();
  for (size_t i = 0; i < shards.size(); ++i) {
    const std::string name = fmt::format("model-{:05d}-of-{:05d}.safetensors", i + 1, shards.size());
    for (const auto& t : shards[i]) weight_map[t.name] = name;
    out.push_back({folder + name, std::move(shards[i]), meta, ""});
  }
  out.push_back(json_file(folder + "model.safetensors.index.json",
                          {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}}));
}

}  // namespace

std::vector<CheckpointFile> model_files(cascade::C3Model& m, const std::string& tokenizer_json,
                                        at::ScalarType dtype, int64_t max_shard_bytes) {
  std::vector<CheckpointFile> out;
  out.push_back(json_file("config.json", m->config.decoder_json()));
  out.push_back(json_file("generation_config.json",
                          {{"eos_token_id", m->im_end_id()}, {"transformers_version", "5.17.0"}}));
  add_weights(out, *m->decoder, "", dtype, max_shard_bytes);
  out.push_back(json_file("llm1/config.json", m->config.encoder.to_json()));
  add_weights(out, *m->encoder, "llm1/", dtype, max_shard_bytes);
  CheckpointFile tok;
  tok.name = "tokenizer.json";
  tok.text = read_file(tokenizer_json);
  out.push_back(std::move(tok));
  return out;
}

}  // namespace c3::train
