// Generation against the golden HF ids (library and `c3 generate`), and the sampler on synthetic
// logits: n-gram ban semantics, top-k / top-p support, seed determinism, stop tokens.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>

#include <nlohmann/json.hpp>

#include <map>
#include <set>

#include "model/generate.h"
#include "model/sampler.h"
#include "model_golden.h"

namespace c3::test {
namespace {

using model::GenerationConfig;
using model::Prompt;

std::string join(const std::vector<int64_t>& ids) {
  std::string s;
  for (size_t i = 0; i < ids.size(); ++i) s += (i ? "," : "") + std::to_string(ids[i]);
  return s;
}

// Runs `c3 generate` and parses the JSON array it prints.
std::vector<int64_t> cli_generate(const std::string& dir, const std::vector<int64_t>& prompt,
                                  int64_t n, int64_t ngram) {
  const std::string bin = c3_binary();
  if (bin.empty()) return {};
  const std::string cmd = bin + " generate --model " + dir + " --ids " + join(prompt) +
                          " --max-new-tokens " + std::to_string(n) +
                          (ngram ? " --no-repeat-ngram " + std::to_string(ngram) : "");
  const CommandResult r = run_command(cmd);
  EXPECT_EQ(r.status, 0) << cmd << "\n" << r.output;
  try {
    return nlohmann::json::parse(r.output).get<std::vector<int64_t>>();
  } catch (const std::exception& e) {
    ADD_FAILURE() << cmd << " printed no JSON array: " << r.output;
    return {};
  }
}

class GenerateGolden : public testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    model_ = model::load_qwen2(golden_dir(GetParam()), at::kFloat, at::kCPU);
    expected_ = expected(GetParam());
  }
  model::Qwen2ForCausalLM model_{nullptr};
  std::shared_ptr<io::SafetensorsFile> expected_;
};

TEST_P(GenerateGolden, GreedyLibrary) {
  GenerationConfig cfg;
  cfg.max_new_tokens = 16;
  const auto out = model::generate(model_, {{to_ids(expected_->tensor("greedy_prompt")), {}}}, cfg);
  EXPECT_EQ(out[0], to_ids(expected_->tensor("greedy_out")));
}

TEST_P(GenerateGolden, NoRepeatNgram3Library) {
  GenerationConfig cfg;
  cfg.max_new_tokens = 40;
  cfg.no_repeat_ngram_size = 3;
  const auto out = model::generate(model_, {{to_ids(expected_->tensor("ngram3_prompt")), {}}}, cfg);
  EXPECT_EQ(out[0], to_ids(expected_->tensor("ngram3_out")));
}

// Prompts given as embeddings (the cascade's path) generate the same ids.
TEST_P(GenerateGolden, EmbeddingPromptMatchesIds) {
  torch::NoGradGuard no_grad;
  const auto ids = to_ids(expected_->tensor("ngram3_prompt"));
  const at::Tensor embeds = model_->embed(at::tensor(ids, at::kLong));  // [T, C]
  GenerationConfig cfg;
  cfg.max_new_tokens = 40;
  cfg.no_repeat_ngram_size = 3;
  const auto out = model::generate(model_, {{ids, embeds}}, cfg);
  EXPECT_EQ(out[0], to_ids(expected_->tensor("ngram3_out")));
}

// Both golden prompts in one left-padded batch, each row as alone.
TEST_P(GenerateGolden, BatchOfDifferentLengths) {
  GenerationConfig cfg;
  cfg.max_new_tokens = 16;
  cfg.no_repeat_ngram_size = 3;
  const std::vector<Prompt> prompts = {{to_ids(expected_->tensor("greedy_prompt")), {}},
                                       {to_ids(expected_->tensor("ngram3_prompt")), {}}};
  const auto together = model::generate(model_, prompts, cfg);
  const auto ngram_out = to_ids(expected_->tensor("ngram3_out"));
  EXPECT_EQ(together[1], std::vector<int64_t>(ngram_out.begin(), ngram_out.begin() + 16));
  EXPECT_EQ(together[0], model::generate(model_, {prompts[0]}, cfg)[0]);
}

// Each row stops on its own stop token, which is not returned; the other row runs on.
TEST_P(GenerateGolden, RowsStopIndependently) {
  GenerationConfig cfg;
  cfg.max_new_tokens = 40;
  cfg.no_repeat_ngram_size = 3;
  const auto full = to_ids(expected_->tensor("ngram3_out"));
  // Stop at the first occurrence of the 6th generated token.
  const int64_t stop = full[5];
  const size_t cut = std::find(full.begin(), full.end(), stop) - full.begin();
  cfg.stop_tokens = {stop};
  const std::vector<Prompt> prompts = {{to_ids(expected_->tensor("ngram3_prompt")), {}},
                                       {to_ids(expected_->tensor("greedy_prompt")), {}}};
  int64_t steps = 0;
  const auto out = model::generate(model_, prompts, cfg, [&](int64_t) { ++steps; });
  EXPECT_EQ(out[0], std::vector<int64_t>(full.begin(), full.begin() + cut));
  GenerationConfig alone = cfg;
  EXPECT_EQ(out[1], model::generate(model_, {prompts[1]}, alone)[0]);
  EXPECT_GT(steps, 0);
}

// A banned token never comes out, on every decode path (dynamic, static cache, beams): where the
// golden greedy output first emits it, the row takes its next-best token instead, and the ids
// before that point stay the golden ones.
TEST_P(GenerateGolden, BannedTokensNeverComeOut) {
  const auto golden = to_ids(expected_->tensor("greedy_out"));
  const int64_t banned = golden.at(3);
  const size_t first = std::find(golden.begin(), golden.end(), banned) - golden.begin();
  const Prompt prompt{to_ids(expected_->tensor("greedy_prompt")), {}};
  for (const char* path : {"dynamic", "static", "beams"}) {
    SCOPED_TRACE(path);
    GenerationConfig cfg;
    cfg.max_new_tokens = static_cast<int64_t>(golden.size());
    cfg.banned_tokens = {banned};
    cfg.auto_static_cache = false;
    cfg.static_cache = std::string(path) == "static";
    cfg.num_beams = std::string(path) == "beams" ? 2 : 1;
    const auto out = model::generate(model_, {prompt}, cfg)[0];
    EXPECT_EQ(std::count(out.begin(), out.end(), banned), 0);
    EXPECT_EQ(out.size(), golden.size());
    if (cfg.num_beams == 1) {
      ASSERT_GT(out.size(), first);
      EXPECT_EQ(std::vector<int64_t>(out.begin(), out.begin() + first),
                std::vector<int64_t>(golden.begin(), golden.begin() + first));
      EXPECT_NE(out[first], banned);
    }
  }
}

// The static-cache decode loop (the one CUDA graphs replay) gives the golden ids too: greedy,
// the n-gram ban, and a ragged batch whose rows stop at different steps.
TEST_P(GenerateGolden, StaticCacheGivesTheSameIds) {
  GenerationConfig cfg;
  cfg.auto_static_cache = false;
  cfg.static_cache = true;
  cfg.max_new_tokens = 16;
  EXPECT_EQ(model::generate(model_, {{to_ids(expected_->tensor("greedy_prompt")), {}}}, cfg)[0],
            to_ids(expected_->tensor("greedy_out")));
  cfg.max_new_tokens = 40;
  cfg.no_repeat_ngram_size = 3;
  const auto full = to_ids(expected_->tensor("ngram3_out"));
  EXPECT_EQ(model::generate(model_, {{to_ids(expected_->tensor("ngram3_prompt")), {}}}, cfg)[0],
            full);
  const int64_t stop = full[5];
  const size_t cut = std::find(full.begin(), full.end(), stop) - full.begin();
  cfg.stop_tokens = {stop};
  const std::vector<Prompt> prompts = {{to_ids(expected_->tensor("ngram3_prompt")), {}},
                                       {to_ids(expected_->tensor("greedy_prompt")), {}}};
  int64_t steps = 0, last_running = -1;
  const auto out = model::generate(model_, prompts, cfg, [&](int64_t running) {
    ++steps;
    last_running = running;
  });
  EXPECT_EQ(out[0], std::vector<int64_t>(full.begin(), full.begin() + cut));
  GenerationConfig dynamic = cfg;
  dynamic.static_cache = false;
  EXPECT_EQ(out[1], model::generate(model_, {prompts[1]}, dynamic)[0]);
  EXPECT_EQ(out, model::generate(model_, prompts, dynamic));
  EXPECT_GT(steps, static_cast<int64_t>(cut));
  EXPECT_GE(last_running, 0);
}

TEST_P(GenerateGolden, GreedyCli) {
  const auto out = cli_generate(golden_dir(GetParam()), to_ids(expected_->tensor("greedy_prompt")),
                                16, 0);
  EXPECT_EQ(out, to_ids(expected_->tensor("greedy_out")));
}

TEST_P(GenerateGolden, NoRepeatNgram3Cli) {
  const auto out = cli_generate(golden_dir(GetParam()), to_ids(expected_->tensor("ngram3_prompt")),
                                40, 3);
  EXPECT_EQ(out, to_ids(expected_->tensor("ngram3_out")));
}

INSTANTIATE_TEST_SUITE_P(Qwen2, GenerateGolden, testing::ValuesIn(golden_models()), param_name);

// ---------------------------------------------------------------------------------------------
// CLI bad input: one line, non-zero exit, naming the problem.

TEST(GenerateCli, RejectsBadInput) {
  const std::string bin = c3_binary();
  if (bin.empty()) return;
  const std::string dir = golden_dir("qwen2-tied-gqa");
  struct Case {
    std::string args, needle;
  };
  const std::vector<Case> cases = {
      {"--model " + dir + " --ids 1,x,3 --max-new-tokens 2", "'x'"},
      {"--model " + dir + " --ids 1,512 --max-new-tokens 2", "512"},
      {"--model " + dir + " --ids 1,-3 --max-new-tokens 2", "-3"},
      {"--model " + dir + " --ids '' --max-new-tokens 2", "--ids"},
      {"--model /nonexistent/c3-model --ids 1,2 --max-new-tokens 2", "/nonexistent/c3-model"},
      {"--model " + dir + " --ids 1,2 --max-new-tokens 2 --dtype f64", "f64"},
  };
  for (const auto& c : cases) {
    const CommandResult r = run_command(bin + " generate " + c.args);
    EXPECT_NE(r.status, 0) << c.args;
    EXPECT_NE(r.output.find(c.needle), std::string::npos) << c.args << "\n" << r.output;
    EXPECT_EQ(r.output.find("terminate called"), std::string::npos) << r.output;
  }
}

// ---------------------------------------------------------------------------------------------
// Sampler on synthetic data.

// HF's _get_ngrams / _calc_banned_ngram_tokens, rebuilt from scratch for every step.
std::vector<int64_t> hf_banned(const std::vector<int64_t>& seq, int64_t n) {
  const int64_t L = static_cast<int64_t>(seq.size());
  if (L + 1 < n) return {};
  std::map<std::vector<int64_t>, std::vector<int64_t>> table;
  for (int64_t i = 0; i + n <= L; ++i) {
    table[std::vector<int64_t>(seq.begin() + i, seq.begin() + i + n - 1)].push_back(seq[i + n - 1]);
  }
  const std::vector<int64_t> prefix(seq.end() - (n - 1), seq.end());
  std::set<int64_t> s(table[prefix].begin(), table[prefix].end());
  return std::vector<int64_t>(s.begin(), s.end());
}

TEST(Sampler, NgramBanMatchesHFOnRandomSequences) {
  std::mt19937_64 rng(1);
  for (int64_t n : {1, 2, 3, 4, 20}) {
    for (int trial = 0; trial < 20; ++trial) {
      std::vector<int64_t> prompt;
      const int64_t P = rng() % 6;
      for (int64_t i = 0; i < P; ++i) prompt.push_back(rng() % 4);
      model::NgramBan ban(n, prompt);
      std::vector<int64_t> seq = prompt;
      for (int step = 0; step < 60; ++step) {
        ASSERT_EQ(ban.banned(), hf_banned(seq, n)) << "n=" << n << " step " << step;
        const int64_t id = rng() % 4;
        ban.push(id);
        seq.push_back(id);
      }
    }
  }
}

TEST(Sampler, NgramBanExamples) {
  // 1 2 3 1 2 -> the trigram "1 2 3" exists, so 3 is banned after "1 2".
  model::NgramBan ban(3, {1, 2, 3, 1, 2});
  EXPECT_EQ(ban.banned(), std::vector<int64_t>({3}));
  ban.push(4);  // ... 1 2 4: "2 4" never seen before
  EXPECT_TRUE(ban.banned().empty());
  // Too short to ban anything (HF: cur_len + 1 < n).
  EXPECT_TRUE(model::NgramBan(3, {5}).banned().empty());
  // n = 1 bans every id seen.
  EXPECT_EQ(model::NgramBan(1, {7, 5, 7}).banned(), std::vector<int64_t>({5, 7}));
}

TEST(Sampler, BanTokensSetsMinusInfinity) {
  at::Tensor logits = at::zeros({2, 5});
  model::ban_tokens(logits, {{1, 3}, {}});
  EXPECT_TRUE(std::isinf(logits[0][1].item<float>()));
  EXPECT_TRUE(std::isinf(logits[0][3].item<float>()));
  EXPECT_EQ(logits[1].abs().sum().item<float>(), 0.0f);
  std::mt19937_64 rng(0);
  // Greedy never picks a banned id even when it had the largest logit.
  at::Tensor l2 = at::tensor({0.f, 9.f, 1.f}).view({1, 3});
  model::ban_tokens(l2, {{1}});
  EXPECT_EQ(model::sample(l2, {}, rng)[0].item<int64_t>(), 2);
}

TEST(Sampler, GreedyPicksFirstMaximum) {
  const std::vector<float> x = {0.f, 3.f, 1.f, 3.f};
  std::mt19937_64 rng(0);
  EXPECT_EQ(model::sample_row(x.data(), 4, {}, rng), 1);
}

TEST(Sampler, TopKAndTopPSupport) {
  // probabilities ~ 0.5, 0.25, 0.125, 0.0625, 0.0625 (logits = log p)
  const std::vector<float> x = {std::log(0.5f), std::log(0.25f), std::log(0.125f),
                                std::log(0.0625f), std::log(0.0625f)};
  std::mt19937_64 rng(42);
  std::set<int64_t> seen_k, seen_p, seen_all;
  for (int i = 0; i < 4000; ++i) {
    seen_k.insert(model::sample_row(x.data(), 5, {1.0, 2, 1.0}, rng));
    seen_p.insert(model::sample_row(x.data(), 5, {1.0, 0, 0.7}, rng));  // 0.5 + 0.25 >= 0.7
    seen_all.insert(model::sample_row(x.data(), 5, {1.0, 0, 1.0}, rng));
  }
  EXPECT_EQ(seen_k, std::set<int64_t>({0, 1}));
  EXPECT_EQ(seen_p, std::set<int64_t>({0, 1}));
  EXPECT_EQ(seen_all, std::set<int64_t>({0, 1, 2, 3, 4}));
  // top_p small keeps only the most likely token; top_k = 1 is greedy.
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(model::sample_row(x.data(), 5, {1.0, 0, 0.1}, rng), 0);
    EXPECT_EQ(model::sample_row(x.data(), 5, {5.0, 1, 1.0}, rng), 0);
  }
}

TEST(Sampler, FrequenciesFollowTemperature) {
  const std::vector<float> x = {0.f, std::log(3.f)};  // p = 0.25, 0.75 at T = 1
  std::mt19937_64 rng(3);
  int ones = 0;
  const int n = 20000;
  for (int i = 0; i < n; ++i) ones += model::sample_row(x.data(), 2, {1.0, 0, 1.0}, rng) == 1;
  EXPECT_NEAR(static_cast<double>(ones) / n, 0.75, 0.02);
}

TEST(Sampler, SeedIsDeterministic) {
  auto m = tiny_model(tiny_config());
  GenerationConfig cfg;
  cfg.max_new_tokens = 12;
  cfg.temperature = 1.5;
  cfg.top_k = 50;
  cfg.top_p = 0.95;
  cfg.seed = 1234;
  const std::vector<Prompt> prompts = {{{1, 2, 3}, {}}, {{4, 5}, {}}};
  const auto a = model::generate(m, prompts, cfg);
  const auto b = model::generate(m, prompts, cfg);
  EXPECT_EQ(a, b);
  cfg.seed = 99;
  const auto c = model::generate(m, prompts, cfg);
  EXPECT_NE(a, c) << "a different seed should give different samples at temperature 1.5";
}

// Seeded sampling gives the same ids on the static-cache path (rows stay in the batch) as on the
// dynamic one (finished rows leave it), also after a row has stopped.
TEST(Sampler, StaticCacheSamplesLikeTheDynamicPath) {
  auto m = tiny_model(tiny_config());
  GenerationConfig cfg;
  cfg.max_new_tokens = 12;
  cfg.temperature = 1.5;
  cfg.seed = 7;
  cfg.auto_static_cache = false;
  const std::vector<Prompt> prompts = {{{1, 2, 3}, {}}, {{4, 5}, {}}};
  const auto free_run = model::generate(m, prompts, cfg);
  cfg.stop_tokens = {free_run[0].at(2)};  // row 0 stops by its third token
  const auto dynamic = model::generate(m, prompts, cfg);
  cfg.static_cache = true;
  const auto fixed = model::generate(m, prompts, cfg);
  EXPECT_LE(dynamic[0].size(), 2u);
  EXPECT_EQ(fixed, dynamic);
}

TEST(Generate, RejectsBadPrompts) {
  auto m = tiny_model(tiny_config());
  GenerationConfig cfg;
  cfg.max_new_tokens = 2;
  auto message = [&](const std::vector<Prompt>& p, const GenerationConfig& c) -> std::string {
    try {
      model::generate(m, p, c);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_NE(message({{{1, 97}, {}}}, cfg).find("97"), std::string::npos);
  EXPECT_NE(message({{{}, {}}}, cfg).find("empty"), std::string::npos);
  EXPECT_NE(message({{{1, 2}, at::zeros({3, 32})}}, cfg).find("match"), std::string::npos);
  GenerationConfig bad = cfg;
  bad.top_p = 0.0;
  EXPECT_NE(message({{{1}, {}}}, bad).find("top_p"), std::string::npos);
  EXPECT_TRUE(model::generate(m, {{{1}, {}}}, [] {
                GenerationConfig z;
                z.max_new_tokens = 0;
                return z;
              }())[0].empty());
}

}  // namespace
}  // namespace c3::test
