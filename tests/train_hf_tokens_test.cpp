// Training from HF Qwen2 folders with a chat tokenizer that lacks <img>, </img>, <imgpad>: the
// tokens are added after the last id, embeddings (and an untied lm_head) grow with mean rows,
// and every checkpoint carries the grown tokenizer.json. Tiny HF folders are made here.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "c3/c3_model.h"
#include "testdata.h"
#include "tokenizer/bpe_tokenizer.h"
#include "train/model_init.h"
#include "train/trainer.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/remove_tree.h"

namespace {
namespace fs = std::filesystem;
using Params = std::map<std::string, at::Tensor>;

fs::path hf_tokens_dir(const std::string& name) {
  const fs::path p = c3::test::binary_dir() / "test_out" / "train_hf_tokens" / name;
  c3::remove_tree(p);
  fs::create_directories(p);
  return p;
}

fs::path chat_source_tokenizer() { return c3::test::testdata("c3/c3-tiny/tokenizer.json"); }

// c3-tiny's tokenizer.json without C3's three tokens: 1,503 tokens, like a chat model's.
fs::path write_chat_tokenizer(const fs::path& dir) {
  auto j = nlohmann::json::parse(c3::read_file(chat_source_tokenizer()));
  auto kept = nlohmann::json::array();
  for (const auto& t : j["added_tokens"]) {
    const std::string c = t["content"];
    if (c != "<img>" && c != "</img>" && c != "<imgpad>") kept.push_back(t);
  }
  j["added_tokens"] = kept;
  const fs::path p = dir / "chat_tokenizer.json";
  c3::write_file_atomic(p, j.dump());
  return p;
}

// A random HF Qwen2 folder; returns its weights.
Params write_hf(const fs::path& dir, int64_t vocab, bool tied, uint64_t seed, int64_t hidden = 32) {
  c3::model::Qwen2Config cfg;
  cfg.vocab_size = vocab;
  cfg.hidden_size = hidden;
  cfg.intermediate_size = 2 * hidden;
  cfg.num_hidden_layers = 1;
  cfg.num_attention_heads = 2;
  cfg.num_key_value_heads = 1;
  cfg.tie_word_embeddings = tied;
  torch::manual_seed(seed);
  c3::model::Qwen2ForCausalLM m(cfg);
  c3::model::init_weights(*m, 0.5);
  c3::model::save_qwen2(m, dir.string(), at::kFloat);
  Params out;
  for (auto& p : m->named_parameters()) out[p.key()] = p.value().detach().clone();
  return out;
}

c3::train::ModelInit hf_init(const fs::path& dir, const fs::path& tokenizer) {
  c3::train::ModelInit init;
  init.tokenizer = tokenizer.string();
  init.encoder_hf = (dir / "hf_enc").string();
  init.decoder_hf = (dir / "hf_dec").string();
  init.latents = 4;
  init.max_passage_tokens = 64;
  return init;
}

// Each loaded weight equals the HF one; a vocabulary matrix that grew has the HF rows first and
// the mean of them in the rows after. Returns how many matrices grew.
int expect_hf_weights(c3::model::Qwen2ForCausalLM& half, const Params& hf, const char* which) {
  int grown = 0;
  for (auto& p : half->named_parameters()) {
    if (!hf.count(p.key())) continue;  // Q and mm_projector
    const at::Tensor& w = hf.at(p.key());
    const at::Tensor v = p.value().detach();
    if (v.sizes() == w.sizes()) {
      EXPECT_TRUE(torch::equal(v, w)) << which << "." << p.key();
      continue;
    }
    ++grown;
    const int64_t n = w.size(0);
    EXPECT_TRUE(torch::equal(v.narrow(0, 0, n), w)) << which << "." << p.key();
    const at::Tensor mean = w.mean(0);
    for (int64_t r = n; r < v.size(0); ++r)
      EXPECT_TRUE(torch::allclose(v[r], mean, 0, 1e-6)) << which << "." << p.key() << " row " << r;
  }
  return grown;
}

}  // namespace

TEST(TrainHfTokens, AddsC3TokensGrowsEmbeddingsAndSavesTheGrownTokenizer) {
  setenv("C3_NO_PROGRESS", "1", 1);
  const fs::path dir = hf_tokens_dir("grow");
  const fs::path chat = write_chat_tokenizer(dir);
  ASSERT_EQ(c3::tokenizer::BpeTokenizer::from_file(chat.string()).vocab_size(), 1503);
  const Params enc = write_hf(dir / "hf_enc", 1503, /*tied=*/true, 1);
  const Params dec = write_hf(dir / "hf_dec", 1503, /*tied=*/false, 2, 48);

  testing::internal::CaptureStderr();
  c3::train::TokenizerSource src;
  c3::cascade::C3Model m = c3::train::build_model(hf_init(dir, chat), &src);
  const std::string log = testing::internal::GetCapturedStderr();
  EXPECT_NE(log.find("lacks <img> </img> <imgpad>: added as special tokens 1503..1505"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("lm_head.weight grown from 1503 to 1506 rows"), std::string::npos) << log;
  const auto& tok = m->tok();
  EXPECT_EQ(tok.vocab_size(), 1506);
  EXPECT_EQ(tok.token_id("<img>"), 1503);
  EXPECT_EQ(tok.token_id("</img>"), 1504);
  EXPECT_EQ(tok.token_id("<imgpad>"), 1505);
  EXPECT_TRUE(tok.is_special(1505));
  EXPECT_EQ(m->config.im_patch_token, 1505);
  const auto a = tok.encode("a"), b = tok.encode("b");
  EXPECT_EQ(tok.encode("a<imgpad>b"), (std::vector<int32_t>{a[0], 1505, b[0]}));
  EXPECT_EQ(expect_hf_weights(m->encoder, enc, "encoder"), 1);  // tied: embed_tokens only
  EXPECT_EQ(expect_hf_weights(m->decoder, dec, "decoder"), 2);  // embed_tokens and lm_head
  ASSERT_FALSE(src.grown_json.empty());

  // Train two steps: every checkpoint has the grown tokenizer.json, and loads.
  c3::write_file_atomic(dir / "corpus.jsonl",
                        "{\"text\": \"the small river runs north under the bright winter light\"}\n"
                        "{\"text\": \"seven cold roads over the green market after the rain\"}\n");
  c3::train::TrainOptions o;
  o.init = hf_init(dir, chat);
  o.train_files = {(dir / "corpus.jsonl").string()};
  o.out_dir = (dir / "run").string();
  o.lengths = "fixed:8";
  o.batch_size = 2;
  o.data_threads = 1;
  o.bucket_docs = 2;
  o.warmup_steps = 1;
  o.max_steps = 2;
  o.save_every = 1;
  o.keep_last = 5;
  o.eval_passages = 0;
  o.progress = false;
  c3::train::train(o);
  int checked = 0;
  for (const char* step : {"step-0000001", "step-0000002"}) {
    const fs::path ck = dir / "run" / step;
    ASSERT_TRUE(fs::exists(ck / "tokenizer.json")) << ck;
    EXPECT_EQ(c3::read_file(ck / "tokenizer.json"), src.grown_json) << step;
    c3::cascade::LoadedC3 l = c3::cascade::load_c3(ck.string(), at::kFloat, at::kCPU);
    EXPECT_EQ(l.tok->token_id("<imgpad>"), 1505);
    EXPECT_EQ(l.model->config.decoder.vocab_size, 1506);
    ++checked;
  }
  EXPECT_EQ(checked, 2);
}

// With a tokenizer that has C3's tokens (and HF folders that cover them) nothing changes: the
// weights are the HF ones and the run's tokenizer is the same file.
TEST(TrainHfTokens, TokenizerWithTheTokensChangesNothing) {
  const fs::path dir = hf_tokens_dir("keep");
  const Params enc = write_hf(dir / "hf_enc", 1506, true, 3);
  const Params dec = write_hf(dir / "hf_dec", 1506, false, 4);
  testing::internal::CaptureStderr();
  c3::train::TokenizerSource src;
  c3::cascade::C3Model m = c3::train::build_model(hf_init(dir, chat_source_tokenizer()), &src);
  const std::string log = testing::internal::GetCapturedStderr();
  EXPECT_EQ(log.find("added"), std::string::npos) << log;
  EXPECT_EQ(log.find("grown"), std::string::npos) << log;
  EXPECT_TRUE(src.grown_json.empty());
  EXPECT_EQ(m->tok().vocab_size(), 1506);
  EXPECT_EQ(expect_hf_weights(m->encoder, enc, "encoder"), 0);
  EXPECT_EQ(expect_hf_weights(m->decoder, dec, "decoder"), 0);
  fs::create_directories(dir / "run");
  const std::string run_tok = c3::train::write_run_tokenizer(src, (dir / "run").string());
  EXPECT_EQ(c3::read_file(run_tok), c3::read_file(chat_source_tokenizer()));
}

// Folders that do not fit are refused with the file and the number named.
TEST(TrainHfTokens, FoldersThatDoNotFitAreRefused) {
  const fs::path dir = hf_tokens_dir("bad");
  write_hf(dir / "hf_enc", 1506, true, 5);
  write_hf(dir / "hf_dec", 1506, true, 6);
  auto error = [&](const c3::train::ModelInit& init) -> std::string {
    c3::train::TokenizerSource src;
    try {
      c3::train::build_model(init, &src);
    } catch (const c3::Error& e) {
      return e.what();
    }
    return "";
  };
  auto expect = [](const std::string& msg, const std::vector<std::string>& needles) {
    ASSERT_FALSE(msg.empty()) << "accepted: " << needles[0];
    for (const auto& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << msg;
  };
  // Another architecture.
  auto cfg = nlohmann::json::parse(c3::read_file(dir / "hf_dec" / "config.json"));
  const std::string good_cfg = cfg.dump();
  cfg["model_type"] = "llama";
  cfg["architectures"] = {"LlamaForCausalLM"};
  c3::write_file_atomic(dir / "hf_dec" / "config.json", cfg.dump());
  expect(error(hf_init(dir, chat_source_tokenizer())),
         {(dir / "hf_dec" / "config.json").string(), "\"llama\"", "Qwen2"});
  // A hidden size the weights do not have.
  cfg = nlohmann::json::parse(good_cfg);
  cfg["hidden_size"] = 64;
  c3::write_file_atomic(dir / "hf_dec" / "config.json", cfg.dump());
  expect(error(hf_init(dir, chat_source_tokenizer())),
         {(dir / "hf_dec").string(),
          "model.embed_tokens.weight (expected [1506, 64], got [1506, 32]"});
  // A tokenizer whose ids the embeddings cannot hold.
  cfg = nlohmann::json::parse(good_cfg);
  cfg["vocab_size"] = 1000;
  c3::write_file_atomic(dir / "hf_dec" / "config.json", cfg.dump());
  expect(error(hf_init(dir, chat_source_tokenizer())),
         {chat_source_tokenizer().string(), "1506 tokens", (dir / "hf_dec" / "config.json").string(),
          "vocab_size 1000"});
  // A half given twice.
  c3::write_file_atomic(dir / "hf_dec" / "config.json", good_cfg);
  auto init = hf_init(dir, chat_source_tokenizer());
  init.encoder_config = (dir / "hf_enc" / "config.json").string();
  expect(error(init), {"--encoder-config", "--encoder-hf", "not both"});
}

// A tokenizer.json with HF's tokenizer_config.json beside it (as in a Qwen2.5 folder): the config
// travels into the run and every model folder written from it, with the added tokens in its
// added_tokens_decoder, since transformers' AutoTokenizer needs its tokenizer_class for C3.
TEST(TrainHfTokens, TokenizerConfigTravelsWithTheAddedTokens) {
  const fs::path dir = hf_tokens_dir("config");
  fs::create_directories(dir / "chat");
  fs::rename(write_chat_tokenizer(dir), dir / "chat" / "tokenizer.json");
  c3::write_file_atomic(dir / "chat" / "tokenizer_config.json",
                        R"({"tokenizer_class": "Qwen2Tokenizer", "eos_token": "<|im_end|>",
                            "added_tokens_decoder": {"1501": {"content": "<|im_start|>",
                            "special": true}}})");
  write_hf(dir / "hf_enc", 1503, true, 7);
  write_hf(dir / "hf_dec", 1503, true, 8);
  c3::train::TokenizerSource src;
  testing::internal::CaptureStderr();
  c3::cascade::C3Model m = c3::train::build_model(hf_init(dir, dir / "chat"), &src);
  testing::internal::GetCapturedStderr();
  ASSERT_FALSE(src.grown_config.empty());
  const auto cfg = nlohmann::json::parse(src.grown_config);
  EXPECT_EQ(cfg["tokenizer_class"], "Qwen2Tokenizer");
  EXPECT_EQ(cfg["eos_token"], "<|im_end|>");
  EXPECT_EQ(cfg["added_tokens_decoder"]["1501"]["content"], "<|im_start|>");
  const char* added[] = {"<img>", "</img>", "<imgpad>"};
  for (int k = 0; k < 3; ++k) {
    const auto& t = cfg["added_tokens_decoder"][std::to_string(1503 + k)];
    EXPECT_EQ(t["content"], added[k]);
    EXPECT_EQ(t["special"], true);
    EXPECT_EQ(t["normalized"], false);
  }
  fs::create_directories(dir / "run");
  const std::string run_tok = c3::train::write_run_tokenizer(src, (dir / "run").string());
  EXPECT_EQ(c3::read_file(dir / "run" / "tokenizer_config.json"), src.grown_config);
  // A model folder written from the run (a checkpoint, then an export of it) carries both files.
  c3::cascade::save_c3(m, run_tok, (dir / "ckpt").string(), at::kFloat);
  c3::cascade::LoadedC3 l = c3::cascade::load_c3((dir / "ckpt").string(), at::kFloat, at::kCPU);
  c3::cascade::save_c3(l.model, (dir / "ckpt").string(), (dir / "export").string(), at::kBFloat16);
  for (const char* f : {"ckpt", "export"}) {
    EXPECT_EQ(c3::read_file(dir / f / "tokenizer_config.json"), src.grown_config) << f;
    EXPECT_EQ(c3::read_file(dir / f / "tokenizer.json"), src.grown_json) << f;
  }
}
