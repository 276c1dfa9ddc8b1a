// Crash safety of `c3 train` checkpoints (issue 9): the built c3 binary is SIGKILLed many times
// at varied moments (startup, a training step, while a checkpoint folder is being written, right
// after it is renamed into place, while old ones are pruned), and after every kill
//   - the newest checkpoint (train::latest_checkpoint, what --resume picks) is never older than
//     the one before the kill, is complete and loads (weights, tokenizer, optimizer state), and
//     its trainer_state.json names its own step;
//   - the next run resumes from it (a run that ends on its own must exit 0).
// At the end an unkilled resume must finish, and its weights must equal, bit for bit, those of a
// run that was never interrupted.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <torch/torch.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "c3/c3_model.h"
#include "testdata.h"
#include "train/trainer.h"
#include "util/remove_tree.h"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

fs::path crash_dir(const std::string& name) {
  const fs::path p = c3::test::binary_dir() / "test_out" / "train_crash" / name;
  c3::remove_tree(p);
  fs::create_directories(p);
  return p;
}

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

void spit(const fs::path& p, const std::string& s) { std::ofstream(p, std::ios::binary) << s; }

// The same tiny cascade as train_trainer_test (hidden 64, 2+2 layers, L = 8).
void write_setup(const fs::path& dir) {
  nlohmann::json c = {{"architectures", {"Qwen2ForCausalLM"}}, {"model_type", "qwen2"},
                      {"hidden_size", 64}, {"intermediate_size", 128}, {"num_hidden_layers", 2},
                      {"num_attention_heads", 4}, {"num_key_value_heads", 2}, {"vocab_size", 16},
                      {"rms_norm_eps", 1e-6}, {"rope_theta", 10000.0},
                      {"max_position_embeddings", 1024}, {"tie_word_embeddings", true},
                      {"hidden_act", "silu"}};
  spit(dir / "encoder.json", c.dump(2));
  spit(dir / "decoder.json", c.dump(2));
  static const char* kWords[] = {"the",   "river", "stone", "light",  "quiet", "north", "paper",
                                 "green", "seven", "under", "market", "cold",  "after", "small",
                                 "house", "road",  "winter", "bright", "over", "and"};
  uint64_t x = 977;
  std::string corpus;
  for (int d = 0; d < 64; ++d) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    const int words = 30 + static_cast<int>((x >> 33) % 41);
    std::string s;
    for (int w = 0; w < words; ++w) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      s += (w ? " " : "") + std::string(kWords[(x >> 33) % 20]);
    }
    corpus += nlohmann::json({{"text", s + "."}}).dump() + "\n";
  }
  spit(dir / "corpus.jsonl", corpus);
}

// `c3 train` writing into dir/run: a checkpoint every step; stops (and saves) at `stop_at`. The
// schedule (--steps) is the same for every run, so a resumed run continues the same trajectory.
std::vector<std::string> train_args(const fs::path& dir, const std::string& run, int64_t stop_at,
                                    const std::string& resume) {
  std::vector<std::string> a = {
      (c3::test::binary_dir() / "c3").string(), "train", "--out", (dir / run).string(),
      "--train", (dir / "corpus.jsonl").string(),
      "--tokenizer", c3::test::testdata("c3/c3-tiny/tokenizer.json").string(),
      "--encoder-config", (dir / "encoder.json").string(),
      "--decoder-config", (dir / "decoder.json").string(),
      "--latents", "8", "--max-passage-tokens", "128", "--lengths", "fixed:64",
      "--batch-size", "2", "--data-threads", "1", "--bucket-docs", "4", "--lr", "3e-3",
      "--warmup", "2", "--steps", "1000", "--stop-at-step", std::to_string(stop_at),
      "--save-every", "1",
      "--keep-last", "2", "--log-every", "1", "--seed", "3", "--no-plot"};
  if (!resume.empty()) {
    a.push_back("--resume");
    a.push_back(resume);
  }
  return a;
}

// Starts the binary with stdout/stderr to files in `dir`; returns its pid. Only async-signal-safe
// calls between fork and exec (LibTorch's threads may hold locks in this process).
pid_t spawn(const std::vector<std::string>& args, const fs::path& dir) {
  const std::string out = (dir / "stdout.log").string(), err = (dir / "stderr.log").string();
  std::vector<char*> argv;
  for (const auto& s : args) argv.push_back(const_cast<char*>(s.c_str()));
  argv.push_back(nullptr);
  std::vector<std::string> env_s = {"C3_NO_PROGRESS=1"};
  for (char** e = environ; *e; ++e)
    if (std::string(*e).rfind("C3_NO_PROGRESS=", 0) != 0) env_s.emplace_back(*e);
  std::vector<char*> envp;
  for (auto& s : env_s) envp.push_back(s.data());
  envp.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int fo = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int fe = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fo < 0 || fe < 0 || ::dup2(fo, 1) < 0 || ::dup2(fe, 2) < 0) ::_exit(126);
    ::execve(argv[0], argv.data(), envp.data());
    ::_exit(127);
  }
  return pid;
}

// Step number of a "step-0000012" / ".tmp-step-0000012" name, or -1.
int64_t step_of(const std::string& name, const std::string& prefix) {
  if (name.rfind(prefix, 0) != 0) return -1;
  try {
    return std::stoll(name.substr(prefix.size()));
  } catch (...) {
    return -1;
  }
}

// The largest step among entries of `run` named prefix + number (-1 when none).
int64_t newest(const fs::path& run, const std::string& prefix) {
  int64_t best = -1;
  std::error_code ec;
  for (fs::directory_iterator it(run, ec), end; !ec && it != end; it.increment(ec))
    best = std::max(best, step_of(it->path().filename().string(), prefix));
  return best;
}

// Everything --resume reads from a checkpoint must be there and load; returns its step.
int64_t check_checkpoint(const fs::path& ckpt) {
  const int64_t step = step_of(ckpt.filename().string(), "step-");
  EXPECT_GT(step, 0) << ckpt;
  nlohmann::json st;
  EXPECT_NO_THROW(st = nlohmann::json::parse(slurp(ckpt / "trainer_state.json"))) << ckpt;
  EXPECT_EQ(st.value("step", int64_t{-1}), step) << ckpt;
  EXPECT_TRUE(st.contains("data")) << ckpt;
  try {
    c3::cascade::LoadedC3 l = c3::cascade::load_c3(ckpt.string(), at::kFloat, at::kCPU);
    EXPECT_FALSE(l.fingerprint.empty());
    for (const auto& p : l.model->parameters())
      EXPECT_TRUE(torch::isfinite(p).all().item<bool>()) << ckpt;
    // The optimizer state's format belongs to the trainer: here it must only be there; the
    // resumes below (bit for bit against an uninterrupted run at the end) read it.
    EXPECT_GT(fs::file_size(ckpt / "optimizer" / "state-000000000000.safetensors"), 0u) << ckpt;
  } catch (const std::exception& e) {
    ADD_FAILURE() << ckpt << " does not load: " << e.what();
  }
  return step;
}

class TrainCrash : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fs::exists(c3::test::binary_dir() / "c3")) << "build the c3 binary first";
    ASSERT_TRUE(fs::exists(c3::test::testdata("c3/c3-tiny/tokenizer.json")));
  }
};

}  // namespace

TEST_F(TrainCrash, SigkillAtAnyMomentKeepsALoadableCheckpointAndResumes) {
  const fs::path dir = crash_dir("kill");
  write_setup(dir);
  const fs::path run = dir / "run";
  std::mt19937 rng(20261126);
  constexpr int kKills = 24;
  int64_t latest = 0;  // step of the newest checkpoint so far (0: none yet)
  int kills = 0, during_write = 0, after_rename = 0, clean_exits = 0, retries = 0;
  for (int i = 0; i < kKills; ++i) {
    const std::string resume = latest > 0 ? run.string() : "";
    const pid_t pid = spawn(train_args(dir, "run", latest + 2, resume), dir);
    ASSERT_GT(pid, 0);
    // Three kinds of moment, in turn: a random delay (startup, loading, a step or a save), while
    // a new .tmp-step-* folder is being written, or just after a new step-* folder appeared
    // (fsync of the run folder, pruning of old checkpoints, the next step). The last two wait
    // for their moment however long it takes: how fast the machine is changes only when.
    const int mode = i % 3;
    const auto deadline =
        mode == 0 ? Clock::now() + std::chrono::milliseconds(std::uniform_int_distribution<>(0, 2500)(rng))
                  : Clock::time_point::max();
    int status = 0;
    bool exited = false;
    while (Clock::now() < deadline) {
      if (::waitpid(pid, &status, WNOHANG) == pid) {
        exited = true;
        break;
      }
      if (mode == 1 && newest(run, ".tmp-step-") > latest) {
        std::this_thread::sleep_for(
            std::chrono::microseconds(std::uniform_int_distribution<>(0, 15000)(rng)));
        ++during_write;
        break;
      }
      if (mode == 2 && newest(run, "step-") > latest) {
        std::this_thread::sleep_for(
            std::chrono::microseconds(std::uniform_int_distribution<>(0, 3000)(rng)));
        ++after_rename;
        break;
      }
      std::this_thread::sleep_for(std::chrono::microseconds(300));
    }
    if (!exited) {
      ::kill(pid, SIGKILL);
      ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    }
    if (WIFSIGNALED(status)) {
      ASSERT_EQ(WTERMSIG(status), SIGKILL);
      ++kills;
    } else {
      // It got to --stop-at-step before the kill: that must be a clean finish.
      ASSERT_TRUE(WIFEXITED(status));
      ASSERT_EQ(WEXITSTATUS(status), 0) << "run " << i << ": " << slurp(dir / "stderr.log");
      ++clean_exits;
      // The moment came and went between two looks: this kind of moment again, a few times.
      if (mode != 0 && ++retries <= 8) --i;
    }

    const std::string ckpt = c3::train::latest_checkpoint(run.string());
    if (ckpt.empty()) {
      ASSERT_EQ(latest, 0) << "run " << i << ": the checkpoint of step " << latest << " is gone";
      continue;
    }
    const int64_t step = check_checkpoint(ckpt);
    ASSERT_FALSE(HasFailure()) << "after run " << i << " (mode " << mode << ")";
    ASSERT_GE(step, latest) << "run " << i << ": the newest checkpoint went back";
    latest = step;
  }
  // Most runs must really have been killed, some of them inside a checkpoint write.
  EXPECT_GE(kills, kKills * 2 / 3) << clean_exits << " runs finished before their kill";
  EXPECT_GE(during_write, 4);
  EXPECT_GE(after_rename, 4);
  ASSERT_GT(latest, 0) << "no checkpoint was ever written";

  // An unkilled resume finishes two steps later, exactly where an uninterrupted run gets.
  const int64_t final_step = latest + 2;
  for (const std::string& r : {std::string("run"), std::string("straight")}) {
    const pid_t pid =
        spawn(train_args(dir, r, final_step, r == "run" ? run.string() : ""), dir);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << r << ": " << slurp(dir / "stderr.log");
    EXPECT_NE(slurp(dir / "stdout.log").find("\"steps\":" + std::to_string(final_step)),
              std::string::npos)
        << slurp(dir / "stdout.log");
  }
  const std::string name = fs::path(c3::train::latest_checkpoint(run.string())).filename();
  ASSERT_EQ(step_of(name, "step-"), final_step);
  check_checkpoint(run / name);
  for (const char* f : {"model.safetensors", "llm1/model.safetensors"})
    EXPECT_TRUE(slurp(run / name / f) == slurp(dir / "straight" / name / f))
        << f << " after " << kills << " kills differs from the uninterrupted run";
  EXPECT_EQ(nlohmann::json::parse(slurp(run / name / "trainer_state.json")),
            nlohmann::json::parse(slurp(dir / "straight" / name / "trainer_state.json")));
  std::printf("[train_crash] %d kills (%d inside a checkpoint write, %d just after a rename), "
              "%d clean exits, resumed to step %lld\n",
              kills, during_write, after_rename, clean_exits, static_cast<long long>(final_step));
}

// A resumed run used to read the tokenizer from the checkpoint it resumed from at every save,
// and that folder is pruned after --keep-last newer saves: with --keep-last 2 the third save
// failed ("cannot read 'run/step-N/tokenizer.json'"). The trainer now copies the tokenizer into
// the run folder once.
TEST_F(TrainCrash, ResumedRunSavesMoreThanKeepLastCheckpoints) {
  const fs::path dir = crash_dir("keep_last");
  write_setup(dir);
  for (int64_t stop : {2, 6}) {
    std::vector<std::string> a = train_args(dir, "run", stop, stop == 2 ? "" : (dir / "run").string());
    for (size_t k = 0; k + 1 < a.size(); ++k)
      if (a[k] == "--keep-last") a[k + 1] = "2";
    const pid_t pid = spawn(a, dir);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "stop at " << stop << ": " << slurp(dir / "stderr.log");
  }
  EXPECT_EQ(fs::path(c3::train::latest_checkpoint((dir / "run").string())).filename(),
            "step-0000006");
}

// A run resumed at step S with --stop-at-step S used to save step S again, deleting step-S with
// remove_all before renaming the new folder in: a SIGKILL inside remove_all left a step-S with
// trainer_state.json but no weights, and --resume picked it and failed. Now a step whose
// checkpoint is already the current state is not re-saved, and a re-save of a different state
// moves the old folder aside before the new one takes its name.
TEST_F(TrainCrash, ResumeAtItsOwnStepLeavesTheCheckpointUntouched) {
  const fs::path dir = crash_dir("resave");
  write_setup(dir);
  const fs::path run = dir / "run", ckpt = run / "step-0000001";
  auto args = [&](int64_t stop, bool resume) {
    std::vector<std::string> a = train_args(dir, "run", stop, resume ? run.string() : "");
    for (size_t k = 0; k + 1 < a.size(); ++k)
      if (a[k] == "--keep-last") a[k + 1] = "1";
    return a;
  };
  auto wait_ok = [&](pid_t pid) {
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << slurp(dir / "stderr.log");
  };
  wait_ok(spawn(args(1, false), dir));
  const auto written = fs::last_write_time(ckpt / "model.safetensors");
  const std::string weights = slurp(ckpt / "model.safetensors");
  wait_ok(spawn(args(1, true), dir));
  EXPECT_EQ(fs::last_write_time(ckpt / "model.safetensors"), written) << "step 1 was rewritten";
  EXPECT_EQ(slurp(ckpt / "model.safetensors"), weights);
  for (auto& e : fs::directory_iterator(run))
    EXPECT_EQ(e.path().filename().string().rfind(".", 0), std::string::npos)
        << "left behind: " << e.path();
  check_checkpoint(ckpt);
  wait_ok(spawn(args(2, true), dir));  // and it still resumes
  EXPECT_EQ(fs::path(c3::train::latest_checkpoint(run.string())).filename(), "step-0000002");
}
