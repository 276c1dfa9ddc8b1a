// Loading and saving Qwen2 weights in the HF layout, strictly: every key once, every shape right.
#include <filesystem>
#include <set>

#include "io/hf_config.h"
#include "model/qwen2_model.h"
#include "model/rms_norm.h"
#include "util/error.h"

namespace c3::model {

namespace fs = std::filesystem;

namespace {

std::string shape_str(at::IntArrayRef shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// "a, b, c (and 12 more)": long key lists stay readable.
std::string key_list(const std::vector<std::string>& keys, size_t max_shown = 12) {
  std::string s;
  for (size_t i = 0; i < keys.size() && i < max_shown; ++i) s += (i ? ", " : "") + keys[i];
  if (keys.size() > max_shown) s += fmt::format(" (and {} more)", keys.size() - max_shown);
  return s;
}

const char* hf_dtype_name(at::ScalarType t) {
  switch (t) {
    case at::kBFloat16: return "bfloat16";
    case at::kHalf: return "float16";
    case at::kFloat: return "float32";
    default: fail("unsupported model dtype {}", c10::toString(t));
  }
}

}  // namespace

void load_parameters(torch::nn::Module& module, const io::Checkpoint& ckpt) {
  const auto params = module.named_parameters(/*recurse=*/true);
  std::vector<std::string> missing, unexpected, mismatched;
  std::set<std::string> expected;
  for (const auto& p : params) {
    expected.insert(p.key());
    if (!ckpt.contains(p.key())) {
      missing.push_back(p.key());
      continue;
    }
    const io::TensorInfo& info = ckpt.info(p.key());
    if (at::IntArrayRef(info.shape) != p.value().sizes()) {
      mismatched.push_back(fmt::format("{} (expected {}, got {} in {})", p.key(),
                                       shape_str(p.value().sizes()), shape_str(info.shape),
                                       ckpt.file_of(p.key())));
    }
  }
  for (const auto& name : ckpt.names()) {
    if (!expected.count(name)) unexpected.push_back(name);
  }
  if (!missing.empty() || !unexpected.empty() || !mismatched.empty()) {
    std::string msg = fmt::format("checkpoint '{}' does not match the model:", ckpt.dir());
    if (!missing.empty()) {
      msg += fmt::format(" {} missing tensor(s): {};", missing.size(), key_list(missing));
    }
    if (!unexpected.empty()) {
      msg += fmt::format(" {} unexpected tensor(s): {};", unexpected.size(), key_list(unexpected));
    }
    if (!mismatched.empty()) {
      msg += fmt::format(" {} shape mismatch(es): {};", mismatched.size(), key_list(mismatched));
    }
    msg += " Check that config.json belongs to these weights.";
    throw Error(msg);
  }
  torch::NoGradGuard no_grad;
  for (auto& p : params) p.value().copy_(ckpt.tensor(p.key()));  // converts dtype and device
}

void save_parameters(const torch::nn::Module& module, const std::string& path,
                     at::ScalarType dtype, const std::map<std::string, std::string>& metadata) {
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto& p : module.named_parameters(/*recurse=*/true)) {
    tensors.emplace_back(p.key(), p.value().detach().to(dtype));
  }
  std::map<std::string, std::string> meta = metadata;
  meta.emplace("format", "pt");  // transformers refuses safetensors files without it
  io::save_safetensors(path, tensors, meta);
}

Qwen2ForCausalLM load_qwen2(const std::string& dir, at::ScalarType dtype, at::Device device) {
  C3_CHECK(fs::is_directory(dir), "model folder '{}' does not exist. Pass an HF folder with "
           "config.json and model.safetensors.", dir);
  const Qwen2Config cfg = Qwen2Config::from_file((fs::path(dir) / "config.json").string());
  const io::Checkpoint ckpt = io::Checkpoint::open(dir);
  Qwen2ForCausalLM model{nullptr};
  {
    ParameterPlacement place(device, dtype);  // every weight is loaded: skip the random init
    model = Qwen2ForCausalLM(cfg);
  }
  model->to(device, dtype);
  load_parameters(*model, ckpt);
  model->eval();
  model->fuse_projections();
  return model;
}

void save_qwen2(Qwen2ForCausalLM& m, const std::string& dir, at::ScalarType dtype) {
  fs::create_directories(dir);
  Qwen2Config cfg = m->config();
  cfg.torch_dtype = hf_dtype_name(dtype);
  io::save_json((fs::path(dir) / "config.json").string(), cfg.to_json());
  save_parameters(*m, (fs::path(dir) / "model.safetensors").string(), dtype);
  nlohmann::json gen = {{"_from_model_config", true}};
  if (!cfg.eos_token_id.empty()) gen["eos_token_id"] = cfg.to_json()["eos_token_id"];
  io::save_json((fs::path(dir) / "generation_config.json").string(), gen);
}

void init_weights(torch::nn::Module& m, double std) {
  torch::NoGradGuard no_grad;
  for (const auto& sub : m.modules(/*include_self=*/true)) {
    if (auto* linear = sub->as<LinearImpl>()) {
      linear->weight.normal_(0.0, std);
      if (linear->bias.defined()) linear->bias.zero_();
    } else if (auto* embedding = sub->as<torch::nn::EmbeddingImpl>()) {
      embedding->weight.normal_(0.0, std);
    } else if (auto* norm = sub->as<RMSNormImpl>()) {
      norm->weight.fill_(1.0);
    }
  }
}

}  // namespace c3::model
