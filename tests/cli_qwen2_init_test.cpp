// `c3 qwen2 init`: a random-weight HF Qwen2 folder from a config, loadable as a pretrained one,
// the same bytes for the same seed; a tokenizer it cannot hold is refused before anything is
// written.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "cli_run.h"
#include "model/qwen2_model.h"
#include "testdata.h"
#include "util/atomic_file.h"
#include "util/remove_tree.h"

namespace {
using c3::test::q;
namespace fs = std::filesystem;

using c3::test::RunResult;

RunResult run_c3(const std::string& args) {
  return c3::test::run_shell(c3::test::c3_binary() + " " + args + " 2>&1");
}

// One folder per test: ctest -j runs this suite's tests at once.
fs::path fresh_dir() {
  const fs::path p = c3::test::binary_dir() / "test_out" / "cli_qwen2_init" /
                     ::testing::UnitTest::GetInstance()->current_test_info()->name();
  c3::remove_tree(p);
  fs::create_directories(p);
  return p;
}

const fs::path kConfig = c3::test::source_dir() / "configs" / "tiny-encoder.json";
const fs::path kTokenizer = c3::test::testdata("c3/c3-tiny/tokenizer.json");

std::string init_args(const fs::path& out, int seed, int vocab) {
  return "qwen2 init --config " + q(kConfig) + " --out " + q(out) + " --tokenizer " +
         q(kTokenizer) + " --vocab-size " + std::to_string(vocab) + " --seed " +
         std::to_string(seed);
}

}  // namespace

TEST(CliQwen2Init, WritesALoadableRandomFolderDeterministically) {
  const fs::path dir = fresh_dir();
  RunResult r = run_c3(init_args(dir / "a", 3, 1506));
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("vocab 1506, tied"), std::string::npos) << r.out;
  const auto cfg = nlohmann::json::parse(c3::read_file(dir / "a" / "config.json"));
  EXPECT_EQ(cfg["model_type"], "qwen2");
  EXPECT_EQ(cfg["architectures"][0], "Qwen2ForCausalLM");
  EXPECT_EQ(cfg["vocab_size"], 1506);
  EXPECT_EQ(cfg["hidden_size"], 128);
  EXPECT_EQ(c3::read_file(dir / "a" / "tokenizer.json"), c3::read_file(kTokenizer));

  auto m = c3::model::load_qwen2((dir / "a").string(), at::kFloat, at::kCPU);
  const auto params = m->named_parameters();
  const at::Tensor emb = params["model.embed_tokens.weight"];
  EXPECT_EQ(emb.sizes(), (std::vector<int64_t>{1506, 128}));
  EXPECT_NEAR(emb.std().item<double>(), 0.02, 0.002);  // 192,768 draws of normal(0, 0.02)
  EXPECT_TRUE(torch::equal(params["model.norm.weight"], torch::ones({128})));
  EXPECT_TRUE(torch::equal(params["model.layers.0.self_attn.q_proj.bias"], torch::zeros({128})));

  // Same seed, same bytes; another seed, other weights.
  ASSERT_EQ(run_c3(init_args(dir / "b", 3, 1506)).rc, 0);
  ASSERT_EQ(run_c3(init_args(dir / "c", 4, 1506)).rc, 0);
  EXPECT_EQ(c3::read_file(dir / "a" / "model.safetensors"),
            c3::read_file(dir / "b" / "model.safetensors"));
  EXPECT_NE(c3::read_file(dir / "a" / "model.safetensors"),
            c3::read_file(dir / "c" / "model.safetensors"));
}

TEST(CliQwen2Init, RefusesATokenizerTheVocabularyCannotHoldAndAFullFolder) {
  const fs::path dir = fresh_dir();
  RunResult r = run_c3(init_args(dir / "small", 0, 1000));
  EXPECT_NE(r.rc, 0);
  for (const std::string& needle :
       {kTokenizer.string(), std::string("1506 tokens"), std::string("vocab_size 1000"),
        std::string("--vocab-size 1506")})
    EXPECT_NE(r.out.find(needle), std::string::npos) << needle << " not in: " << r.out;
  EXPECT_FALSE(fs::exists(dir / "small"));

  fs::create_directories(dir / "full");
  c3::write_file_atomic(dir / "full" / "config.json", "{}");
  r = run_c3(init_args(dir / "full", 0, 1506));
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.out.find("is not empty"), std::string::npos) << r.out;
  EXPECT_EQ(c3::read_file(dir / "full" / "config.json"), "{}");
}
