// Qwen2Config parsing (legacy and current forms) and strict checkpoint loading/saving: every bad
// input gets an error that names the problem.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>

#include "io/hf_config.h"
#include "model/qwen2_config.h"
#include "model/qwen2_model.h"
#include "model_golden.h"

namespace c3::test {
namespace {

using model::Qwen2Config;

nlohmann::json base_config() {
  return nlohmann::json::parse(R"({
    "vocab_size": 97, "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2,
    "num_attention_heads": 4, "num_key_value_heads": 2, "rms_norm_eps": 1e-6,
    "rope_theta": 10000.0, "torch_dtype": "float32", "tie_word_embeddings": true,
    "some_future_key": {"x": 1}
  })");
}

// The message of the c3::Error that `f` throws ("" when none).
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Qwen2Config, LegacyForm) {
  const Qwen2Config c = Qwen2Config::from_json(io::JsonFile(base_config(), "legacy.json"));
  EXPECT_EQ(c.vocab_size, 97);
  EXPECT_EQ(c.num_key_value_heads, 2);
  EXPECT_EQ(c.rope_theta, 10000.0);
  EXPECT_EQ(c.torch_dtype, "float32");
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_TRUE(c.eos_token_id.empty());
  EXPECT_EQ(c.head_dim(), 8);
}

TEST(Qwen2Config, CurrentForm) {
  nlohmann::json j = base_config();
  j.erase("rope_theta");
  j.erase("torch_dtype");
  j.erase("num_key_value_heads");
  j["rope_parameters"] = {{"rope_theta", 1e6}, {"rope_type", "default"}};
  j["dtype"] = "bfloat16";
  j["eos_token_id"] = {151643, 151645};
  const Qwen2Config c = Qwen2Config::from_json(io::JsonFile(j, "current.json"));
  EXPECT_EQ(c.rope_theta, 1e6);
  EXPECT_EQ(c.torch_dtype, "bfloat16");
  EXPECT_EQ(c.num_key_value_heads, 4);  // defaults to num_attention_heads
  EXPECT_EQ(c.eos_token_id, std::vector<int64_t>({151643, 151645}));
  j["eos_token_id"] = 7;
  EXPECT_EQ(Qwen2Config::from_json(io::JsonFile(j, "x")).eos_token_id, std::vector<int64_t>({7}));
}

TEST(Qwen2Config, MissingRequiredKeyNamesKeyAndFile) {
  for (const char* key : {"vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                          "num_attention_heads", "rms_norm_eps", "rope_theta"}) {
    nlohmann::json j = base_config();
    j.erase(key);
    const std::string msg = error_of([&] { Qwen2Config::from_json(io::JsonFile(j, "my/config.json")); });
    EXPECT_NE(msg.find(key), std::string::npos) << msg;
    EXPECT_NE(msg.find("my/config.json"), std::string::npos) << msg;
  }
}

TEST(Qwen2Config, RejectsInconsistentShapes) {
  nlohmann::json j = base_config();
  j["num_key_value_heads"] = 3;
  EXPECT_NE(error_of([&] { Qwen2Config::from_json(io::JsonFile(j, "c.json")); })
                .find("num_key_value_heads"),
            std::string::npos);
}

TEST(Qwen2Config, ToJsonRoundTripsBothForms) {
  const Qwen2Config c = Qwen2Config::from_json(io::JsonFile(base_config(), "c.json"));
  const nlohmann::json j = c.to_json();
  EXPECT_EQ(j["rope_parameters"]["rope_theta"], 10000.0);
  EXPECT_EQ(j["rope_theta"], 10000.0);
  EXPECT_EQ(j["model_type"], "qwen2");
  const Qwen2Config back = Qwen2Config::from_json(io::JsonFile(j, "back.json"));
  EXPECT_EQ(back.to_json(), j);
}

TEST(Qwen2Config, GoldenConfigsLoad) {
  const Qwen2Config legacy = Qwen2Config::from_file(golden_dir("qwen2-tied-gqa") + "/config.json");
  EXPECT_EQ(legacy.rope_theta, 10000.0);
  EXPECT_TRUE(legacy.tie_word_embeddings);
  const Qwen2Config current =
      Qwen2Config::from_file(golden_dir("qwen2-bf16-mqa") + "/config.json");
  EXPECT_EQ(current.rope_theta, 500000.0);
  EXPECT_EQ(current.torch_dtype, "bfloat16");
  EXPECT_EQ(current.num_key_value_heads, 1);
  EXPECT_TRUE(model::read_stop_tokens(golden_dir("qwen2-bf16-mqa"), current).empty());
}

TEST(Qwen2Config, StopTokensPreferGenerationConfig) {
  TempDir dir;
  Qwen2Config c = Qwen2Config::from_json(io::JsonFile(base_config(), "c.json"));
  c.eos_token_id = {5};
  EXPECT_EQ(model::read_stop_tokens(dir.str(), c), std::vector<int64_t>({5}));
  // Built step by step: GCC 13 miscompiles (segfaults on) the nested initializer-list form of
  // this JSON with nlohmann 3.11.2, as seen on the GPU machine.
  nlohmann::json gen = nlohmann::json::object();
  gen["eos_token_id"] = nlohmann::json::array({8, 9});
  io::save_json(dir.str("generation_config.json"), gen);
  EXPECT_EQ(model::read_stop_tokens(dir.str(), c), std::vector<int64_t>({8, 9}));
  nlohmann::json no_eos = nlohmann::json::object();
  no_eos["do_sample"] = false;
  io::save_json(dir.str("generation_config.json"), no_eos);
  EXPECT_EQ(model::read_stop_tokens(dir.str(), c), std::vector<int64_t>({5}));
}

// ---------------------------------------------------------------------------------------------
// Strict loading.

class BrokenCheckpoint : public testing::Test {
 protected:
  // A copy of the tied golden model with its tensors edited by `edit`.
  std::string write(const std::function<void(std::vector<std::pair<std::string, at::Tensor>>&)>&
                        edit) {
    const std::string src = golden_dir("qwen2-tied-gqa");
    std::filesystem::copy_file(src + "/config.json", dir_.str("config.json"));
    auto file = io::SafetensorsFile::open(src + "/model.safetensors");
    std::vector<std::pair<std::string, at::Tensor>> tensors;
    for (const auto& t : file->tensors()) tensors.emplace_back(t.name, file->tensor(t.name));
    edit(tensors);
    io::save_safetensors(dir_.str("model.safetensors"), tensors);
    return dir_.str();
  }
  std::string load_error(const std::string& dir) {
    return error_of([&] { model::load_qwen2(dir, at::kFloat, at::kCPU); });
  }
  TempDir dir_;
};

TEST_F(BrokenCheckpoint, MissingTensor) {
  const std::string dir = write([](auto& t) {
    t.erase(std::remove_if(t.begin(), t.end(),
                           [](auto& p) { return p.first == "model.layers.1.mlp.up_proj.weight"; }),
            t.end());
  });
  const std::string msg = load_error(dir);
  EXPECT_NE(msg.find("missing"), std::string::npos) << msg;
  EXPECT_NE(msg.find("model.layers.1.mlp.up_proj.weight"), std::string::npos) << msg;
  EXPECT_NE(msg.find(dir), std::string::npos) << msg;
}

TEST_F(BrokenCheckpoint, WrongShape) {
  const std::string dir = write([](auto& t) {
    for (auto& p : t) {
      if (p.first == "model.layers.0.self_attn.k_proj.weight") p.second = p.second.slice(0, 0, 16);
    }
  });
  const std::string msg = load_error(dir);
  EXPECT_NE(msg.find("model.layers.0.self_attn.k_proj.weight"), std::string::npos) << msg;
  EXPECT_NE(msg.find("expected [32, 64], got [16, 64]"), std::string::npos) << msg;
}

TEST_F(BrokenCheckpoint, UnexpectedKey) {
  const std::string dir = write([](auto& t) {
    t.emplace_back("model.layers.9.self_attn.q_proj.weight", at::zeros({2, 2}));
  });
  const std::string msg = load_error(dir);
  EXPECT_NE(msg.find("unexpected"), std::string::npos) << msg;
  EXPECT_NE(msg.find("model.layers.9.self_attn.q_proj.weight"), std::string::npos) << msg;
}

TEST_F(BrokenCheckpoint, AllProblemsAtOnce) {
  const std::string dir = write([](auto& t) {
    t.erase(t.begin());  // drops one tensor
    t.emplace_back("extra.weight", at::zeros({1}));
  });
  const std::string msg = load_error(dir);
  EXPECT_NE(msg.find("1 missing"), std::string::npos) << msg;
  EXPECT_NE(msg.find("1 unexpected"), std::string::npos) << msg;
}

TEST_F(BrokenCheckpoint, ConfigWithoutRequiredKey) {
  const std::string dir = write([](auto&) {});
  io::JsonFile cfg = io::JsonFile::load(dir_.str("config.json"));
  nlohmann::json j = cfg.json();
  j.erase("num_hidden_layers");
  io::save_json(dir_.str("config.json"), j);
  const std::string msg = load_error(dir);
  EXPECT_NE(msg.find("num_hidden_layers"), std::string::npos) << msg;
  EXPECT_NE(msg.find("config.json"), std::string::npos) << msg;
}

TEST(Qwen2Loader, MissingFolder) {
  const std::string msg =
      error_of([] { model::load_qwen2("/nonexistent/qwen2", at::kFloat, at::kCPU); });
  EXPECT_NE(msg.find("/nonexistent/qwen2"), std::string::npos) << msg;
}

// The generic loop loads any module, e.g. extra children registered on the decoder (the cascade's
// model.Q and model.mm_projector).
TEST(Qwen2Loader, ExtraChildrenLoadThroughTheSameLoop) {
  auto m = tiny_model(tiny_config());
  m->model->register_module("mm_projector", torch::nn::Linear(16, 32));
  TempDir dir;
  model::save_parameters(*m, dir.str("model.safetensors"), at::kFloat);
  auto file = io::SafetensorsFile::open(dir.str("model.safetensors"));
  EXPECT_TRUE(file->contains("model.mm_projector.weight"));
  EXPECT_TRUE(file->contains("model.mm_projector.bias"));
  EXPECT_EQ(file->metadata().at("format"), "pt");

  auto fresh = tiny_model(tiny_config(), 99);
  fresh->model->register_module("mm_projector", torch::nn::Linear(16, 32));
  model::load_parameters(*fresh, io::Checkpoint::open(dir.str()));
  const auto a = m->named_parameters(), b = fresh->named_parameters();
  for (const auto& p : a) EXPECT_TRUE(at::equal(p.value(), b[p.key()])) << p.key();
}

TEST(Qwen2Loader, SaveAndLoadRoundTrip) {
  for (at::ScalarType dtype : {at::kFloat, at::kBFloat16}) {
    auto m = tiny_model(tiny_config(/*tied=*/false));
    TempDir dir;
    model::save_qwen2(m, dir.str(), dtype);
    for (const char* f : {"config.json", "model.safetensors", "generation_config.json"}) {
      EXPECT_TRUE(std::filesystem::exists(dir.str(f))) << f;
    }
    const auto cfg = Qwen2Config::from_file(dir.str("config.json"));
    EXPECT_EQ(cfg.torch_dtype, dtype == at::kFloat ? "float32" : "bfloat16");
    auto back = model::load_qwen2(dir.str(), at::kFloat, at::kCPU);
    torch::NoGradGuard no_grad;
    const at::Tensor ids = at::randint(0, 97, {1, 7}, at::kLong);
    const double diff = max_abs_diff(back->forward(ids), m->forward(ids));
    EXPECT_LT(diff, dtype == at::kFloat ? 1e-6 : 0.1);
    auto file = io::SafetensorsFile::open(dir.str("model.safetensors"));
    EXPECT_EQ(file->find("lm_head.weight")->dtype,
              dtype == at::kFloat ? io::DType::F32 : io::DType::BF16);
  }
}

TEST(Qwen2Loader, ShardedLegacyAndBf16CheckpointsLoad) {
  for (const auto& name : golden_models()) {
    auto m = model::load_qwen2(golden_dir(name), at::kFloat, at::kCPU);
    EXPECT_EQ(m->parameters().size(), m->named_parameters().size()) << name;
    auto ckpt = io::Checkpoint::open(golden_dir(name));
    EXPECT_EQ(ckpt.names().size(), m->named_parameters().size()) << name;
  }
}

}  // namespace
}  // namespace c3::test
