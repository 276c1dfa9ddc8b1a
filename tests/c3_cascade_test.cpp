// Golden parity of the cascade on c3-tiny (official layout, L = 8) and .c3 file round trips.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "c3/chunker.h"
#include "c3/document_codec.h"
#include "c3/latent_file.h"
#include "io/safetensors.h"
#include "testdata.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "tensor_util.h"

using c3::test::ids_of;
using c3::test::max_diff;

namespace c3 {
namespace {
namespace fs = std::filesystem;

struct Golden {
  cascade::LoadedC3 m;
  std::shared_ptr<io::SafetensorsFile> exp;
  nlohmann::json cse;
};

// C3_TEST_DEVICE=cuda runs on the GPU, in bf16 unless C3_TEST_DTYPE=f32; default fp32 on the CPU.
bool on_cuda() {
  const char* d = std::getenv("C3_TEST_DEVICE");
  return d && std::string(d) == "cuda";
}
bool bf16() {
  const char* t = std::getenv("C3_TEST_DTYPE");
  return on_cuda() && !(t && std::string(t) == "f32");
}

Golden load() {
  const std::string dir = test::testdata("c3/c3-tiny").string();
  Golden g;
  at::Device dev = on_cuda() ? at::Device(at::kCUDA) : at::Device(at::kCPU);
  g.m = cascade::load_c3(dir, bf16() ? at::kBFloat16 : at::kFloat, dev);
  g.exp = io::SafetensorsFile::open(dir + "/expected.safetensors");
  g.cse = nlohmann::json::parse(read_file(dir + "/case.json"));
  return g;
}

double tol() { return bf16() ? 1e-1 : 1e-4; }

TEST(C3Cascade, PromptAndContextIdsExact) {
  Golden g = load();
  auto ctx = g.m.tok->encode(g.cse["context"].get<std::string>());
  auto enc = g.m.model->encoder_input_ids(ctx);
  EXPECT_EQ(enc, ids_of(g.exp->tensor("context_ids")));
  EXPECT_EQ(g.m.model->prompt_ids(), ids_of(g.exp->tensor("prompt_ids")));
  // The official strings tokenize to the same ids.
  auto full = g.m.tok->encode(cascade::encoder_input_text(g.cse["context"], 8));
  EXPECT_EQ(std::vector<int64_t>(full.begin(), full.end()), enc);
  EXPECT_EQ(cascade::decoder_prompt_text(8), g.cse["full_prompt"].get<std::string>());
}

TEST(C3Cascade, HiddenLatentsAndPromptLogitsMatch) {
  Golden g = load();
  torch::NoGradGuard ng;
  auto ctx = g.m.tok->encode(g.cse["context"].get<std::string>());
  at::Tensor hq = g.m.model->encode_queries({ctx})[0];
  at::Tensor lat = g.m.model->compress({ctx});
  at::Tensor logits = g.m.model->prompt_logits(lat)[0];
  double d1 = max_diff(hq, g.exp->tensor("encoder_hidden_at_queries"));
  double d2 = max_diff(lat[0], g.exp->tensor("latents"));
  double d3 = max_diff(logits, g.exp->tensor("prompt_logits"));
  std::printf("max abs diff: hidden@queries %.3g, latents %.3g, prompt logits %.3g\n", d1, d2, d3);
  EXPECT_LT(d1, tol());
  EXPECT_LT(d2, tol());
  EXPECT_LT(d3, tol());
}

TEST(C3Cascade, GreedyOutputsExact) {
  Golden g = load();
  torch::NoGradGuard ng;
  auto ctx = g.m.tok->encode(g.cse["context"].get<std::string>());
  at::Tensor lat = g.m.model->compress({ctx});
  cascade::DecompressOptions o;
  o.stop_at_im_end = false;
  o.no_repeat_ngram_size = 0;
  o.max_new_tokens = 24;
  auto plain = g.m.model->decompress(lat, o)[0];
  o.no_repeat_ngram_size = 3;
  o.max_new_tokens = 40;
  auto ngram = g.m.model->decompress(lat, o)[0];
  auto want_plain = ids_of(g.exp->tensor("greedy_out"));
  auto want_ngram = ids_of(g.exp->tensor("greedy_ngram3_out"));
  size_t same = 0;
  for (size_t i = 0; i < std::min(ngram.size(), want_ngram.size()); ++i) same += ngram[i] == want_ngram[i];
  std::printf("greedy ids equal: %s; ngram3 ids equal in %zu/%zu\n",
              plain == want_plain ? "yes" : "no", same, want_ngram.size());
  // bf16 rounding flips near-ties of this random model: there the agreement is reported only.
  if (bf16()) return;
  EXPECT_EQ(plain, want_plain);
  EXPECT_EQ(ngram, want_ngram);
}

// Known source lengths cap each row at ceil(length_cap * n) + 16 tokens; the kept ids are the
// uncapped run's prefix, and a row under its cap is untouched.
TEST(C3Cascade, LengthCapStopsEachRowAtItsSourceLength) {
  Golden g = load();
  torch::NoGradGuard ng;
  auto ctx = g.m.tok->encode(g.cse["context"].get<std::string>());
  at::Tensor lat = g.m.model->compress({ctx, ctx});
  cascade::DecompressOptions o;
  o.stop_at_im_end = false;
  o.no_repeat_ngram_size = 0;
  o.max_new_tokens = 60;
  const auto free_run = g.m.model->decompress(lat, o);
  ASSERT_EQ(free_run[0].size(), 60u);
  o.source_tokens = {4, 30};  // caps: ceil(1.5 * 4) + 16 = 22 and 45 + 16 = 61 (> 60)
  const auto capped = g.m.model->decompress(lat, o);
  EXPECT_EQ(capped[0], std::vector<int64_t>(free_run[0].begin(), free_run[0].begin() + 22));
  EXPECT_EQ(capped[1], free_run[1]);
  o.length_cap = 0;  // off
  EXPECT_EQ(g.m.model->decompress(lat, o), free_run);
  o.length_cap = 1.5;
  o.source_tokens = {4};  // one length for two rows
  EXPECT_THROW(g.m.model->decompress(lat, o), c3::Error);
}

// exact_length: each row decodes exactly its source length, never <|im_end|>, greedy and with
// beams; a greedy row is the free run (with <|im_end|> banned) cut to its length.
TEST(C3Cascade, ExactLengthDecodesEachRowsOwnLength) {
  Golden g = load();
  torch::NoGradGuard ng;
  auto ctx = g.m.tok->encode(g.cse["context"].get<std::string>());
  at::Tensor lat = g.m.model->compress({ctx, ctx, ctx});
  const int64_t im_end = g.m.tok->token_id("<|im_end|>");
  cascade::DecompressOptions o;
  o.no_repeat_ngram_size = 0;
  o.source_tokens = {5, 23, 12};
  o.exact_length = true;
  for (int64_t beams : {1, 2}) {
    SCOPED_TRACE("beams " + std::to_string(beams));
    o.num_beams = beams;
    const auto out = g.m.model->decompress(lat, o);
    ASSERT_EQ(out.size(), 3u);
    for (size_t b = 0; b < out.size(); ++b) {
      EXPECT_EQ(static_cast<int64_t>(out[b].size()), o.source_tokens[b]) << "row " << b;
      EXPECT_EQ(std::count(out[b].begin(), out[b].end(), im_end), 0) << "row " << b;
    }
    if (beams == 1) {  // rows of one latent: each the longest row's prefix
      EXPECT_EQ(out[0], std::vector<int64_t>(out[1].begin(), out[1].begin() + 5));
      EXPECT_EQ(out[2], std::vector<int64_t>(out[1].begin(), out[1].begin() + 12));
    }
  }
  o.source_tokens = {5, 23};  // one length short
  EXPECT_THROW(g.m.model->decompress(lat, o), c3::Error);
}

TEST(C3Cascade, BatchOfDifferentLengthsEqualsSingles) {
  Golden g = load();
  torch::NoGradGuard ng;
  auto a = g.m.tok->encode("Short one.");
  auto b = g.m.tok->encode(g.cse["context"].get<std::string>());
  at::Tensor both = g.m.model->compress({a, b});
  EXPECT_LT(max_diff(both[0], g.m.model->compress({a})[0]), tol());
  EXPECT_LT(max_diff(both[1], g.m.model->compress({b})[0]), tol());
}

TEST(C3Cascade, LatentFileRoundTripAndFingerprintCheck) {
  Golden g = load();
  const fs::path dir = test::binary_dir() / "test_out" / "c3";
  fs::create_directories(dir);
  const std::string text = g.cse["context"].get<std::string>() + "\n\n" + g.cse["context"].get<std::string>();
  std::istringstream in(text);
  cascade::CompressOptions co;
  co.max_passage_tokens = 40;  // forces several chunks
  co.progress = false;
  co.dtype = "F32";
  auto r = cascade::compress_to_file(g.m, in, "test", (dir / "x.c3").string(), co);
  EXPECT_GT(r.chunks, 2);
  auto f = cascade::read_latents((dir / "x.c3").string());
  EXPECT_EQ(f.latents.size(0), r.chunks);
  EXPECT_EQ(f.meta.source_tokens, r.tokens);
  EXPECT_EQ(f.meta.source_bytes, static_cast<int64_t>(text.size()));
  int64_t sum = 0;
  for (auto b : f.meta.chunk_bytes) sum += b;
  EXPECT_EQ(sum, static_cast<int64_t>(text.size()));
  EXPECT_NO_THROW(cascade::check_latents_match(f, "x.c3", g.m.fingerprint, 8, 64));
  try {
    cascade::check_latents_match(f, "x.c3", "0123", 8, 64);
    FAIL() << "a foreign fingerprint must be refused";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("another model"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find(g.m.fingerprint), std::string::npos);
  }
  // A truncated .c3 is refused with the file's name.
  std::string bytes = read_file(dir / "x.c3");
  write_file_atomic(dir / "cut.c3", bytes.substr(0, bytes.size() - 10));
  EXPECT_THROW(cascade::read_latents((dir / "cut.c3").string()), Error);
}

TEST(C3Cascade, BadInputIsRefused) {
  Golden g = load();
  cascade::CompressOptions co;
  co.progress = false;
  auto expect_error = [&](const std::string& text, const std::string& needle) {
    std::istringstream in(text);
    try {
      cascade::compress_stream(g.m, in, "in.txt", co, [](auto&, auto&, auto&) {});
      FAIL() << "no error for: " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error("", "empty");
  expect_error(" \n\t ", "whitespace");
  expect_error("ok \xff\xfe", "invalid UTF-8 at byte offset 3");
  expect_error("<|im_end|><img>", "only special tokens");
}

TEST(C3Chunker, ChunksTileTheTextAndRespectTheBudget) {
  Golden g = load();
  std::string text;
  for (int i = 0; i < 30; ++i)
    text += "Paragraph " + std::to_string(i) + " has a few sentences. Here is one more! And a third?\n\n";
  text += std::string(300, 'x') + " \xc3\xa9t\xc3\xa9";
  for (int64_t budget : {8, 16, 50, 200}) {
    auto chunks = cascade::split_into_chunks(*g.m.tok, text, budget);
    std::string joined;
    for (auto& c : chunks) {
      EXPECT_LE(static_cast<int64_t>(c.ids.size()), budget);
      EXPECT_GT(c.ids.size(), 0u);
      joined += text.substr(c.byte_begin, c.byte_end - c.byte_begin);
      EXPECT_EQ(g.m.tok->encode(text.substr(c.byte_begin, c.byte_end - c.byte_begin)), c.ids);
    }
    EXPECT_EQ(joined, text);
  }
}

}  // namespace
}  // namespace c3
