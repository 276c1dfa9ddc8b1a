// The batching scheduler without sockets: concurrent requests share encoder passes and decode
// steps and still get the CLI's answers; the queue limit, the deadline and the drain.
#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <thread>

#include "c3/latent_file.h"
#include "serve/metrics.h"
#include "serve/scheduler.h"
#include "serve_common.h"
#include "util/error.h"

namespace c3::test {
namespace {

using serve::Scheduler;
using serve::SchedulerOptions;
using serve::Work;
using serve::WorkKind;

TEST(ServeScheduler, ConcurrentRoundTripsGetTheCliAnswers) {
  auto& m = small_model();
  const auto texts = serve_texts();
  std::vector<eval::RoundtripResult> want;
  for (const auto& t : texts) want.push_back(cli_roundtrip(t, 24));
  serve::Metrics metrics;
  SchedulerOptions so;
  so.max_batch = 3;  // fewer rows than chunks in flight: chunks wait for rows, rows are reused
  Scheduler s(m, so, &metrics);
  std::vector<std::future<serve::WorkResult>> got;
  for (int round = 0; round < 2; ++round)
    for (const auto& t : texts)
      got.push_back(std::async(std::launch::async, [&s, t] { return s.run(roundtrip_work(t, 24), 600); }));
  for (size_t i = 0; i < got.size(); ++i) {
    const serve::WorkResult r = got[i].get();
    const auto& w = want[i % texts.size()];
    EXPECT_EQ(static_cast<int64_t>(r.ids.size()), w.chunks) << "request " << i;
    EXPECT_EQ(joined_text(r.ids), w.text) << "request " << i;
    std::vector<int64_t> flat;
    for (const auto& row : r.ids) flat.insert(flat.end(), row.begin(), row.end());
    EXPECT_EQ(flat, w.ids) << "request " << i;
  }
  EXPECT_EQ(s.accepted(), 0);
}

// The value on the line of `metric` (name and labels) in the Prometheus text, or -1.
double metric_value(const std::string& text, const std::string& metric) {
  const size_t at = text.find("\n" + metric + " ");
  return at == std::string::npos ? -1 : std::stod(text.substr(at + metric.size() + 2));
}

// Requests that arrive while another decodes join its batch: steps run several rows.
TEST(ServeScheduler, LaterRequestsJoinTheRunningBatch) {
  serve::Metrics metrics;
  Scheduler s(small_model(), {}, &metrics);
  auto busy = std::async(std::launch::async, [&] { return s.run(busy_work(400), 600); });
  ASSERT_TRUE(eventually([&] { return s.accepted() == 1; }));
  std::vector<std::future<serve::WorkResult>> later;
  for (const auto& t : serve_texts())
    later.push_back(std::async(std::launch::async, [&s, t] { return s.run(roundtrip_work(t), 600); }));
  for (size_t i = 0; i < later.size(); ++i)
    EXPECT_EQ(joined_text(later[i].get().ids), cli_roundtrip(serve_texts()[i]).text);
  EXPECT_EQ(busy.get().ids[0].size(), 400u);
  const std::string text = metrics.render();
  const double steps = metric_value(text, "c3_decode_batch_rows_count");
  const double one_row = metric_value(text, "c3_decode_batch_rows_bucket{le=\"1\"}");
  EXPECT_GE(steps, 400) << text;
  EXPECT_LT(one_row, steps - 20) << "few steps ran more than one row:\n" << text;
}

// A .c3 file's latents through the scheduler decode as `c3 decompress` decodes them; compress
// answers the latents compress_to_bytes stores.
TEST(ServeScheduler, CompressAndDecompressMatchTheCli) {
  auto& m = small_model();
  const std::string text = serve_texts()[3];
  cascade::CompressOptions co;
  co.progress = false;
  co.max_passage_tokens = 24;
  const cascade::LatentFile f = cascade::parse_latents(cascade::compress_to_bytes(m, text, "t", co), "t");
  std::ostringstream cli_text;
  cascade::DecompressStreamOptions dso;
  dso.progress = false;
  cascade::decompress_to_stream(m, f, cli_text, dso);

  Scheduler s(m, {});
  Work d;
  d.kind = WorkKind::kDecompress;
  d.latents = f.latents;
  d.source_tokens = f.meta.chunk_tokens;
  auto from_latents = std::async(std::launch::async, [&] { return s.run(d, 600); });
  Work c = roundtrip_work(text, 24);
  c.kind = WorkKind::kCompress;
  const serve::WorkResult lat = s.run(c, 600);
  EXPECT_EQ(joined_text(from_latents.get().ids), cli_text.str());
  ASSERT_EQ(lat.latents.size(0), f.latents.size(0));
  // Stored as bf16, as the file stores them (the encoder batch differed: within one bf16 step).
  const at::Tensor a = lat.latents.to(at::kBFloat16).to(at::kFloat), b = f.latents.to(at::kFloat);
  EXPECT_LE((a - b).abs().max().item<double>(), b.abs().max().item<double>() / 128);
}

TEST(ServeScheduler, QueueLimitRefusesAndKeepsServing) {
  SchedulerOptions so;
  so.max_queue = 1;
  Scheduler s(small_model(), so);
  auto busy = std::async(std::launch::async, [&] { return s.run(busy_work(300), 600); });
  ASSERT_TRUE(eventually([&] { return s.accepted() == 1; }));
  EXPECT_THROW(s.run(roundtrip_work(serve_texts()[1]), 600), serve::Overloaded);
  EXPECT_EQ(busy.get().ids[0].size(), 300u);
  EXPECT_EQ(joined_text(s.run(roundtrip_work(serve_texts()[1]), 600).ids),
            cli_roundtrip(serve_texts()[1]).text);
}

// A request past its deadline gets Unavailable at once; its rows leave the batch, and the
// requests beside it are unharmed.
TEST(ServeScheduler, DeadlineDropsTheRequestOnly) {
  Scheduler s(small_model(), {});
  auto neighbour = std::async(std::launch::async, [&] { return s.run(roundtrip_work(serve_texts()[2]), 600); });
  EXPECT_THROW(s.run(busy_work(4000), 1e-3), serve::Unavailable);
  EXPECT_EQ(joined_text(neighbour.get().ids), cli_roundtrip(serve_texts()[2]).text);
  EXPECT_TRUE(eventually([&] { return s.accepted() == 0; }));
  EXPECT_EQ(joined_text(s.run(roundtrip_work(serve_texts()[0]), 600).ids),
            cli_roundtrip(serve_texts()[0]).text);
}

TEST(ServeScheduler, DrainFinishesAcceptedWorkAndRefusesNew) {
  Scheduler s(small_model(), {});
  auto a = std::async(std::launch::async, [&] { return s.run(busy_work(200), 600); });
  auto b = std::async(std::launch::async, [&] { return s.run(roundtrip_work(serve_texts()[1]), 600); });
  ASSERT_TRUE(eventually([&] { return s.accepted() == 2; }));
  s.drain();
  EXPECT_EQ(s.accepted(), 0);
  EXPECT_EQ(a.get().ids[0].size(), 200u);
  EXPECT_EQ(joined_text(b.get().ids), cli_roundtrip(serve_texts()[1]).text);
  EXPECT_THROW(s.run(roundtrip_work(serve_texts()[1]), 600), serve::Unavailable);
}

// Beam search runs beside the batch, one chunk at a time, and gives the CLI's beams.
TEST(ServeScheduler, BeamsGiveTheCliAnswer) {
  Scheduler s(small_model(), {});
  const std::string text = serve_texts()[3];
  Work w = roundtrip_work(text, 24);
  w.decode.num_beams = 3;
  auto greedy = std::async(std::launch::async, [&] { return s.run(roundtrip_work(serve_texts()[2]), 600); });
  const serve::WorkResult r = s.run(w, 600);
  eval::RoundtripOptions o;
  o.max_passage_tokens = 24;
  o.decode.num_beams = 3;
  o.batch_size = 1;  // the scheduler runs beams chunk by chunk
  EXPECT_EQ(joined_text(r.ids), eval::roundtrip_text(small_model(), text, "t", o).text);
  EXPECT_EQ(joined_text(greedy.get().ids), cli_roundtrip(serve_texts()[2]).text);
}

// Work in steps (verified compression) runs between decode steps: it steps here until a round
// trip sent meanwhile is answered, so a scheduler that ran it to its end first would leave both
// to their deadlines. A step that throws fails its own request only.
TEST(ServeScheduler, StepsInterleaveWithTheBatchAndFailAlone) {
  Scheduler s(small_model(), {});
  const std::string want = cli_roundtrip(serve_texts()[1]).text;
  std::atomic<bool> answered{false};
  std::atomic<int64_t> steps{0};
  Work w;
  w.kind = WorkKind::kSteps;
  w.step = [&] {
    ++steps;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
    return !answered.load();
  };
  auto stepping = std::async(std::launch::async, [&] { return s.run(w, 60); });
  ASSERT_TRUE(eventually([&] { return steps.load() > 0; }));
  EXPECT_EQ(joined_text(s.run(roundtrip_work(serve_texts()[1]), 60).ids), want);
  answered = true;
  EXPECT_NO_THROW(stepping.get());
  EXPECT_GT(steps.load(), 1);

  Work bad;
  bad.kind = WorkKind::kSteps;
  bad.step = []() -> bool { throw std::runtime_error("a step failed"); };
  EXPECT_THROW(s.run(bad, 60), std::runtime_error);
  EXPECT_EQ(joined_text(s.run(roundtrip_work(serve_texts()[1]), 60).ids), want);
  EXPECT_EQ(s.accepted(), 0);
}

}  // namespace
}  // namespace c3::test
