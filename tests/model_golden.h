// Helpers shared by the model tests: the golden Qwen2 cases, diffs, temp folders, running `c3`.
#pragma once
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <torch/torch.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "model/qwen2_model.h"
#include "testdata.h"
#include "util/remove_tree.h"

namespace c3::test {

// One test is registered per golden checkpoint, as llama.cpp does per vocab.
inline const std::vector<std::string>& golden_models() {
  static const std::vector<std::string> names = {"qwen2-tied-gqa", "qwen2-untied-mha-sharded",
                                                 "qwen2-bf16-mqa"};
  return names;
}

inline std::string golden_dir(const std::string& name) {
  return testdata("qwen2/" + name).string();
}

// gtest parameter names may not contain '-'.
inline std::string param_name(const testing::TestParamInfo<std::string>& info) {
  std::string s = info.param;
  for (char& c : s) {
    if (c == '-') c = '_';
  }
  return s;
}

inline std::shared_ptr<io::SafetensorsFile> expected(const std::string& name) {
  return io::SafetensorsFile::open(golden_dir(name) + "/expected.safetensors");
}

inline std::vector<int64_t> to_ids(const at::Tensor& t) {
  const at::Tensor c = t.to(at::kCPU, at::kLong).contiguous();
  return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}

inline double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kCPU, at::kDouble) - b.to(at::kCPU, at::kDouble)).abs().max().item<double>();
}

// $C3_TEST_DEVICE ("cuda") enables the device-mode tests; empty otherwise.
inline std::string test_device() {
  const char* env = std::getenv("C3_TEST_DEVICE");
  return env ? env : "";
}

// A fresh folder under the system temp dir, removed when the object dies.
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    static std::mt19937_64 rng(std::random_device{}());
    path = std::filesystem::temp_directory_path() / ("c3_model_test_" + std::to_string(rng()));
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    c3::remove_tree(path, ec);
  }
  std::string str(const std::string& rel = "") const { return (path / rel).string(); }
};

// Runs a shell command; returns its exit status and stdout+stderr.
struct CommandResult {
  int status = -1;
  std::string output;
};
inline CommandResult run_command(const std::string& cmd) {
  CommandResult r;
  FILE* pipe = popen((cmd + " 2>&1").c_str(), "r");
  if (!pipe) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) r.output.append(buf, n);
  const int status = pclose(pipe);
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// The built `c3` binary; the test fails (never skips) when it is missing.
inline std::string c3_binary() {
  const auto path = binary_dir() / "c3";
  if (!std::filesystem::exists(path)) {
    ADD_FAILURE() << "the c3 binary is missing at " << path
                  << ". Build it first: ninja -C " << binary_dir() << " c3";
    return "";
  }
  return path.string();
}

// A small random Qwen2 for synthetic tests (no files needed).
inline model::Qwen2Config tiny_config(bool tied = true, int64_t n_kv_heads = 2) {
  model::Qwen2Config c;
  c.vocab_size = 97;
  c.hidden_size = 32;
  c.intermediate_size = 48;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = n_kv_heads;
  c.rms_norm_eps = 1e-6;
  c.rope_theta = 10000.0;
  c.tie_word_embeddings = tied;
  return c;
}

inline model::Qwen2ForCausalLM tiny_model(const model::Qwen2Config& c, uint64_t seed = 0) {
  torch::manual_seed(seed);
  model::Qwen2ForCausalLM m(c);
  model::init_weights(*m, 0.1);  // larger than HF's 0.02 so that logits are far from flat
  m->eval();
  return m;
}

}  // namespace c3::test
