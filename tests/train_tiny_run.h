// Helpers for the trainer tests: a tiny cascade (hidden 64, 2+2 layers, L = 8) on the tiny
// tokenizer, a synthetic corpus, and reading back logs and checkpoints.
#pragma once
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "c3/c3_model.h"
#include "io/safetensors.h"
#include "testdata.h"
#include "train/trainer.h"
#include "util/remove_tree.h"

namespace c3::test::tiny_run {

namespace fs = std::filesystem;
using c3::train::TrainOptions;

// A fresh, empty folder under the build tree (kept after the test, for a look when one fails).
inline fs::path fresh_test_dir(const std::string& suite, const std::string& name) {
  const fs::path p = c3::test::binary_dir() / "test_out" / suite / name;
  c3::remove_tree(p);
  fs::create_directories(p);
  return p;
}

inline void write_file(const fs::path& p, const std::string& text) {
  std::ofstream f(p, std::ios::binary);
  f << text;
  ASSERT_TRUE(f.good()) << "cannot write " << p;
}

inline std::string read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// A Qwen2 config.json with tiny dims; vocab_size is grown to the tokenizer's by build_model.
inline void write_qwen2_config(const fs::path& p, int hidden, int layers, int heads, int kv_heads,
                        int intermediate) {
  nlohmann::json c = {{"architectures", {"Qwen2ForCausalLM"}},
                      {"model_type", "qwen2"},
                      {"hidden_size", hidden},
                      {"intermediate_size", intermediate},
                      {"num_hidden_layers", layers},
                      {"num_attention_heads", heads},
                      {"num_key_value_heads", kv_heads},
                      {"vocab_size", 16},
                      {"rms_norm_eps", 1e-6},
                      {"rope_theta", 10000.0},
                      {"max_position_embeddings", 1024},
                      {"tie_word_embeddings", true},
                      {"hidden_act", "silu"}};
  write_file(p, c.dump(2));
}

inline void write_corpus(const fs::path& p, const std::vector<std::string>& texts) {
  std::string out;
  for (const auto& t : texts) out += nlohmann::json({{"text", t}}).dump() + "\n";
  write_file(p, out);
}

// Documents of 30-70 words from a fixed word list and a fixed LCG: long enough for passages to
// be cut at seeded places, so the data position matters for resume.
inline std::vector<std::string> synthetic_docs(int n) {
  static const char* kWords[] = {"the",   "river", "stone", "light",  "quiet", "north", "paper",
                                 "green", "seven", "under", "market", "cold",  "after", "small",
                                 "house", "road",  "winter", "bright", "over", "and"};
  uint64_t x = 12345;
  std::vector<std::string> docs;
  for (int d = 0; d < n; ++d) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    const int words = 30 + static_cast<int>((x >> 33) % 41);
    std::string s;
    for (int w = 0; w < words; ++w) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      if (w) s += ' ';
      s += kWords[(x >> 33) % 20];
    }
    docs.push_back(s + ".");
  }
  return docs;
}

inline fs::path tiny_tokenizer() { return c3::test::testdata("c3/c3-tiny/tokenizer.json"); }

// Options for a tiny cascade (hidden 64, 2+2 layers, L = 8) trained on `dir`/corpus.jsonl,
// writing into `dir`/`run`. Configs and corpus must already be in `dir`.
inline TrainOptions tiny_options(const fs::path& dir, const std::string& run) {
  TrainOptions o;
  o.init.tokenizer = tiny_tokenizer().string();
  o.init.encoder_config = (dir / "encoder.json").string();
  o.init.decoder_config = (dir / "decoder.json").string();
  o.init.latents = 8;
  o.init.max_passage_tokens = 128;
  o.init.seed = 7;
  o.train_files = {(dir / "corpus.jsonl").string()};
  o.lengths = "fixed:64";
  o.batch_size = 2;
  o.data_threads = 1;
  o.bucket_docs = 4;
  o.lr = 3e-3;
  o.warmup_steps = 2;
  o.max_steps = 8;
  o.seed = 3;
  o.eval_passages = 0;
  o.log_every = 1;
  o.progress = false;
  o.out_dir = (dir / run).string();
  return o;
}

inline void write_tiny_setup(const fs::path& dir, const std::vector<std::string>& docs) {
  write_qwen2_config(dir / "encoder.json", 64, 2, 4, 2, 128);
  write_qwen2_config(dir / "decoder.json", 64, 2, 4, 2, 128);
  write_corpus(dir / "corpus.jsonl", docs);
}

inline std::vector<nlohmann::json> read_log(const fs::path& path, const std::string& event) {
  std::vector<nlohmann::json> out;
  std::ifstream f(path);
  std::string line;
  while (std::getline(f, line))
    if (!line.empty()) {
      auto j = nlohmann::json::parse(line);
      if (j.value("event", "") == event) out.push_back(j);
    }
  return out;
}

// Every tensor of both safetensors files of two checkpoints (decoder side and llm1/), bit for
// bit; returns the number of tensors compared.
inline int expect_same_checkpoint(const fs::path& a, const fs::path& b) {
  int n = 0;
  for (const char* sub : {"", "llm1"}) {
    auto ca = c3::io::Checkpoint::open((a / sub).string());
    auto cb = c3::io::Checkpoint::open((b / sub).string());
    EXPECT_EQ(ca.names(), cb.names());
    for (const auto& name : ca.names()) {
      at::Tensor ta = ca.tensor(name), tb = cb.tensor(name);
      EXPECT_TRUE(torch::equal(ta, tb)) << sub << "/" << name << " differs, max abs diff "
                                        << (ta - tb).abs().max().item<double>();
      ++n;
    }
  }
  return n;
}

// A model's parameters (copies), for comparing runs made in other processes.
inline void save_params(const c3::cascade::C3Model& m, const fs::path& path) {
  std::vector<at::Tensor> ps;
  for (auto& p : m->parameters()) ps.push_back(p.detach().clone());
  torch::save(ps, path.string());
}

inline std::vector<at::Tensor> load_params(const fs::path& path) {
  std::vector<at::Tensor> ps;
  torch::load(ps, path.string());
  return ps;
}

// The largest |a - b| over two parameter lists of the same shapes.
inline double max_abs_diff(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b) {
  EXPECT_EQ(a.size(), b.size());
  double d = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i)
    d = std::max(d, (a[i] - b[i]).abs().max().item<double>());
  return d;
}

}  // namespace c3::test::tiny_run
