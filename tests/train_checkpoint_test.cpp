// Checkpoint writing: safetensors files assembled from parts are byte for byte what
// io::save_safetensors writes; weights sharded as HF does load back into the same cascade; a
// checkpoint written in the background equals one written before training goes on; a file that
// cannot be written is named.
#include <gtest/gtest.h>
#include <torch/serialize.h>
#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "c3/c3_model.h"
#include "io/hf_config.h"
#include "io/safetensors.h"
#include "train/checkpoint_file.h"
#include "train/distributed.h"
#include "train/model_files.h"
#include "train/model_init.h"
#include "train/param_groups.h"
#include "train/shard_layout.h"
#include "train_tiny_run.h"
#include "util/error.h"

namespace {

namespace fs = std::filesystem;
using c3::train::CheckpointFile;
using namespace c3::test::tiny_run;

fs::path checkpoint_dir(const std::string& name) { return fresh_test_dir("train_checkpoint", name); }

c3::cascade::C3Model tiny_model(const fs::path& dir, std::string* tok_path) {
  c3::train::TokenizerSource tok;
  write_tiny_setup(dir, synthetic_docs(2));
  c3::train::ModelInit init;
  init.tokenizer = tiny_tokenizer().string();
  init.encoder_config = (dir / "encoder.json").string();
  init.decoder_config = (dir / "decoder.json").string();
  init.latents = 8;
  init.seed = 5;
  c3::cascade::C3Model m = c3::train::build_model(init, &tok);
  *tok_path = tok.path;
  return m;
}

// The checkpoints of steps 2 and 4 in two run folders hold the same files, byte for byte.
void expect_same_checkpoints(const fs::path& a, const fs::path& b) {
  for (const char* step : {"step-0000002", "step-0000004"}) {
    int n = 0;
    for (const auto& e : fs::recursive_directory_iterator(a / step)) {
      if (!e.is_regular_file()) continue;
      const fs::path rel = fs::relative(e.path(), a / step);
      EXPECT_EQ(read_file(e.path()), read_file(b / step / rel)) << step << "/" << rel.string();
      ++n;
    }
    EXPECT_EQ(n, 8) << step;  // 2 configs x 2, generation config, tokenizer, trainer state, optimizer
  }
}

}  // namespace

TEST(CheckpointFiles, PartsMakeTheBytesSaveSafetensorsWrites) {
  const fs::path dir = checkpoint_dir("parts");
  torch::manual_seed(1);
  const at::Tensor a = torch::randn({5, 3}), b = torch::randn({7}).to(torch::kBFloat16);
  c3::io::save_safetensors((dir / "ref.safetensors").string(), {{"a", a}, {"b", b}}, {{"k", "v"}});
  CheckpointFile f;
  f.name = "sub/parts.safetensors";
  const at::Tensor flat = a.reshape(-1);
  f.tensors = {{"a", at::kFloat, {5, 3}, {flat.narrow(0, 0, 4).clone(), flat.narrow(0, 4, 11).clone()}},
               {"b", at::kBFloat16, {7}, {b}}};
  f.metadata = {{"k", "v"}};
  CheckpointFile text;
  text.name = "note.txt";
  text.text = "hello\n";
  c3::train::write_checkpoint_files(dir.string(), {f, text}, 3);
  EXPECT_EQ(read_file(dir / "sub" / "parts.safetensors"), read_file(dir / "ref.safetensors"));
  EXPECT_EQ(read_file(dir / "note.txt"), "hello\n");
}

TEST(CheckpointFiles, ShardedWeightsLoadBackAsTheSameCascade) {
  const fs::path dir = checkpoint_dir("shards");
  std::string tok;
  c3::cascade::C3Model m = tiny_model(dir, &tok);
  // About 0.7 MB of fp32 weights per side, in shards of at most 200 kB.
  const auto files = c3::train::model_files(m, tok, at::kFloat, 200'000);
  int shards = 0;
  for (const auto& f : files) shards += f.name.find("-of-") != std::string::npos;
  EXPECT_GE(shards, 6);
  // Three processes sharing the work write every file once between them.
  std::vector<std::string> all, shared;
  for (const auto& f : files) all.push_back(f.name);
  for (int w = 0; w < 3; ++w)
    for (const auto& f : c3::train::model_files(m, tok, at::kFloat, 200'000, w, 3))
      shared.push_back(f.name);
  std::sort(all.begin(), all.end());
  std::sort(shared.begin(), shared.end());
  EXPECT_EQ(shared, all);
  c3::train::write_checkpoint_files((dir / "ckpt").string(), files, 4);
  const auto idx = c3::io::JsonFile::load((dir / "ckpt" / "llm1" / "model.safetensors.index.json").string());
  EXPECT_EQ(idx.json().at("weight_map").size(), m->encoder->named_parameters().size());
  EXPECT_FALSE(fs::exists(dir / "ckpt" / "model.safetensors"));

  c3::cascade::LoadedC3 l = c3::cascade::load_c3((dir / "ckpt").string(), at::kFloat, at::kCPU);
  auto want = m->named_parameters(), got = l.model->named_parameters();
  ASSERT_EQ(want.size(), got.size());
  for (const auto& p : want)
    EXPECT_TRUE(torch::equal(p.value(), got[p.key()])) << p.key() << " differs after the round trip";

  // The same cascade in one file per side: the same weights, what save_c3 writes.
  c3::train::write_checkpoint_files((dir / "single").string(), c3::train::model_files(m, tok, at::kFloat), 2);
  c3::cascade::save_c3(m, tok, (dir / "save_c3").string(), at::kFloat);
  for (const char* f : {"model.safetensors", "llm1/model.safetensors", "config.json",
                        "llm1/config.json", "generation_config.json", "tokenizer.json"})
    EXPECT_EQ(read_file(dir / "single" / f), read_file(dir / "save_c3" / f)) << f;
}

// Training writes its checkpoints in the background by default: the files must be those of a run
// that waits for each checkpoint.
TEST(CheckpointFiles, BackgroundCheckpointsEqualWaitedOnes) {
  setenv("C3_NO_PROGRESS", "1", 1);
  const fs::path dir = checkpoint_dir("background");
  write_tiny_setup(dir, synthetic_docs(6));
  c3::train::TrainOptions o = tiny_options(dir, "background");
  o.lengths = "fixed:16";
  o.max_steps = 4;
  o.save_every = 2;
  o.checkpoint_threads = 3;
  const auto a = c3::train::train(o);
  o = tiny_options(dir, "waited");
  o.lengths = "fixed:16";
  o.max_steps = 4;
  o.save_every = 2;
  o.background_checkpoints = false;
  const auto b = c3::train::train(o);
  expect_same_checkpoints(dir / "background", dir / "waited");
  EXPECT_EQ(read_log(dir / "background" / "train_log.jsonl", "checkpoint").size(), 2u);
}

// Snapshots copied into the run's reserved host memory (host_staging.h; on by default only on a
// GPU) write the same files as snapshots taken tensor by tensor, the second checkpoint reusing
// the memory the first was written from; the reservation holds a whole snapshot.
TEST(CheckpointFiles, SnapshotsInReservedHostMemoryWriteTheSameFiles) {
  setenv("C3_NO_PROGRESS", "1", 1);
  const fs::path dir = checkpoint_dir("staging");
  write_tiny_setup(dir, synthetic_docs(6));
  auto run = [&](const char* name, const char* staging) {
    setenv("C3_CKPT_STAGING", staging, 1);
    c3::train::TrainOptions o = tiny_options(dir, name);
    o.lengths = "fixed:16";
    o.max_steps = 4;
    o.save_every = 2;
    c3::train::train(o);
    unsetenv("C3_CKPT_STAGING");
  };
  run("staged", "1");
  run("plain", "0");
  expect_same_checkpoints(dir / "staged", dir / "plain");
  const auto staged = read_log(dir / "staged" / "train_log.jsonl", "checkpoint");
  ASSERT_EQ(staged.size(), 2u);
  for (const auto& r : staged) {
    EXPECT_GT(r.value("staging_used_bytes", int64_t{0}), 0) << r.dump();
    EXPECT_EQ(r.value("staging_overflow_bytes", int64_t{-1}), 0) << r.dump();
    EXPECT_GE(r.value("staging_bytes", int64_t{0}), r.value("staging_used_bytes", int64_t{0}));
  }
  for (const auto& r : read_log(dir / "plain" / "train_log.jsonl", "checkpoint"))
    EXPECT_FALSE(r.contains("staging_bytes")) << r.dump();
}

TEST(CheckpointFiles, AFileThatCannotBeWrittenIsNamed) {
  const fs::path dir = checkpoint_dir("unwritable");
  write_file(dir / "blocker", "a file where a folder should be");
  CheckpointFile f;
  f.name = "blocker/inside.txt";
  f.text = "x";
  try {
    c3::train::write_checkpoint_files(dir.string(), {f}, 2);
    FAIL() << "expected an error";
  } catch (const c3::Error& e) {
    EXPECT_NE(std::string(e.what()).find("inside.txt"), std::string::npos) << e.what();
  }
}

// Checkpoints from before sharded state hold optimizer.pt, a LibTorch archive with the moments
// per parameter (group "g0" decayed, "g1" not, in module order). Such a checkpoint, made here from
// a new one, must resume exactly as the new one does.
TEST(CheckpointFiles, AnOlderCheckpointWithOptimizerPtResumesTheSame) {
  setenv("C3_NO_PROGRESS", "1", 1);
  const fs::path dir = checkpoint_dir("legacy");
  write_tiny_setup(dir, synthetic_docs(6));
  c3::train::TrainOptions o = tiny_options(dir, "run");
  o.stop_at_step = 2;
  const auto half = c3::train::train(o);
  const fs::path ckpt = half.last_checkpoint;

  // The old file, from the new one: flat ranges back to per-parameter tensors.
  c3::cascade::C3Model m = c3::cascade::load_c3(ckpt.string(), at::kFloat, at::kCPU).model;
  const c3::train::ParamGroups g = c3::train::param_groups(m, "", false);
  const c3::train::ShardLayout layout(c3::train::gradient_order(g.all), 1, 0);
  std::map<const void*, int> index;
  for (size_t i = 0; i < layout.params().size(); ++i) index[layout.params()[i].unsafeGetTensorImpl()] = i;
  auto f = c3::io::SafetensorsFile::open((ckpt / "optimizer" / "state-000000000000.safetensors").string());
  torch::serialize::OutputArchive ar;
  ar.write("step", at::scalar_tensor(int64_t{2}, at::kLong));
  for (int gi = 0; gi < 2; ++gi) {
    const auto& ps = gi == 0 ? g.decay : g.no_decay;
    ar.write("g" + std::to_string(gi) + ".count", at::scalar_tensor(int64_t(ps.size()), at::kLong));
    for (size_t i = 0; i < ps.size(); ++i) {
      const int k = index.at(ps[i].unsafeGetTensorImpl());
      const std::string key = "g" + std::to_string(gi) + ".p" + std::to_string(i) + ".";
      for (const char* name : {"exp_avg", "exp_avg_sq"})
        ar.write(key + name, f->tensor(name).narrow(0, layout.offset(k), ps[i].numel()).view(ps[i].sizes()).clone());
      ar.write(key + "step", f->tensor("steps")[k].clone());
    }
  }
  const fs::path old = dir / "old" / ckpt.filename();
  fs::create_directories(old);
  for (const auto& e : fs::recursive_directory_iterator(ckpt)) {
    const fs::path rel = fs::relative(e.path(), ckpt);
    if (rel.begin()->string() == "optimizer") continue;
    if (e.is_directory()) fs::create_directories(old / rel);
    else fs::copy_file(e.path(), old / rel);
  }
  ar.save_to((old / "optimizer.pt").string());

  o.stop_at_step = 0;
  o.max_steps = 4;
  o.init = {};
  o.resume = ckpt.string();
  const auto a = c3::train::train(o);
  o.resume = old.string();
  o.out_dir = (dir / "from_old").string();
  const auto b = c3::train::train(o);
  EXPECT_GT(expect_same_checkpoint(a.last_checkpoint, b.last_checkpoint), 20);
}
