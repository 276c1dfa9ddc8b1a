// `c3 compress --min-precision 1` on the shipped model: a text that plain compression gets wrong
// (one chunk of 40 tokens per latent, twice what c3-small is made for) comes back exactly through
// `c3 decompress`, which reports the recorded precision and warns when a flag overrides the
// recorded decode settings.
#include <gtest/gtest.h>
#include <unistd.h>

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

class CliVerified : public ::testing::Test {
 protected:
  void SetUp() override {
    std::random_device rd;
    dir_ = fs::temp_directory_path() /
           ("c3_cli_verified_" + std::to_string(::getpid()) + "_" + std::to_string(rd()));
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    c3::remove_tree(dir_, ec);
  }
  // Runs `c3 <args> --model c3-small`; returns stderr, fails the test on a non-zero exit.
  std::string c3(const std::string& args) {
    const fs::path root = c3::test::source_dir();
    const std::string cmd = "C3_NO_PROGRESS=1 " + q(c3::test::binary_dir() / "c3") + " " + args +
                            " --model " + q(root / "models" / "c3-small") + " 2>" +
                            q(dir_ / "err.log");
    const int st = std::system(cmd.c_str());
    const std::string err = slurp(dir_ / "err.log");
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << args << "\n" << err;
    return err;
  }
  fs::path dir_;
};

}  // namespace

TEST_F(CliVerified, FullPrecisionGivesBackATextPlainCompressionGetsWrong) {
  // The story twice (about 1,270 tokens) in one chunk: 40 tokens a latent, twice c3-small's chunk.
  const std::string once = slurp(c3::test::source_dir() / "tests" / "data" / "lighthouse.txt");
  ASSERT_GT(once.size(), 2000u);
  const std::string source = once + "\n" + once;
  const fs::path text = dir_ / "lighthouse-twice.txt";
  std::ofstream(text, std::ios::binary) << source;
  c3("compress --chunk-tokens 1280 " + q(text) + " -o " + q(dir_ / "plain.c3"));
  c3("decompress " + q(dir_ / "plain.c3") + " -o " + q(dir_ / "plain.txt"));
  EXPECT_NE(slurp(dir_ / "plain.txt"), source) << "the premise: one 40x chunk does not come back";

  const std::string made =
      c3("compress --chunk-tokens 1280 --min-precision 1 " + q(text) + " -o " + q(dir_ / "v.c3"));
  EXPECT_NE(made.find("every chunk >= 100.00% char precision"), std::string::npos) << made;
  // --length-cap differs from the recorded 1.5: a warning, and (the chunks stop at <|im_end|>
  // well before either cap) the same exact text.
  const std::string said =
      c3("decompress --length-cap 2 " + q(dir_ / "v.c3") + " -o " + q(dir_ / "v.txt"));
  EXPECT_EQ(slurp(dir_ / "v.txt"), source);
  EXPECT_NE(said.find("verified when written: every chunk >= 100.00% char precision"),
            std::string::npos)
      << said;
  EXPECT_NE(said.find("warning: --length-cap (recorded 1.5, now 2)"), std::string::npos) << said;
}
