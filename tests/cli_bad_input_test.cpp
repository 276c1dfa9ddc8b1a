// Bad input to the c3 binary: each case must fail with one clear stderr line and no output file.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include "cli_run.h"
#include "testdata.h"
#include "util/remove_tree.h"

namespace fs = std::filesystem;

namespace {
using c3::test::slurp;
using c3::test::q;

struct Result {
  int rc = -1;
  std::string err;
};

void spit(const fs::path& p, const std::string& s) {
  std::ofstream(p, std::ios::binary) << s;
}

// A fresh folder per test holding the inputs; everything the binary writes must land in it.
class CliBadInput : public ::testing::Test {
 protected:
  void SetUp() override {
    std::random_device rd;
    dir_ = fs::temp_directory_path() /
           ("c3_cli_bad_" + std::to_string(::getpid()) + "_" + std::to_string(rd()));
    fs::create_directories(dir_);
    spit(dir_ / "ok.txt", "The quick brown fox jumps over the lazy dog.\n");
  }
  void TearDown() override {
    std::error_code ec;
    c3::remove_tree(dir_, ec);
  }

  // Runs `c3 <args>` with stdout discarded and stderr captured.
  Result c3(const std::string& args) {
    const fs::path err = dir_ / "stderr.log";
    const std::string cmd = "C3_NO_PROGRESS=1 " + q(c3::test::binary_dir() / "c3") + " " + args +
                            " >/dev/null 2>" + q(err);
    Result r;
    const int st = std::system(cmd.c_str());
    r.rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
    r.err = slurp(err);
    fs::remove(err);
    return r;
  }

  // The common contract: non-zero exit, one line on stderr saying what failed, no output file.
  void expect_clean_failure(const Result& r, const std::string& needle, const fs::path& out) {
    EXPECT_NE(r.rc, 0) << r.err;
    ASSERT_FALSE(r.err.empty());
    const bool c3_error = r.err.rfind("c3: error: ", 0) == 0;
    EXPECT_TRUE(c3_error || r.err.find("Run with --help") != std::string::npos) << r.err;
    if (c3_error) {
      EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "not one line: " << r.err;
    }
    EXPECT_LT(r.err.size(), 1000u) << r.err.substr(0, 1000);
    EXPECT_NE(r.err.find(needle), std::string::npos) << "want '" << needle << "' in: " << r.err;
    if (!out.empty()) {
      EXPECT_FALSE(fs::exists(out)) << out;
    }
    for (const auto& e : fs::directory_iterator(dir_)) {
      const std::string name = e.path().filename().string();
      EXPECT_EQ(name.find(".part."), std::string::npos) << "left behind: " << name;
      EXPECT_EQ(name.find(".tmp."), std::string::npos) << "left behind: " << name;
    }
  }

  std::string model() { return q(c3::test::source_dir() / "models" / "c3-small"); }
  std::string compress(const fs::path& in, const fs::path& out) {
    return "compress --model " + model() + " " + q(in) + " -o " + q(out);
  }

  // A copy of c3-small whose model.safetensors is replaced by `weights`.
  fs::path broken_model(const std::string& weights) {
    const fs::path src = c3::test::source_dir() / "models" / "c3-small";
    const fs::path m = dir_ / "model";
    fs::copy(src, m, fs::copy_options::recursive);
    fs::remove(m / "model.safetensors");
    spit(m / "model.safetensors", weights);
    return m;
  }

  fs::path dir_;
};

}  // namespace

TEST_F(CliBadInput, EmptyInput) {
  spit(dir_ / "in.txt", "");
  expect_clean_failure(c3(compress(dir_ / "in.txt", dir_ / "o.c3")), "empty", dir_ / "o.c3");
}

TEST_F(CliBadInput, WhitespaceOnly) {
  spit(dir_ / "in.txt", "  \n\t\r\n   \n");
  expect_clean_failure(c3(compress(dir_ / "in.txt", dir_ / "o.c3")), "only whitespace",
                       dir_ / "o.c3");
}

TEST_F(CliBadInput, InvalidUtf8) {
  spit(dir_ / "in.txt", "fine text \xff\xfe then junk\n");
  expect_clean_failure(c3(compress(dir_ / "in.txt", dir_ / "o.c3")), "invalid UTF-8 at byte offset 10",
                       dir_ / "o.c3");
}

// A 50 MB single line: compress rejects a bad byte in its first 4 MB block without reading on,
// and tokenize reads the whole line and reports an unterminated JSON string in one short line.
TEST_F(CliBadInput, FiftyMegabyteSingleLine) {
  std::string big = "\xc3(" + std::string(50 << 20, 'a');
  spit(dir_ / "big.txt", big);
  expect_clean_failure(c3(compress(dir_ / "big.txt", dir_ / "o.c3")), "invalid UTF-8 at byte offset 0",
                       dir_ / "o.c3");
  big.replace(0, 2, "{\"text\": \"");
  spit(dir_ / "big.jsonl", big);
  const std::string tok = q(c3::test::source_dir() / "models" / "c3-small" /
                            "tokenizer.json");
  expect_clean_failure(c3("tokenize --tokenizer " + tok + " < " + q(dir_ / "big.jsonl")),
                       "stdin line 1: not JSON", {});
  big.back() = '\xff';
  spit(dir_ / "big.jsonl", big);
  expect_clean_failure(c3("tokenize --tokenizer " + tok + " < " + q(dir_ / "big.jsonl")),
                       "invalid UTF-8 at byte offset 52428809", {});
}

TEST_F(CliBadInput, GarbageModelFile) {
  std::string junk(100000, '\0');
  std::mt19937 rng(7);
  for (char& c : junk) c = static_cast<char>(rng());
  const fs::path m = broken_model(junk);
  expect_clean_failure(c3("compress --model " + q(m) + " " + q(dir_ / "ok.txt") + " -o " +
                          q(dir_ / "o.c3")),
                       "model.safetensors", dir_ / "o.c3");
}

TEST_F(CliBadInput, TruncatedModel) {
  const std::string full =
      slurp(c3::test::source_dir() / "models" / "c3-small" / "model.safetensors");
  const fs::path m = broken_model(full.substr(0, full.size() / 2));
  expect_clean_failure(c3("compress --model " + q(m) + " " + q(dir_ / "ok.txt") + " -o " +
                          q(dir_ / "o.c3")),
                       "truncated", dir_ / "o.c3");
}

TEST_F(CliBadInput, LatentsFromAnotherModel) {
  Result ok = c3(compress(dir_ / "ok.txt", dir_ / "ok.c3"));
  ASSERT_EQ(ok.rc, 0) << ok.err;
  const std::string tiny = q(c3::test::testdata("c3/c3-tiny"));
  expect_clean_failure(c3("decompress --model " + tiny + " " + q(dir_ / "ok.c3") + " -o " +
                          q(dir_ / "out.txt")),
                       "made by another model", dir_ / "out.txt");
}

TEST_F(CliBadInput, UnknownFlag) {
  Result r = c3(compress(dir_ / "ok.txt", dir_ / "o.c3") + " --no-such-flag");
  expect_clean_failure(r, "--no-such-flag", dir_ / "o.c3");
}

TEST_F(CliBadInput, MissingInputFile) {
  expect_clean_failure(c3(compress(dir_ / "missing.txt", dir_ / "o.c3")), "missing.txt",
                       dir_ / "o.c3");
}

TEST_F(CliBadInput, MissingModelFolder) {
  expect_clean_failure(c3("compress --model " + q(dir_ / "nomodel") + " " + q(dir_ / "ok.txt") +
                          " -o " + q(dir_ / "o.c3")),
                       "nomodel", dir_ / "o.c3");
}

TEST_F(CliBadInput, UnwritableOutputPath) {
  Result r = c3(compress(dir_ / "ok.txt", "/nonexistent/dir/x.c3"));
  expect_clean_failure(r, "cannot write '/nonexistent/dir/x.c3'", {});
  EXPECT_EQ(r.err.find(".part."), std::string::npos) << "name the target, not a side file";
}

// Not an error but a risky request: chunks longer than the model's own size work, with a warning
// on stderr that names the flag, the model's size and where to read more; none by default.
TEST_F(CliBadInput, ChunksAboveTheModelsSizeAreWarnedAbout) {
  Result quiet = c3(compress(dir_ / "ok.txt", dir_ / "a.c3"));
  EXPECT_EQ(quiet.rc, 0) << quiet.err;
  EXPECT_EQ(quiet.err.find("warning"), std::string::npos) << quiet.err;
  Result r = c3(compress(dir_ / "ok.txt", dir_ / "b.c3") + " --chunk-tokens 1280");
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_TRUE(fs::exists(dir_ / "b.c3"));
  EXPECT_NE(r.err.find("warning: --chunk-tokens 1280 is above this model's chunk size"),
            std::string::npos) << r.err;
  EXPECT_NE(r.err.find("MODEL_CARD.md"), std::string::npos) << r.err;
}
