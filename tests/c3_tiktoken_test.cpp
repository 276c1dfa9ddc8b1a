// A C3 checkpoint whose tokenizer is a qwen.tiktoken, laid out as the release's: c3-tiny's 1,500
// BPE tokens as ranks, QWenTokenizer's 217 special tokens after them, and the embedding rows
// moved to the new ids. Loaded through load_c3, it must give c3-tiny's golden ids (mapped),
// latents, logits and greedy outputs.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <map>

#include <nlohmann/json.hpp>

#include "c3/c3_model.h"
#include "io/safetensors.h"
#include "testdata.h"
#include "tokenizer/tokenizer_files.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/hash.h"
#include "util/remove_tree.h"
#include "tensor_util.h"

using c3::test::ids_of;

namespace c3 {
namespace {
namespace fs = std::filesystem;

constexpr int64_t kRanks = 1500, kSpecial = 217, kVocab = kRanks + kSpecial;

std::string base64(const std::string& bytes) {
  static const char* a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (size_t i = 0; i < bytes.size(); i += 3) {
    uint32_t v = uint32_t(uint8_t(bytes[i])) << 16;
    if (i + 1 < bytes.size()) v |= uint32_t(uint8_t(bytes[i + 1])) << 8;
    if (i + 2 < bytes.size()) v |= uint32_t(uint8_t(bytes[i + 2]));
    out += a[v >> 18];
    out += a[(v >> 12) & 63];
    out += i + 1 < bytes.size() ? a[(v >> 6) & 63] : '=';
    out += i + 2 < bytes.size() ? a[v & 63] : '=';
  }
  return out;
}

// c3-tiny id -> id in the tiktoken layout: BPE tokens and <|endoftext|> <|im_start|> <|im_end|>
// keep theirs; <img> </img> <imgpad> (1503..1505) move to the end of QWenTokenizer's list.
int64_t new_id(int64_t old) { return old < 1503 ? old : old - 1503 + kVocab - 3; }

std::vector<int64_t> mapped(std::vector<int64_t> ids) {
  for (auto& i : ids) i = new_id(i);
  return ids;
}

// Writes the tiktoken-layout checkpoint of c3-tiny into `dir`.
void write_tiktoken_checkpoint(const cascade::LoadedC3& tiny, const fs::path& dir) {
  const fs::path tok_dir = dir.parent_path() / (dir.filename().string() + "-tokenizer");
  fs::create_directories(tok_dir);
  std::string ranks;
  for (int32_t id = 0; id < kRanks; ++id) {
    ASSERT_FALSE(tiny.tok->is_special(id));
    ranks += base64(std::string(tiny.tok->token_bytes(id))) + " " + std::to_string(id) + "\n";
  }
  write_file_atomic(tok_dir / "qwen.tiktoken", ranks);
  write_file_atomic(tok_dir / "tokenizer_config.json",
                    R"({"model_max_length": 8192, "tokenizer_class": "QWenTokenizer", )"
                    R"("auto_map": {"AutoTokenizer": ["tokenization_qwen.QWenTokenizer", null]}})");
  write_file_atomic(tok_dir / "tokenization_qwen.py", "# QWenTokenizer's code travels along\n");
  auto tok = std::make_shared<tokenizer::BpeTokenizer>(
      tokenizer::BpeTokenizer::from_tiktoken((tok_dir / "qwen.tiktoken").string()));

  cascade::C3Config cfg = tiny.model->config;
  cfg.encoder.vocab_size = cfg.decoder.vocab_size = kVocab;
  cfg.im_start_token = new_id(cfg.im_start_token);
  cfg.im_end_token = new_id(cfg.im_end_token);
  cfg.im_patch_token = new_id(cfg.im_patch_token);
  cascade::C3Model m(cfg, tok);
  torch::NoGradGuard ng;
  auto old = tiny.model->named_parameters();
  for (auto& p : m->named_parameters()) {
    const at::Tensor& src = old[p.key()];
    if (src.sizes() == p.value().sizes()) {
      p.value().copy_(src);
      continue;
    }
    ASSERT_EQ(src.size(0), kRanks + 6) << p.key();
    // Rows of the special tokens c3-tiny lacks: the mean, as transformers' resize would.
    p.value().copy_(src.mean(0).expand_as(p.value()));
    for (int64_t i = 0; i < src.size(0); ++i) p.value()[new_id(i)].copy_(src[i]);
  }
  cascade::save_c3(m, (tok_dir / "qwen.tiktoken").string(), dir.string(), at::kFloat);
}

class C3Tiktoken : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = test::binary_dir() / "test_out" / "c3_tiktoken" / std::to_string(::getpid());
    remove_tree(dir_);
    fs::create_directories(dir_);
    const std::string golden = test::testdata("c3/c3-tiny").string();
    tiny_ = new cascade::LoadedC3(cascade::load_c3(golden, at::kFloat, at::kCPU));
    write_tiktoken_checkpoint(*tiny_, dir_ / "ckpt");
  }
  static void TearDownTestSuite() {
    delete tiny_;
    remove_tree(dir_);
  }
  static fs::path dir_;
  static cascade::LoadedC3* tiny_;
};
fs::path C3Tiktoken::dir_;
cascade::LoadedC3* C3Tiktoken::tiny_ = nullptr;

TEST_F(C3Tiktoken, LoadsAndMatchesTheGoldenCase) {
  const fs::path ckpt = dir_ / "ckpt";
  ASSERT_FALSE(fs::exists(ckpt / "tokenizer.json"));
  ASSERT_TRUE(fs::exists(ckpt / "qwen.tiktoken"));
  ASSERT_TRUE(fs::exists(ckpt / "tokenization_qwen.py"));
  cascade::LoadedC3 m = cascade::load_c3(ckpt.string(), at::kFloat, at::kCPU);
  EXPECT_EQ(m.tok->file_hash(), hash_hex(read_file(ckpt / "qwen.tiktoken")));
  EXPECT_EQ(m.tok->token_id("<imgpad>"), kVocab - 1);

  const std::string golden = test::testdata("c3/c3-tiny").string();
  auto exp = io::SafetensorsFile::open(golden + "/expected.safetensors");
  auto cse = nlohmann::json::parse(read_file(golden + "/case.json"));
  torch::NoGradGuard ng;
  auto ctx = m.tok->encode(cse["context"].get<std::string>());
  EXPECT_EQ(m.model->encoder_input_ids(ctx), mapped(ids_of(exp->tensor("context_ids"))));
  EXPECT_EQ(m.model->prompt_ids(), mapped(ids_of(exp->tensor("prompt_ids"))));

  at::Tensor lat = m.model->compress({ctx});
  const at::Tensor cols = at::tensor(mapped([] {
    std::vector<int64_t> v(kRanks + 6);
    for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<int64_t>(i);
    return v;
  }()));
  at::Tensor logits = m.model->prompt_logits(lat)[0].index_select(1, cols);
  const double d_lat = (lat[0] - exp->tensor("latents")).abs().max().item<double>();
  const double d_log = (logits - exp->tensor("prompt_logits")).abs().max().item<double>();
  std::printf("max abs diff: latents %.3g, prompt logits %.3g\n", d_lat, d_log);
  EXPECT_LT(d_lat, 1e-4);
  EXPECT_LT(d_log, 1e-4);

  cascade::DecompressOptions o;
  o.stop_at_im_end = false;
  o.no_repeat_ngram_size = 0;
  o.max_new_tokens = 24;
  EXPECT_EQ(m.model->decompress(lat, o)[0], mapped(ids_of(exp->tensor("greedy_out"))));
  o.no_repeat_ngram_size = 3;
  o.max_new_tokens = 40;
  EXPECT_EQ(m.model->decompress(lat, o)[0], mapped(ids_of(exp->tensor("greedy_ngram3_out"))));
}

// Export carries the tokenizer files as they are; with a converted tokenizer.json beside them
// the folder still reads qwen.tiktoken (its tokenizer_config.json names QWenTokenizer).
TEST_F(C3Tiktoken, ExportCarriesTheTokenizerFiles) {
  const fs::path ckpt = dir_ / "ckpt", out = dir_ / "export";
  cascade::LoadedC3 m = cascade::load_c3(ckpt.string(), at::kFloat, at::kCPU);
  cascade::save_c3(m.model, ckpt.string(), out.string(), at::kBFloat16);
  for (const char* f : {"qwen.tiktoken", "tokenizer_config.json", "tokenization_qwen.py"})
    EXPECT_EQ(read_file(out / f), read_file(ckpt / f)) << f;
  EXPECT_FALSE(fs::exists(out / "tokenizer.json"));

  write_file_atomic(out / "tokenizer.json", read_file(test::testdata("c3/c3-tiny/tokenizer.json")));
  cascade::LoadedC3 again = cascade::load_c3(out.string(), at::kFloat, at::kCPU);
  EXPECT_EQ(again.tok->origin(), (out / "qwen.tiktoken").string());
  EXPECT_EQ(again.tok->token_id("<img>"), kVocab - 3);
}

// Embeddings smaller than the tokenizer are refused, naming the tokenizer file and the numbers.
TEST_F(C3Tiktoken, VocabularyLargerThanTheEmbeddingsIsRefused) {
  cascade::C3Config cfg = tiny_->model->config;
  cfg.im_start_token = new_id(cfg.im_start_token);
  cfg.im_end_token = new_id(cfg.im_end_token);
  cfg.im_patch_token = new_id(cfg.im_patch_token);
  cfg.decoder.vocab_size = kVocab;
  cfg.encoder.vocab_size = 1600;
  auto tok = std::make_shared<tokenizer::BpeTokenizer>(
      tokenizer::load_tokenizer((dir_ / "ckpt").string()));
  try {
    cascade::C3Model m(cfg, tok);
    FAIL() << "a 1,600-row encoder embedding was accepted for 1,717 tokens";
  } catch (const Error& e) {
    const std::string msg = e.what();
    for (const char* needle : {"qwen.tiktoken has 1717 tokens", "encoder", "vocab_size is 1600"})
      EXPECT_NE(msg.find(needle), std::string::npos) << msg;
  }
}

}  // namespace
}  // namespace c3
