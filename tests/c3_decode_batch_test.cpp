// Continuous batching (model::DecodeBatch) on real cascades: rows that join the running batch at
// different steps, leave it at different steps and share rows of its cache get exactly the ids
// that decompress() (model::generate) gives each of them alone: greedy, with the n-gram ban, the
// stop token and the length cap. On the golden c3-tiny checkpoint and on models/c3-small.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "c3/c3_model.h"
#include "model/decode_batch.h"
#include "testdata.h"
#include "util/error.h"

namespace c3 {
namespace {

// C3_TEST_DEVICE=cuda runs on the GPU (fp32: ids must match exactly).
at::Device test_device() {
  const char* d = std::getenv("C3_TEST_DEVICE");
  return d && std::string(d) == "cuda" ? at::Device(at::kCUDA) : at::Device(at::kCPU);
}

struct Case {
  std::vector<std::string> texts;
  cascade::DecompressOptions opt;
};

// The schedule: which rows are added before which step. Row i is added before step at[i].
struct Schedule {
  std::vector<int64_t> at;
  int64_t cancel_row = -1, cancel_step = -1;  // cancel this row before this step
};

struct Ran {
  std::map<int64_t, std::vector<int64_t>> ids;  // row -> ids
  int64_t steps = 0;
  int64_t slots_at_end = 0;
  int64_t most_running = 0;
};

Ran run_batch(cascade::LoadedC3& m, const std::vector<at::Tensor>& latents,
              const std::vector<int64_t>& sources, const cascade::DecompressOptions& opt,
              const Schedule& sch, model::DecodeBatchOptions bo) {
  bo.max_prompt = static_cast<int64_t>(m.model->prompt_ids().size());
  model::DecodeBatch batch(m.model->decoder, bo);
  std::map<int64_t, int64_t> row_of;  // ticket -> row
  std::map<int64_t, int64_t> ticket_of;
  Ran ran;
  const int64_t n = static_cast<int64_t>(latents.size());
  int64_t added = 0;
  for (int64_t step = 0; added < n || !batch.idle(); ++step) {
    for (int64_t i = 0; i < n; ++i) {
      if (sch.at[i] != step) continue;
      cascade::DecompressOptions o = opt;
      o.source_tokens = {sources[i]};
      auto rows = m.model->decode_rows(latents[i], o);
      const int64_t t = batch.add(std::move(rows[0]));
      row_of[t] = i;
      ticket_of[i] = t;
      ++added;
    }
    if (step == sch.cancel_step) batch.cancel(ticket_of.at(sch.cancel_row));
    for (auto& f : batch.step()) ran.ids[row_of.at(f.ticket)] = std::move(f.ids);
    ran.most_running = std::max(ran.most_running, batch.running());
    ran.steps = step + 1;
    EXPECT_LT(step, 100000) << "the batch never drains";
    if (step >= 100000) break;
  }
  ran.slots_at_end = batch.cache_slots();
  return ran;
}

// Compresses each text alone and decodes it alone (the reference), then through the batch.
void expect_alone_equals_batched(cascade::LoadedC3& m, const Case& c, const Schedule& sch,
                                 const model::DecodeBatchOptions& bo, Ran* out = nullptr) {
  torch::NoGradGuard ng;
  std::vector<at::Tensor> latents;
  std::vector<int64_t> sources;
  std::vector<std::vector<int64_t>> alone;
  for (const auto& t : c.texts) {
    const auto ids = m.tok->encode(t);
    latents.push_back(m.model->compress({ids}));
    sources.push_back(static_cast<int64_t>(ids.size()));
    cascade::DecompressOptions o = c.opt;
    o.source_tokens = {sources.back()};
    alone.push_back(m.model->decompress(latents.back(), o)[0]);
  }
  Ran ran = run_batch(m, latents, sources, c.opt, sch, bo);
  for (size_t i = 0; i < c.texts.size(); ++i) {
    if (static_cast<int64_t>(i) == sch.cancel_row) {
      EXPECT_EQ(ran.ids.count(i), 0u) << "a cancelled row came back";
      continue;
    }
    ASSERT_EQ(ran.ids.count(i), 1u) << "row " << i << " never finished";
    EXPECT_EQ(ran.ids[i], alone[i]) << "row " << i << " (" << alone[i].size() << " ids alone)";
  }
  if (out) *out = std::move(ran);
}

cascade::LoadedC3 load(const std::string& dir) {
  return cascade::load_c3(dir, at::kFloat, test_device());
}

std::vector<std::string> tiny_texts() {
  return {"Short one.", "The quick brown fox jumps over the lazy dog, twice.",
          "A third passage, of a middling length.", "4", "Five: the last and the longest of "
          "them all, which runs on for a while longer than the others do."};
}

// A random model never says <|im_end|>: rows run to their budgets, which the length cap makes
// differ, and the n-gram ban (size 3, as the golden case) shapes every row.
TEST(DecodeBatch, TinyRowsJoiningAtDifferentStepsGetTheirOwnIds) {
  cascade::LoadedC3 m = load(test::testdata("c3/c3-tiny").string());
  Case c{tiny_texts(), {}};
  c.opt.no_repeat_ngram_size = 3;
  c.opt.max_new_tokens = 40;
  c.opt.length_cap = 1.5;  // caps ceil(1.5 n) + 16 for the short texts, 40 for the long one
  model::DecodeBatchOptions bo;
  bo.max_rows = 3;  // fewer rows than texts: rows wait, then reuse the rows of finished ones
  bo.max_new_tokens = 40;
  Ran ran;
  expect_alone_equals_batched(m, c, {{0, 0, 3, 5, 7}}, bo, &ran);
  EXPECT_EQ(ran.most_running, 3);
}

// A small cache: the clock reaches its end, the live slots move down and the cache doubles; the
// ids do not change. Without the length cap every row runs all 60 steps, staggered, so the batch
// never empties and the clock passes 64 + the prompt's length.
TEST(DecodeBatch, TinyCacheMovesAndGrowsWithoutChangingIds) {
  cascade::LoadedC3 m = load(test::testdata("c3/c3-tiny").string());
  Case c{tiny_texts(), {}};
  c.opt.no_repeat_ngram_size = 3;
  c.opt.max_new_tokens = 60;
  c.opt.length_cap = 0;
  c.opt.stop_at_im_end = false;
  model::DecodeBatchOptions bo;
  bo.max_rows = 2;
  bo.max_new_tokens = 60;
  bo.initial_slots = static_cast<int64_t>(m.model->prompt_ids().size()) + 8;
  Ran ran;
  expect_alone_equals_batched(m, c, {{0, 5, 11, 40, 41}}, bo, &ran);
  EXPECT_GT(ran.slots_at_end, bo.initial_slots) << "the cache never grew";
  EXPECT_GT(ran.steps, 2 * 60) << "the clock must pass the end of the first cache";
}

// A row cancelled mid-run is never returned and leaves the others' ids alone.
TEST(DecodeBatch, TinyCancelledRowLeavesTheOthersAlone) {
  cascade::LoadedC3 m = load(test::testdata("c3/c3-tiny").string());
  Case c{tiny_texts(), {}};
  c.opt.no_repeat_ngram_size = 3;
  c.opt.max_new_tokens = 30;
  model::DecodeBatchOptions bo;
  bo.max_rows = 4;
  bo.max_new_tokens = 30;
  Schedule sch{{0, 1, 1, 2, 9}};
  sch.cancel_row = 1;
  sch.cancel_step = 6;
  expect_alone_equals_batched(m, c, sch, bo);
}

// The trained model stops at <|im_end|> on its own, at different steps per row; n-gram ban 20
// and the length cap as `c3 decompress` runs.
TEST(DecodeBatch, SmallModelRowsStopOnTheirOwn) {
  cascade::LoadedC3 m = load((test::source_dir() / "models" / "c3-small").string());
  Case c;
  c.texts = {"\"The first thing I've got to do,\" said Alice to herself.",
             "Alice wandered about in the wood, looking for her way into that lovely garden.",
             "I think that will be the best plan.",
             "The second thing is to find my way into that lovely garden, and to grow to my "
             "right size again; that will be the best plan."};
  model::DecodeBatchOptions bo;
  bo.max_rows = 3;
  bo.max_new_tokens = c.opt.max_new_tokens;
  expect_alone_equals_batched(m, c, {{0, 2, 2, 4}}, bo);
}

TEST(DecodeBatch, RefusesWhatItCannotHold) {
  cascade::LoadedC3 m = load(test::testdata("c3/c3-tiny").string());
  torch::NoGradGuard ng;
  const auto lat = m.model->compress({m.tok->encode("Short one.")});
  model::DecodeBatchOptions bo;
  bo.max_prompt = static_cast<int64_t>(m.model->prompt_ids().size());
  bo.max_new_tokens = 10;
  model::DecodeBatch batch(m.model->decoder, bo);
  cascade::DecompressOptions o;
  o.max_new_tokens = 11;
  EXPECT_THROW(batch.add(m.model->decode_rows(lat, o)[0]), Error);  // over the budget
  model::DecodeRow long_prompt = m.model->decode_rows(lat, {})[0];
  long_prompt.max_new_tokens = 5;
  long_prompt.prompt.ids.push_back(1);
  long_prompt.prompt.embeds = at::cat({long_prompt.prompt.embeds, long_prompt.prompt.embeds.narrow(0, 0, 1)});
  EXPECT_THROW(batch.add(long_prompt), Error);  // longer than max_prompt
  o.num_beams = 2;
  EXPECT_THROW(m.model->decode_rows(lat, o), Error);  // beams are not batched
  o.num_beams = 1;
  o.max_new_tokens = 0;
  const int64_t t = batch.add(m.model->decode_rows(lat, o)[0]);
  const auto done = batch.step();
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].ticket, t);
  EXPECT_TRUE(done[0].ids.empty());
  EXPECT_TRUE(batch.idle());
}

}  // namespace
}  // namespace c3
