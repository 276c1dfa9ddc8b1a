// `c3 roundtrip` through the shipped model, greedy and with beam search: the sample text comes
// back exactly, and a bad --beams is refused with the flag's name.
#include <gtest/gtest.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "cli_run.h"
#include "testdata.h"

namespace {

namespace fs = std::filesystem;

using c3::test::RunResult;

RunResult roundtrip(const std::string& args) {
  const fs::path root = c3::test::source_dir();
  const std::string cmd = "C3_NO_PROGRESS=1 '" + (c3::test::binary_dir() / "c3").string() +
                          "' roundtrip --model '" + (root / "models" / "c3-small").string() +
                          "' " + args + " '" + (root / "docs" / "sample.txt").string() + "' 2>&1";
  return c3::test::run_shell(cmd);
}

std::string sample_text() {
  std::ifstream f(c3::test::source_dir() / "docs" / "sample.txt", std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

TEST(CliRoundtrip, GreedyAndBeamsGiveTheSampleBack) {
  const std::string want = sample_text();
  ASSERT_FALSE(want.empty());
  for (const char* beams : {"1", "3"}) {
    const RunResult r = roundtrip(std::string("--json --beams ") + beams);
    ASSERT_EQ(r.rc, 0) << r.out;
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_TRUE(j["exact_match"].get<bool>()) << beams << " beams: " << j["text"];
    EXPECT_DOUBLE_EQ(j["char_precision"].get<double>(), 1.0) << beams << " beams";
    // Trailing whitespace aside (the tokenizer keeps it), the text is the file's.
    std::string got = j["text"].get<std::string>(), w = want;
    while (!w.empty() && std::isspace(static_cast<unsigned char>(w.back()))) w.pop_back();
    while (!got.empty() && std::isspace(static_cast<unsigned char>(got.back()))) got.pop_back();
    EXPECT_EQ(got, w) << beams << " beams";
  }
}

// The human view: the summary line, the regenerated text, and a word diff when it differs (here
// cut short on purpose by --max-new-tokens).
TEST(CliRoundtrip, MarksWhereTheTextDiffers) {
  const RunResult exact = roundtrip("");
  ASSERT_EQ(exact.rc, 0) << exact.out;
  EXPECT_NE(exact.out.find("char precision 100.00% (exact)"), std::string::npos) << exact.out;
  EXPECT_EQ(exact.out.find("differences from the source"), std::string::npos) << exact.out;

  const RunResult cut = roundtrip("--max-new-tokens 8");
  ASSERT_EQ(cut.rc, 0) << cut.out;
  EXPECT_EQ(cut.out.find("(exact)"), std::string::npos) << cut.out;
  EXPECT_NE(cut.out.find("differences from the source"), std::string::npos) << cut.out;
  // The words after the eighth token are missing from the regenerated text.
  EXPECT_NE(cut.out.find("[-"), std::string::npos) << cut.out;
  EXPECT_NE(cut.out.find("garden. I think that will be the best plan.\"-]"), std::string::npos)
      << cut.out;
}

TEST(CliRoundtrip, BeamsBelowOneAreRefused) {
  const RunResult r = roundtrip("--beams 0");
  EXPECT_NE(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("--beams"), std::string::npos) << r.out;
}

}  // namespace
