// Qwen2Config: parsing and writing HF config.json (legacy and current key forms) and stop tokens.
#include "model/qwen2_config.h"

#include <filesystem>

#include "util/error.h"
#include "util/json_int.h"

namespace c3::model {

namespace {

// eos_token_id may be null, an int or a list of ints.
std::vector<int64_t> token_list(const io::JsonFile& f, const std::string& key) {
  if (!f.has(key)) return {};
  const nlohmann::json& j = f.json().at(key);
  if (j.is_number_integer()) {
    auto id = json_int<int64_t>(j);
    C3_CHECK(id.has_value(), "config '{}': key '{}' = {} is out of range", f.path(), key, j.dump());
    return {*id};
  }
  if (j.is_array()) {
    std::vector<int64_t> ids;
    for (const auto& e : j) {
      auto id = e.is_number_integer() ? json_int<int64_t>(e) : std::nullopt;
      C3_CHECK(id.has_value(), "config '{}': key '{}' must hold integers, got {}", f.path(), key,
               j.dump().substr(0, 200));
      ids.push_back(*id);
    }
    return ids;
  }
  fail("config '{}': key '{}' must be null, an integer or a list of integers, got {}", f.path(),
       key, j.dump());
}

nlohmann::json token_list_json(const std::vector<int64_t>& ids) {
  if (ids.empty()) return nullptr;
  if (ids.size() == 1) return ids[0];
  return ids;
}

}  // namespace

int64_t Qwen2Config::n_params() const {
  const int64_t C = hidden_size, D = head_dim();
  const int64_t q = C * num_attention_heads * D + num_attention_heads * D;
  const int64_t kv = 2 * (C * num_key_value_heads * D + num_key_value_heads * D);
  const int64_t o = num_attention_heads * D * C;
  const int64_t mlp = 3 * C * intermediate_size;
  const int64_t per_layer = q + kv + o + mlp + 2 * C;
  const int64_t embed = vocab_size * C;
  return embed + num_hidden_layers * per_layer + C + (tie_word_embeddings ? 0 : embed);
}

Qwen2Config Qwen2Config::from_json(const io::JsonFile& f) {
  Qwen2Config c;
  c.vocab_size = f.required<int64_t>("vocab_size");
  c.hidden_size = f.required<int64_t>("hidden_size");
  c.intermediate_size = f.required<int64_t>("intermediate_size");
  c.num_hidden_layers = f.required<int64_t>("num_hidden_layers");
  c.num_attention_heads = f.required<int64_t>("num_attention_heads");
  c.num_key_value_heads = f.optional<int64_t>("num_key_value_heads", c.num_attention_heads);
  c.max_position_embeddings = f.optional<int64_t>("max_position_embeddings",
                                                  c.max_position_embeddings);
  c.rms_norm_eps = f.required<double>("rms_norm_eps");
  c.tie_word_embeddings = f.optional<bool>("tie_word_embeddings", false);
  c.eos_token_id = token_list(f, "eos_token_id");

  // rope_theta: legacy top-level key, or rope_parameters.rope_theta (transformers >= 5).
  if (f.has("rope_theta")) {
    c.rope_theta = f.required<double>("rope_theta");
  } else if (auto rope = f.object("rope_parameters")) {
    c.rope_theta = rope->required<double>("rope_theta");
    const std::string type = rope->optional<std::string>("rope_type", "default");
    C3_CHECK(type == "default", "config '{}': rope_parameters.rope_type '{}' is not supported "
             "(only 'default' RoPE is implemented)", f.path(), type);
  } else {
    fail("config '{}' lacks required key 'rope_theta' (or 'rope_parameters.rope_theta'). Add it "
         "or use a complete config.json.", f.path());
  }
  if (auto scaling = f.object("rope_scaling")) {
    const std::string type = scaling->optional<std::string>(
        "rope_type", scaling->optional<std::string>("type", "default"));
    C3_CHECK(type == "default", "config '{}': rope_scaling type '{}' is not supported", f.path(),
             type);
  }
  c.torch_dtype = f.has("dtype") ? f.required<std::string>("dtype")
                                 : f.optional<std::string>("torch_dtype", "float32");

  C3_CHECK(c.vocab_size > 0 && c.hidden_size > 0 && c.intermediate_size > 0 &&
               c.num_hidden_layers > 0 && c.num_attention_heads > 0 && c.num_key_value_heads > 0,
           "config '{}': sizes must be positive", f.path());
  C3_CHECK(c.hidden_size % c.num_attention_heads == 0,
           "config '{}': hidden_size {} is not divisible by num_attention_heads {}", f.path(),
           c.hidden_size, c.num_attention_heads);
  C3_CHECK(c.num_attention_heads % c.num_key_value_heads == 0,
           "config '{}': num_attention_heads {} is not divisible by num_key_value_heads {}",
           f.path(), c.num_attention_heads, c.num_key_value_heads);
  C3_CHECK(c.head_dim() % 2 == 0, "config '{}': head dim {} must be even for RoPE", f.path(),
           c.head_dim());
  if (f.has("head_dim")) {
    const int64_t hd = f.required<int64_t>("head_dim");
    C3_CHECK(hd == c.head_dim(), "config '{}': head_dim {} != hidden_size / num_attention_heads "
             "= {} is not supported", f.path(), hd, c.head_dim());
  }
  C3_CHECK(!f.optional<bool>("use_sliding_window", false),
           "config '{}': use_sliding_window=true is not supported", f.path());
  const std::string act = f.optional<std::string>("hidden_act", "silu");
  C3_CHECK(act == "silu", "config '{}': hidden_act '{}' is not supported (only silu)", f.path(),
           act);
  return c;
}

Qwen2Config Qwen2Config::from_file(const std::string& path) {
  return from_json(io::JsonFile::load(path));
}

nlohmann::json Qwen2Config::to_json() const {
  nlohmann::json j;
  j["architectures"] = {"Qwen2ForCausalLM"};
  j["model_type"] = "qwen2";
  j["vocab_size"] = vocab_size;
  j["hidden_size"] = hidden_size;
  j["intermediate_size"] = intermediate_size;
  j["num_hidden_layers"] = num_hidden_layers;
  j["num_attention_heads"] = num_attention_heads;
  j["num_key_value_heads"] = num_key_value_heads;
  j["max_position_embeddings"] = max_position_embeddings;
  j["rms_norm_eps"] = rms_norm_eps;
  j["rope_parameters"] = {{"rope_theta", rope_theta}, {"rope_type", "default"}};
  j["rope_theta"] = rope_theta;
  j["tie_word_embeddings"] = tie_word_embeddings;
  j["dtype"] = torch_dtype;
  j["torch_dtype"] = torch_dtype;
  j["eos_token_id"] = token_list_json(eos_token_id);
  j["hidden_act"] = "silu";
  j["attention_dropout"] = 0.0;
  j["use_sliding_window"] = false;
  j["sliding_window"] = nullptr;
  j["use_cache"] = true;
  return j;
}

std::vector<int64_t> read_stop_tokens(const std::string& model_dir, const Qwen2Config& cfg) {
  const auto gen_path = std::filesystem::path(model_dir) / "generation_config.json";
  if (std::filesystem::exists(gen_path)) {
    const io::JsonFile gen = io::JsonFile::load(gen_path.string());
    if (gen.has("eos_token_id")) return token_list(gen, "eos_token_id");
  }
  return cfg.eos_token_id;
}

}  // namespace c3::model
