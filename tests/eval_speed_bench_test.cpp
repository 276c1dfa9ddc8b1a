// Tests of the speed bench on a tiny random-init cascade: every row present and sane (no timings).
#include <gtest/gtest.h>

#include <cmath>

#include "eval/speed_bench.h"
#include "testdata.h"

namespace c3::eval {
namespace {

model::Qwen2Config tiny_qwen2(int64_t hidden, int64_t layers) {
  model::Qwen2Config c;
  c.vocab_size = 64;  // grown to the tokenizer's vocabulary by random_init_cascade
  c.hidden_size = hidden;
  c.intermediate_size = 2 * hidden;
  c.num_hidden_layers = layers;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.max_position_embeddings = 512;
  c.tie_word_embeddings = true;
  return c;
}

cascade::C3Model tiny_cascade(at::ScalarType dtype = at::kFloat) {
  const std::string tok = test::testdata("c3/c3-tiny/tokenizer.json").string();
  return random_init_cascade(tiny_qwen2(32, 2), tiny_qwen2(48, 2), 4, tok, dtype, at::kCPU);
}

TEST(SpeedBench, MedianOfOddAndEvenCounts) {
  EXPECT_DOUBLE_EQ(median({3, 1, 2}), 2);
  EXPECT_DOUBLE_EQ(median({4, 1, 2, 3}), 2.5);
}

TEST(SpeedBench, RandomInitBuildsInTheTargetDtypeAndKeepsTheDefault) {
  const auto before = c10::get_default_dtype();
  cascade::C3Model m = tiny_cascade(at::kBFloat16);
  for (const auto& p : m->parameters()) EXPECT_EQ(p.scalar_type(), at::kBFloat16);
  EXPECT_EQ(c10::get_default_dtype(), before);
  EXPECT_GE(m->config.decoder.vocab_size, m->tok().vocab_size());
}

TEST(SpeedBench, EveryRowIsPresentAndSane) {
  cascade::C3Model m = tiny_cascade();
  SpeedBenchOptions o;
  o.batch = 3;
  o.passage_tokens = 24;
  o.new_tokens = 5;
  o.repeats = 2;
  o.warmup = 1;
  BenchReport r = run_speed_bench(m, o, {{"model", "tiny"}});
  // Per batch (1 and 3): compress, prefill, decompress with ngram 0 and 20.
  ASSERT_EQ(r.rows.size(), 8u);
  int n_decompress = 0;
  for (const auto& row : r.rows) {
    SCOPED_TRACE(row.step + " batch " + std::to_string(row.batch));
    EXPECT_TRUE(row.batch == 1 || row.batch == 3);
    EXPECT_GT(row.seconds, 0);
    EXPECT_LE(row.min_seconds, row.seconds);
    EXPECT_TRUE(std::isfinite(row.tokens_per_s) && row.tokens_per_s > 0);
    EXPECT_NEAR(row.passages_per_s, row.batch / row.seconds, 1e-6 * row.passages_per_s);
    if (row.step == "compress") {
      EXPECT_NEAR(row.tokens_per_s, row.passages_per_s * 24, 1e-6 * row.tokens_per_s);
    }
    if (row.step == "decompress") {
      ++n_decompress;
      EXPECT_NEAR(row.tokens_per_s, row.passages_per_s * 5, 1e-6 * row.tokens_per_s);
      EXPECT_TRUE(row.ngram == 0 || row.ngram == 20);
    }
    EXPECT_EQ(row.peak_bytes, -1);  // CPU
  }
  EXPECT_EQ(n_decompress, 4);
  EXPECT_GT(r.max_rss_bytes, 0);
  EXPECT_GT(r.encoder_flops_per_token, 0);
  EXPECT_GT(r.decoder_bytes_per_step, 0);
  EXPECT_GT(r.decode_floor_tokens_per_s(), 0);

  nlohmann::json j = bench_report_json(r);
  EXPECT_EQ(j["meta"]["model"], "tiny");
  EXPECT_EQ(j["meta"]["latents"], 4);
  EXPECT_EQ(j["rows"].size(), 8u);
  EXPECT_TRUE(j["rows"][0].contains("tokens_per_s"));
  EXPECT_TRUE(j["limits"].contains("decode_tokens_per_s_batch1"));
  const std::string table = render_bench_table(r);
  EXPECT_NE(table.find("decompress"), std::string::npos);
  // On the CPU no card is detected: the H200's figures are assumed, and the report says so.
  EXPECT_EQ(j["limits"]["card"], "unknown");
  EXPECT_EQ(j["limits"]["known"], false);
  EXPECT_NE(table.find("no CUDA device: assumed 989 TFLOP/s"), std::string::npos);
  EXPECT_DOUBLE_EQ(r.compress_limit_tokens_per_s(), 989e12 / r.encoder_flops_per_token);
  // The ban's cost: one entry per batch for ngram 20 against ngram 0, from paired calls.
  ASSERT_EQ(r.ban_costs.size(), 2u);
  for (const auto& c : r.ban_costs) {
    EXPECT_EQ(c.ngram, 20);
    EXPECT_TRUE(c.batch == 1 || c.batch == 3);
    EXPECT_TRUE(std::isfinite(c.median_ratio_minus_1) && c.median_ratio_minus_1 > -1.0);
  }
  EXPECT_EQ(j["ban_costs"].size(), 2u);
  EXPECT_NE(table.find("n-gram ban 20 at batch 1"), std::string::npos);
}

TEST(DeviceLimits, NamesMapToTheirCardsFigures) {
  const PhysicalLimits h200 = limits_for_device("NVIDIA H200");
  EXPECT_TRUE(h200.known);
  EXPECT_EQ(h200.card, "H200");
  EXPECT_DOUBLE_EQ(h200.flops, 989e12);
  EXPECT_DOUBLE_EQ(h200.bandwidth, 4.8e12);
  EXPECT_EQ(h200.describe(), "H200: 989 TFLOP/s dense bf16, 4.8 TB/s");

  const PhysicalLimits sxm = limits_for_device("NVIDIA H100 80GB HBM3");  // as the runtime says
  EXPECT_EQ(sxm.card, "H100 SXM");
  EXPECT_DOUBLE_EQ(sxm.flops, 989e12);
  EXPECT_DOUBLE_EQ(sxm.bandwidth, 3.35e12);
  EXPECT_EQ(limits_for_device("nvidia h100 sxm5").card, "H100 SXM");  // case does not matter

  const PhysicalLimits pcie = limits_for_device("NVIDIA H100 PCIe");
  EXPECT_EQ(pcie.card, "H100 PCIe");
  EXPECT_DOUBLE_EQ(pcie.flops, 756e12);
  EXPECT_DOUBLE_EQ(pcie.bandwidth, 2.0e12);
}

TEST(DeviceLimits, UnknownCardsSayWhatTheyAssume) {
  for (const char* name : {"NVIDIA A100-SXM4-80GB", "NVIDIA H200 NVL", "NVIDIA H100 NVL", ""}) {
    const PhysicalLimits l = limits_for_device(name);
    EXPECT_FALSE(l.known) << name;
    EXPECT_EQ(l.card, "unknown") << name;
    EXPECT_DOUBLE_EQ(l.flops, 989e12) << name;
    EXPECT_DOUBLE_EQ(l.bandwidth, 4.8e12) << name;
  }
  EXPECT_EQ(limits_for_device("NVIDIA A100-SXM4-80GB").describe(),
            "unknown card 'NVIDIA A100-SXM4-80GB': assumed 989 TFLOP/s dense bf16, 4.8 TB/s (an H200's)");
  EXPECT_EQ(limits_for_device("").describe(),
            "no CUDA device: assumed 989 TFLOP/s dense bf16, 4.8 TB/s (an H200's)");
  EXPECT_EQ(cuda_device_name(at::kCPU), "");
}

TEST(SpeedBench, DumpIdsGivesTheInputsAndAtMostMaxNewTokens) {
  cascade::C3Model m = tiny_cascade();
  nlohmann::json j = dump_greedy_ids(m, "hello world", 6, 20);
  EXPECT_EQ(j["latent_len"], 4);
  EXPECT_LE(j["output_ids"].size(), 6u);
  EXPECT_EQ(j["encoder_input_ids"].size(), j["context_ids"].size() + 4 + 2);
  EXPECT_EQ(j["prompt_ids"].size(), m->prompt_ids().size());
}

}  // namespace
}  // namespace c3::eval
