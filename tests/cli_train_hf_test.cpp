// `c3 train` with the paper recipe's flags on HF folders made by `c3 qwen2 init`: --warmup-ratio
// gives HF's warmup steps, 2 processes print one result line, and --warmup with --warmup-ratio
// is refused.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "cli_run.h"
#include "testdata.h"
#include "util/atomic_file.h"
#include "util/remove_tree.h"

namespace {
using c3::test::q;
namespace fs = std::filesystem;

using c3::test::RunResult;

RunResult run_c3(const std::string& args, const fs::path& err) {
  const std::string cmd =
      "C3_NO_PROGRESS=1 " + q(c3::test::binary_dir() / "c3") + " " + args + " 2>" + q(err);
  return c3::test::run_shell(cmd);
}

// Two tiny HF folders and c3-tiny's tokenizer without C3's tokens; returns the train flags.
std::string make_inputs(const fs::path& dir) {
  auto tok = nlohmann::json::parse(c3::read_file(c3::test::testdata("c3/c3-tiny/tokenizer.json")));
  auto kept = nlohmann::json::array();
  for (const auto& t : tok["added_tokens"])
    if (t["content"] != "<img>" && t["content"] != "</img>" && t["content"] != "<imgpad>")
      kept.push_back(t);
  tok["added_tokens"] = kept;
  fs::create_directories(dir / "tok");
  c3::write_file_atomic(dir / "tok" / "tokenizer.json", tok.dump());
  for (const char* half : {"encoder", "decoder"}) {
    const std::string args =
        "qwen2 init --config " +
        q(c3::test::source_dir() / "configs" / (std::string("tiny-") + half + ".json")) +
        " --tokenizer " + q(dir / "tok" / "tokenizer.json") + " --vocab-size 1503 --out " +
        q(dir / half);
    EXPECT_EQ(run_c3(args, dir / "init.err").rc, 0) << c3::read_file(dir / "init.err");
  }
  std::string corpus;
  for (int i = 0; i < 8; ++i)
    corpus += "{\"text\": \"the small river " + std::to_string(i) +
              " runs north under the bright winter light past seven cold roads\"}\n";
  c3::write_file_atomic(dir / "corpus.jsonl", corpus);
  return "train --device cpu --encoder-hf " + q(dir / "encoder") + " --decoder-hf " +
         q(dir / "decoder") + " --tokenizer " + q(dir / "decoder" / "tokenizer.json") +
         " --train " + q(dir / "corpus.jsonl") +
         " --latents 4 --lengths fixed:8 --max-passage-tokens 16 --batch-size 1 --grad-accum 2"
         " --lr 1e-3 --adam-beta2 0.999 --weight-decay 0 --min-lr-ratio 0 --grad-clip 1.0"
         " --activation-checkpointing --steps 4 --log-every 1 --eval-passages 0"
         " --data-threads 1 --bucket-docs 4 --no-plot --out " +
         q(dir / "run");
}

}  // namespace

TEST(CliTrainHf, WarmupRatioAndOneResultLineFromTwoProcesses) {
  const fs::path dir = c3::test::binary_dir() / "test_out" / "cli_train_hf";
  c3::remove_tree(dir);
  const std::string train = make_inputs(dir);
  RunResult r = run_c3(train + " --nproc 2 --warmup-ratio 0.5", dir / "train.err");
  ASSERT_EQ(r.rc, 0) << c3::read_file(dir / "train.err");
  // One line on stdout (rank 0's), naming the last checkpoint.
  EXPECT_EQ(r.out.find('\n'), r.out.size() - 1) << r.out;
  EXPECT_EQ(nlohmann::json::parse(r.out)["steps"], 4);
  // ceil(0.5 * 4) = 2 warmup steps, then cosine to 0 over the other 2: the lr of steps 1..4.
  std::vector<double> lr;
  std::istringstream log(c3::read_file(dir / "run" / "train_log.jsonl"));
  for (std::string line; std::getline(log, line);) {
    const auto j = nlohmann::json::parse(line);
    if (j["event"] == "step") lr.push_back(j["lr"]);
  }
  const std::vector<double> expected = {5e-4, 1e-3, 1e-3, 5e-4};
  ASSERT_EQ(lr.size(), expected.size());
  for (size_t i = 0; i < lr.size(); ++i) EXPECT_NEAR(lr[i], expected[i], 1e-12) << "step " << i + 1;

  r = run_c3(train + " --warmup 2 --warmup-ratio 0.5", dir / "both.err");
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(c3::read_file(dir / "both.err").find("--warmup excludes --warmup-ratio"),
            std::string::npos);
}
