// `c3 tokenize` with a qwen.tiktoken and `c3 tokenizer convert`: the converted tokenizer.json
// gives the same ids through the CLI, and a malformed file stops with its line named.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include "cli_run.h"
#include "testdata.h"
#include "util/atomic_file.h"
#include "util/remove_tree.h"

namespace {
using c3::test::q;
namespace fs = std::filesystem;

using c3::test::RunResult;

RunResult c3(const std::string& args) {
  return c3::test::run_shell(c3::test::c3_binary() + " " + args + " 2>&1");
}

// The 256 bytes and "ab", "the", " the" as a tiktoken file (base64 written out).
std::string toy_tiktoken() {
  static const char* a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (int b = 0; b < 256; ++b)
    out += std::string{a[b >> 2], a[(b & 3) << 4], '=', '='} + " " + std::to_string(b) + "\n";
  return out + "YWI= 256\ndGhl 257\nIHRoZQ== 258\n";
}

TEST(CliTokenizer, TiktokenAndItsConversionGiveTheSameIds) {
  const fs::path dir =
      c3::test::binary_dir() / "test_out" / "cli_tokenizer" / std::to_string(::getpid());
  c3::remove_tree(dir);
  fs::create_directories(dir / "model");
  c3::write_file_atomic(dir / "model" / "qwen.tiktoken", toy_tiktoken());
  c3::write_file_atomic(dir / "model" / "tokenizer_config.json",
                        R"({"tokenizer_class": "QWenTokenizer"})");
  c3::write_file_atomic(dir / "in.jsonl",
                        "{\"text\": \"ab the<img>x\"}\n{\"text\": \"<|im_end|>\"}\n");
  const std::string want = "{\"ids\": [256, 258, 473, 120]}\n{\"ids\": [261]}\n";

  RunResult r = c3("tokenize --tokenizer " + q(dir / "model" / "qwen.tiktoken") + " < " +
                   q(dir / "in.jsonl"));
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_EQ(r.out, want);
  r = c3("tokenize --tokenizer " + q(dir / "model") + " < " + q(dir / "in.jsonl"));
  EXPECT_EQ(r.out, want);

  r = c3("tokenizer convert --from " + q(dir / "model") + " --out " + q(dir / "tokenizer.json"));
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("\"ranks\":259"), std::string::npos) << r.out;
  r = c3("tokenize --tokenizer " + q(dir / "tokenizer.json") + " < " + q(dir / "in.jsonl"));
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_EQ(r.out, want);

  // A tokenizer.json is not a conversion source; a broken line is named.
  r = c3("tokenizer convert --from " + q(dir / "tokenizer.json") + " --out " + q(dir / "x.json"));
  EXPECT_EQ(r.rc, 1) << r.out;
  EXPECT_NE(r.out.find("expected a qwen.tiktoken"), std::string::npos) << r.out;
  c3::write_file_atomic(dir / "model" / "qwen.tiktoken", toy_tiktoken() + "Zm9v 300\n");
  r = c3("tokenize --tokenizer " + q(dir / "model") + " < " + q(dir / "in.jsonl"));
  EXPECT_EQ(r.rc, 1) << r.out;
  EXPECT_NE(r.out.find("qwen.tiktoken: line 260: rank 300 leaves a gap"), std::string::npos)
      << r.out;
  EXPECT_FALSE(fs::exists(dir / "x.json"));
  c3::remove_tree(dir);
}

}  // namespace
