// c3's own query layouts (c3_query_positions, c3_query_mask, c3_query_pooling) on c3-tiny:
// positions, masks and pooling as query_layout.h documents them, batched = per passage, config
// errors, and the official layout left alone.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "c3/c3_model.h"
#include "c3/query_layout.h"
#include "model/qwen2_model.h"
#include "testdata.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/remove_tree.h"
#include "tensor_util.h"

using c3::test::max_diff;

namespace c3 {
namespace {
namespace fs = std::filesystem;
using cascade::QueryMask;
using cascade::QueryPositions;

// c3-tiny's weights under a config.json with `extra` keys (links to the golden files).
fs::path tiny_with(const std::string& name, const nlohmann::json& extra) {
  const fs::path src = test::testdata("c3/c3-tiny");
  const fs::path dir = test::binary_dir() / "test_out" / "query_layout" / name;
  remove_tree(dir);
  fs::create_directories(dir);
  for (const char* f : {"model.safetensors", "tokenizer.json", "generation_config.json", "llm1"})
    fs::create_symlink(fs::absolute(src / f), dir / f);
  nlohmann::json cfg = nlohmann::json::parse(read_file(src / "config.json"));
  cfg.update(extra);
  write_file_atomic(dir / "config.json", cfg.dump(2));
  return dir;
}

cascade::LoadedC3 load(const fs::path& dir) {
  return cascade::load_c3(dir.string(), at::kFloat, at::kCPU);
}

std::vector<int32_t> ids_of_len(const cascade::LoadedC3& m, size_t n) {
  std::vector<int32_t> ids = m.tok->encode(
      "The quiet river ran under the old stone bridge, past seven small houses and a market.");
  EXPECT_GE(ids.size(), n);
  ids.resize(n);
  return ids;
}

TEST(QueryLayout, SegmentsAndPositionsAsDocumented) {
  // N = 10, L = 8: segments floor(j N / L) .. floor((j + 1) N / L).
  const std::vector<int64_t> ends = {1, 2, 3, 5, 6, 7, 8, 10};
  for (int64_t j = 0; j < 8; ++j) {
    EXPECT_EQ(cascade::query_segment(10, 8, j).begin, j == 0 ? 0 : ends[j - 1]);
    EXPECT_EQ(cascade::query_segment(10, 8, j).end, ends[j]);
  }
  // Text 0..9, <img> 10, queries at their segment ends, </img> 11.
  std::vector<int64_t> want = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 1, 2, 3, 5, 6, 7, 8, 10, 11};
  EXPECT_EQ(cascade::encoder_positions(10, 8, QueryPositions::kSegments), want);
  std::vector<int64_t> official(20);
  for (int64_t i = 0; i < 20; ++i) official[i] = i;
  EXPECT_EQ(cascade::encoder_positions(10, 8, QueryPositions::kAfterText), official);
  // Shorter than L: empty segments, queries never past N.
  EXPECT_EQ(cascade::query_segment(5, 8, 0).end, 0);
  EXPECT_EQ(cascade::encoder_positions(5, 8, QueryPositions::kSegments)[5 + 8], 5);  // last query
  // Right-padded batch: the short row continues its index after </img>.
  at::Tensor p = cascade::encoder_position_ids({10, 2}, 8, 20, QueryPositions::kSegments);
  EXPECT_EQ(p[0][11].item<int64_t>(), 1);
  EXPECT_EQ(p[1][3].item<int64_t>(), 0);  // query 0 of a 2-token text: segment [0, 0)
  EXPECT_EQ(p[1][19].item<int64_t>(), 19);
}

TEST(QueryLayout, SegmentMaskLetsEachQuerySeeOnlyItsSegment) {
  const int64_t N = 10, L = 8, T = N + L + 2;
  at::Tensor m = cascade::encoder_attend_mask({N}, L, T, QueryMask::kSegment, at::kCPU)[0];
  for (int64_t t = 0; t < T; ++t)
    for (int64_t s = 0; s < T; ++s) {
      bool want = s <= t;  // causal everywhere but the query rows
      if (t > N && t <= N + L) {
        const auto seg = cascade::query_segment(N, L, t - N - 1);
        want = (s >= seg.begin && s < seg.end) || s == t;
      }
      EXPECT_EQ(m[t][s].item<bool>(), want) << "query " << t << " key " << s;
    }
  at::Tensor causal = cascade::encoder_attend_mask({N}, L, T, QueryMask::kCausal, at::kCPU)[0];
  EXPECT_TRUE(causal.equal(at::ones({T, T}, at::kBool).tril()));
}

// The latents of the segments layout equal the encoder run by hand with the documented
// positions and mask (N = 10, L = 8), so the model passes what query_layout.h describes.
TEST(QueryLayout, ModelUsesTheDocumentedPositionsAndMask) {
  auto m =
      load(tiny_with("both", {{"c3_query_positions", "segments"}, {"c3_query_mask", "segment"}}));
  auto official = load(test::testdata("c3/c3-tiny"));
  torch::NoGradGuard ng;
  const std::vector<int32_t> ctx = ids_of_len(m, 10);
  const int64_t N = 10, L = 8, T = N + L + 2;
  const std::vector<int64_t> pos = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 1, 2, 3, 5, 6, 7, 8, 10, 11};
  const std::vector<std::pair<int64_t, int64_t>> seg = {{0, 1}, {1, 2}, {2, 3}, {3, 5},
                                                        {5, 6}, {6, 7}, {7, 8}, {8, 10}};
  at::Tensor allowed = at::ones({T, T}, at::kBool).tril();
  for (int64_t j = 0; j < L; ++j) {
    allowed[N + 1 + j].fill_(false);
    allowed[N + 1 + j].slice(0, seg[j].first, seg[j].second).fill_(true);
    allowed[N + 1 + j][N + 1 + j] = true;
  }
  const auto ids = m.model->encoder_input_ids(ctx);
  at::Tensor embeds = m.model->encoder->embed(at::tensor(ids).view({1, T}));
  embeds.narrow(1, N + 1, L).copy_(m.model->Q->weight.unsqueeze(0));
  model::ForwardInputs in;
  in.position_ids = at::tensor(pos).view({1, T});
  in.attend = allowed.unsqueeze(0);
  at::Tensor by_hand = m.model->mm_projector->forward(
      m.model->encoder->hidden(embeds, in).narrow(1, N + 1, L));  // [1, L, C_dec]
  at::Tensor got = m.model->compress({ctx});
  EXPECT_LT(max_diff(got, by_hand), 1e-5);
  EXPECT_GT(max_diff(got, official.model->compress({ctx})), 1e-3) << "the layout changed nothing";
}

// Segment-mean pooling adds to each query state the mean of its segment's final hidden states.
TEST(QueryLayout, SegmentMeanPoolingAddsEachSegmentsMean) {
  auto m = load(tiny_with("pool", {{"c3_query_pooling", "segment_mean"}}));
  auto official = load(test::testdata("c3/c3-tiny"));
  torch::NoGradGuard ng;
  const int64_t N = 10, L = 8, T = N + L + 2;
  const std::vector<int32_t> ctx = ids_of_len(m, N);
  const auto ids = m.model->encoder_input_ids(ctx);
  at::Tensor embeds = m.model->encoder->embed(at::tensor(ids).view({1, T}));
  embeds.narrow(1, N + 1, L).copy_(m.model->Q->weight.unsqueeze(0));
  const at::Tensor h = m.model->encoder->hidden(embeds, {})[0];  // [T, C], official positions
  const std::vector<std::pair<int64_t, int64_t>> seg = {{0, 1}, {1, 2}, {2, 3}, {3, 5},
                                                        {5, 6}, {6, 7}, {7, 8}, {8, 10}};
  at::Tensor want = h.narrow(0, N + 1, L).clone();
  for (int64_t j = 0; j < L; ++j) want[j] += h.slice(0, seg[j].first, seg[j].second).mean(0);
  EXPECT_LT(max_diff(m.model->encode_queries({ctx})[0], want), 1e-5);
  EXPECT_LT(max_diff(official.model->encode_queries({ctx})[0], h.narrow(0, N + 1, L)), 1e-5);
  // Shorter than L: empty segments add nothing.
  at::Tensor w = cascade::segment_mean_weights({5}, L, 15, at::kCPU)[0];
  EXPECT_EQ(w[0].sum().item<float>(), 0.0f);
  EXPECT_FLOAT_EQ(w[1][0].item<float>(), 1.0f);
}

TEST(QueryLayout, BatchedCompressEqualsPerPassage) {
  const std::vector<std::pair<std::string, nlohmann::json>> layouts = {
      {"positions", {{"c3_query_positions", "segments"}}},
      {"mask", {{"c3_query_mask", "segment"}}},
      {"pool", {{"c3_query_pooling", "segment_mean"}}},
      {"all",
       {{"c3_query_positions", "segments"},
        {"c3_query_mask", "segment"},
        {"c3_query_pooling", "segment_mean"}}}};
  for (const auto& [name, extra] : layouts) {
    auto m = load(tiny_with(name, extra));
    torch::NoGradGuard ng;
    const std::vector<std::vector<int32_t>> rows = {ids_of_len(m, 3), ids_of_len(m, 17),
                                                    ids_of_len(m, 9)};
    at::Tensor all = m.model->compress(rows);
    double d = 0;
    for (int64_t i = 0; i < 3; ++i)
      d = std::max(d, max_diff(all[i], m.model->compress({rows[i]})[0]));
    std::printf("%s: batched vs single max abs diff %.3g\n", name.c_str(), d);
    EXPECT_LT(d, 1e-5) << name;
    EXPECT_FALSE(all.isnan().any().item<bool>()) << name << ": a query with an empty segment";
  }
}

TEST(QueryLayout, ConfigKeysRoundTripAndOfficialStaysUnwritten) {
  auto m =
      load(tiny_with("both", {{"c3_query_positions", "segments"}, {"c3_query_mask", "segment"}}));
  EXPECT_EQ(m.model->config.query_positions, QueryPositions::kSegments);
  EXPECT_EQ(m.model->config.query_mask, QueryMask::kSegment);
  nlohmann::json j = m.model->config.decoder_json();
  EXPECT_EQ(j["c3_query_positions"], "segments");
  EXPECT_EQ(j["c3_query_mask"], "segment");
  auto official = load(test::testdata("c3/c3-tiny"));
  EXPECT_EQ(official.model->config.query_positions, QueryPositions::kAfterText);
  nlohmann::json o = official.model->config.decoder_json();
  EXPECT_FALSE(o.contains("c3_query_positions"));
  EXPECT_FALSE(o.contains("c3_query_mask"));
  EXPECT_FALSE(o.contains("c3_query_pooling"));
  auto p = load(tiny_with("pool", {{"c3_query_pooling", "segment_mean"}}));
  EXPECT_EQ(p.model->config.decoder_json()["c3_query_pooling"], "segment_mean");
}

TEST(QueryLayout, UnknownValueIsAClearConfigError) {
  auto expect_error = [](const nlohmann::json& extra, const std::string& needle) {
    const fs::path dir = tiny_with("bad", extra);
    try {
      load(dir);
      FAIL() << "accepted " << extra.dump();
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(needle), std::string::npos) << msg;
      EXPECT_NE(msg.find("config.json"), std::string::npos) << msg;
    }
  };
  expect_error({{"c3_query_positions", "middle"}},
               "key 'c3_query_positions' must be \"after_text\" or \"segments\", got \"middle\"");
  expect_error({{"c3_query_mask", "block"}},
               "key 'c3_query_mask' must be \"causal\" or \"segment\", got \"block\"");
  expect_error({{"c3_query_mask", 3}}, "c3_query_mask");
  expect_error({{"c3_query_pooling", "max"}},
               "key 'c3_query_pooling' must be \"none\" or \"segment_mean\", got \"max\"");
}

}  // namespace
}  // namespace c3
