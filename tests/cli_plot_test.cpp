// `c3 plot` from the command line: eval reports with legend labels, and the errors a user meets.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include "cli_run.h"
#include "util/remove_tree.h"

namespace c3::test {
namespace {

namespace fs = std::filesystem;

// A report as `c3 eval --json` writes it: two bins.
void write_report(const fs::path& path, const std::string& model) {
  std::ofstream(path) << R"({"model": ")" << model << R"(", "latents": 32, "data": "valid",
    "bins": [
      {"bin": "288-352", "n": 4, "mean_tokens": 320, "latents": 32, "ratio": 10.0,
       "char_precision": 0.99, "char_precision_ci95": 0.01, "exact_match": 0.75,
       "word_precision": 0.98, "token_accuracy": 0.995, "seconds": 1.0},
      {"bin": "608-672", "n": 4, "mean_tokens": 640, "latents": 32, "ratio": 20.0,
       "char_precision": 0.90, "char_precision_ci95": 0.05, "exact_match": 0.25,
       "word_precision": 0.88, "token_accuracy": 0.97, "seconds": 2.0}]})";
}

class CliPlot : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("c3_cli_plot_" + std::to_string(std::random_device{}()));
    fs::create_directories(dir_);
    write_report(dir_ / "greedy.json", "/tmp/run/step-100");
    write_report(dir_ / "beams.json", "/tmp/run/step-100");
  }
  void TearDown() override {
    std::error_code ec;
    c3::remove_tree(dir_, ec);
  }
  RunResult plot(const std::string& args) {
    return run_shell(quoted(binary_dir() / "c3") + " plot " + args + " 2>&1");
  }
  fs::path dir_;
};

TEST_F(CliPlot, OneLabelPerReportWritesThePng) {
  const fs::path png = dir_ / "precision.png";
  const RunResult r = plot("--eval " + q(dir_ / "greedy.json") + " " + q(dir_ / "beams.json") +
                           " --label greedy --label '8 beams' -o " + q(png));
  ASSERT_EQ(r.rc, 0) << r.out;
  ASSERT_TRUE(fs::exists(png));
  EXPECT_EQ(slurp(png).compare(0, 8, "\x89PNG\r\n\x1a\n"), 0);
}

TEST_F(CliPlot, LabelCountMustMatchTheReports) {
  const RunResult r = plot("--eval " + q(dir_ / "greedy.json") + " " + q(dir_ / "beams.json") +
                           " --label greedy -o " + q(dir_ / "x.png"));
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.out.find("1 --label for 2 --eval files"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(dir_ / "x.png"));
}

TEST_F(CliPlot, ABrokenReportIsNamed) {
  std::ofstream(dir_ / "broken.json") << "{\"model\": \"m\", \"bins\": []}";
  const RunResult r = plot("--eval " + q(dir_ / "broken.json") + " -o " + q(dir_ / "y.png"));
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.out.find("broken.json"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("latents"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace c3::test
