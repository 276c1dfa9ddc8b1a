// A cascade's checkpoint files in save_c3's layout, weights sharded as HF does (see model_files.h).
#include "train/model_files.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "tokenizer/tokenizer_files.h"
#include "util/atomic_file.h"

namespace c3::train {
namespace {

CheckpointFile json_file(const std::string& name, const nlohmann::json& j) {
  CheckpointFile f;
  f.name = name;
  f.text = j.dump(2) + "\n";  // as io::save_json writes it
  return f;
}

// A module's weight files, planned first and copied after: model.safetensors, or shards of at
// most max_bytes (a larger tensor gets a shard of its own) and their index, in `folder` ("" or
// "llm1/"). Weight file number `next` (counted over both modules) goes to writer next % writers;
// only this writer's are copied. The index is writer 0's.
void add_weights(std::vector<CheckpointFile>& out, const torch::nn::Module& module,
                 const std::string& folder, at::ScalarType dtype, int64_t max_bytes, int writer,
                 int writers, int& next) {
  const auto params = module.named_parameters(/*recurse=*/true);
  std::vector<std::vector<size_t>> shards(1);
  int64_t shard_bytes = 0, total = 0;
  const int64_t elem = static_cast<int64_t>(c10::elementSize(dtype));
  for (size_t i = 0; i < params.size(); ++i) {
    const int64_t n = params[i].value().numel() * elem;
    if (shard_bytes > 0 && shard_bytes + n > max_bytes) {
      shards.emplace_back();
      shard_bytes = 0;
    }
    shards.back().push_back(i);
    shard_bytes += n;
    total += n;
  }
  const std::map<std::string, std::string> meta = {{"format", "pt"}};
  nlohmann::json weight_map = nlohmann::json::object();
  for (size_t s = 0; s < shards.size(); ++s) {
    const std::string name = shards.size() == 1 ? "model.safetensors"
                             : fmt::format("model-{:05d}-of-{:05d}.safetensors", s + 1, shards.size());
    for (size_t i : shards[s]) weight_map[params[i].key()] = name;
    if (next++ % writers != writer) continue;
    CheckpointFile f{folder + name, {}, meta, ""};
    for (size_t i : shards[s]) {
      const at::Tensor t = host_copy(params[i].value().detach().to(dtype));
      f.tensors.push_back({params[i].key(), dtype, t.sizes().vec(), {t}});
    }
    out.push_back(std::move(f));
  }
  if (shards.size() > 1 && writer == 0)
    out.push_back(json_file(folder + "model.safetensors.index.json",
                            {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}}));
}

}  // namespace

std::vector<CheckpointFile> model_files(cascade::C3Model& m, const std::string& tokenizer,
                                        at::ScalarType dtype, int64_t max_shard_bytes, int writer,
                                        int writers) {
  std::vector<CheckpointFile> out;
  int next = 0;
  if (writer == 0) {
    out.push_back(json_file("config.json", m->config.decoder_json()));
    out.push_back(json_file("generation_config.json",
                            {{"eos_token_id", m->im_end_id()}, {"transformers_version", "5.17.0"}}));
  }
  add_weights(out, *m->decoder, "", dtype, max_shard_bytes, writer, writers, next);
  if (writer == 0) out.push_back(json_file("llm1/config.json", m->config.encoder.to_json()));
  add_weights(out, *m->encoder, "llm1/", dtype, max_shard_bytes, writer, writers, next);
  if (writer == 0) {
    const auto files = tokenizer::find_tokenizer(tokenizer, /*quiet=*/true);
    for (const auto& [src, name] : tokenizer::model_folder_names(files)) {
      CheckpointFile f;
      f.name = name;
      f.text = read_file(src);
      out.push_back(std::move(f));
    }
  }
  return out;
}

}  // namespace c3::train
