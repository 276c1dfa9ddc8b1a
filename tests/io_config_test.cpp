// hf_config_test: JsonFile errors name the key and the file; save_json round-trips.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "io/hf_config.h"
#include "testdata.h"
#include "util/remove_tree.h"
#include "test_util.h"

using c3::test::error_of;

namespace fs = std::filesystem;
using c3::io::JsonFile;

namespace {

class Config : public ::testing::Test {
 protected:
  void SetUp() override {
    std::random_device rd;
    dir_ = fs::temp_directory_path() /
           ("c3_cfg_test_" + std::to_string(::getpid()) + "_" + std::to_string(rd()));
    fs::create_directories(dir_);
  }
  void TearDown() override { c3::remove_tree(dir_); }

  std::string write(const std::string& name, const std::string& text) {
    const std::string p = (dir_ / name).string();
    std::ofstream(p) << text;
    return p;
  }

  fs::path dir_;
};

void expect_has(const std::string& msg, std::initializer_list<std::string> parts) {
  ASSERT_FALSE(msg.empty()) << "expected a c3::Error";
  for (const std::string& p : parts)
    EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
}

}  // namespace

TEST_F(Config, ReadsRequiredOptionalAndNested) {
  JsonFile f = JsonFile::load(write("config.json", R"({
    "hidden_size": 64, "rms_norm_eps": 1e-6, "tie_word_embeddings": true, "name": "x",
    "rope_parameters": {"rope_theta": 10000.0, "rope_type": "default"}, "sliding_window": null})"));
  EXPECT_EQ(f.required<int64_t>("hidden_size"), 64);
  EXPECT_DOUBLE_EQ(f.required<double>("rms_norm_eps"), 1e-6);
  EXPECT_TRUE(f.required<bool>("tie_word_embeddings"));
  EXPECT_EQ(f.optional<std::string>("name", ""), "x");
  EXPECT_EQ(f.optional<int64_t>("absent", 7), 7);
  EXPECT_FALSE(f.has("sliding_window")) << "null counts as absent";
  EXPECT_EQ(f.optional<int64_t>("sliding_window", 3), 3);

  std::optional<JsonFile> rope = f.object("rope_parameters");
  ASSERT_TRUE(rope.has_value());
  EXPECT_DOUBLE_EQ(rope->required<double>("rope_theta"), 10000.0);
  EXPECT_EQ(rope->path(), f.path());
  EXPECT_FALSE(f.object("absent").has_value());
  expect_has(error_of([&] { f.object("hidden_size"); }), {"hidden_size", "config.json", "object"});
}

TEST_F(Config, MissingRequiredKeyNamesKeyAndFile) {
  JsonFile f = JsonFile::load(write("config.json", R"({"vocab_size": 10})"));
  expect_has(error_of([&] { f.required<int64_t>("num_attention_heads"); }),
             {"num_attention_heads", (dir_ / "config.json").string(), "lacks required key"});
}

TEST_F(Config, WrongTypeNamesKeyFileAndTypes) {
  JsonFile f = JsonFile::load(write("config.json", R"({"hidden_size": "big"})"));
  expect_has(error_of([&] { f.required<int64_t>("hidden_size"); }),
             {"hidden_size", "config.json", "wrong type", "string", "\"big\""});
}

TEST_F(Config, MalformedJsonNamesFileAndPosition) {
  const std::string p = write("broken.json", "{\"a\": 1,\n \"b\": }");
  expect_has(error_of([&] { JsonFile::load(p); }), {p, "not valid JSON", "at byte 16"});
}

TEST_F(Config, NonObjectAndMissingFileNameTheFile) {
  const std::string p = write("list.json", "[1, 2, 3]");
  expect_has(error_of([&] { JsonFile::load(p); }), {p, "array", "object"});
  const std::string q = (dir_ / "absent.json").string();
  expect_has(error_of([&] { JsonFile::load(q); }), {q});
}

TEST_F(Config, SaveJsonRoundTripsAtomically) {
  const std::string p = (dir_ / "out.json").string();
  nlohmann::json j = {{"model_type", "C3"}, {"latent_token_len", 32}, {"nested", {{"a", 1.5}}}};
  c3::io::save_json(p, j);
  EXPECT_EQ(JsonFile::load(p).json(), j);
  c3::io::save_json(p, {{"v", 2}});  // overwrite in place
  EXPECT_EQ(JsonFile::load(p).required<int>("v"), 2);
  for (const auto& e : fs::directory_iterator(dir_))
    EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos) << "temp file left";
  expect_has(error_of([&] { c3::io::save_json((dir_ / "no/such/dir.json").string(), j); }),
             {"dir.json"});
}

TEST_F(Config, GoldenConfigsLoad) {
  for (const char* rel : {"qwen2/qwen2-tied-gqa/config.json", "qwen2/qwen2-bf16-mqa/config.json",
                          "c3/c3-tiny/config.json", "c3/c3-tiny/llm1/config.json"}) {
    JsonFile f = JsonFile::load(c3::test::testdata(rel).string());
    EXPECT_GT(f.required<int64_t>("hidden_size"), 0) << rel;
    EXPECT_GT(f.required<int64_t>("vocab_size"), 0) << rel;
  }
}

// Integers are read without undefined conversions (fuzzing found get<int>() on 1e300 and on
// numbers beyond the type): whole floats that fit are accepted, anything else names the key.
TEST_F(Config, IntegersOutOfRangeOrFractionalAreRefused) {
  JsonFile f = JsonFile::load(write("config.json", R"({"a": 1e300, "b": 2.5, "c": 1024.0,
      "d": 18446744073709551615, "e": -9223372036854775808, "f": 4294967296})"));
  expect_has(error_of([&] { f.required<int64_t>("a"); }), {"config.json", "'a'", "integer", "1e+300"});
  expect_has(error_of([&] { f.required<int64_t>("b"); }), {"'b'", "integer", "2.5"});
  EXPECT_EQ(f.required<int64_t>("c"), 1024);
  expect_has(error_of([&] { f.required<int64_t>("d"); }), {"'d'", "18446744073709551615"});
  EXPECT_EQ(f.required<int64_t>("e"), std::numeric_limits<int64_t>::min());
  expect_has(error_of([&] { f.required<int32_t>("f"); }), {"'f'", "4294967296"});
  EXPECT_EQ(f.required<int64_t>("f"), 4294967296LL);
}
