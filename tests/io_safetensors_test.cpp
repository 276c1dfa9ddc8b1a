// safetensors_test: round trips, zero-copy, golden checkpoints and every kind of bad file.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "io/safetensors.h"
#include "testdata.h"
#include "util/error.h"
#include "util/remove_tree.h"
#include "test_util.h"

using c3::test::error_of;

namespace fs = std::filesystem;
using c3::io::Checkpoint;
using c3::io::DType;
using c3::io::SafetensorsFile;
using nlohmann::json;

namespace {

// A fresh folder per test, removed afterwards.
class Safetensors : public ::testing::Test {
 protected:
  void SetUp() override {
    std::random_device rd;
    dir_ = fs::temp_directory_path() /
           ("c3_io_test_" + std::to_string(::getpid()) + "_" + std::to_string(rd()));
    fs::create_directories(dir_);
  }
  void TearDown() override { c3::remove_tree(dir_); }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  // Writes a raw file: u64 header length, header text, data bytes.
  std::string write_raw(const std::string& name, const std::string& header, const std::string& data,
                        int64_t claimed_len = -1) {
    const std::string p = path(name);
    std::ofstream out(p, std::ios::binary);
    const uint64_t n = claimed_len >= 0 ? static_cast<uint64_t>(claimed_len) : header.size();
    out.write(reinterpret_cast<const char*>(&n), 8);
    out << header << data;
    return p;
  }
  std::string write_raw(const std::string& name, const json& header, size_t data_bytes) {
    return write_raw(name, header.dump(), std::string(data_bytes, '\0'));
  }

  fs::path dir_;
};

#define EXPECT_ERROR_HAS(stmt, ...)                                                       \
  do {                                                                                    \
    const std::string msg = error_of([&] { stmt; });                                      \
    ASSERT_FALSE(msg.empty()) << "no c3::Error from: " #stmt;                             \
    for (const std::string& part : std::initializer_list<std::string>{__VA_ARGS__})       \
      EXPECT_NE(msg.find(part), std::string::npos) << "'" << part << "' not in: " << msg; \
  } while (0)

json entry(const std::string& dtype, std::vector<int64_t> shape, uint64_t begin, uint64_t end) {
  return {{"dtype", dtype}, {"shape", shape}, {"data_offsets", {begin, end}}};
}

bool bitwise_equal(const at::Tensor& a, const at::Tensor& b) {
  if (a.scalar_type() != b.scalar_type() || a.sizes() != b.sizes()) return false;
  at::Tensor x = a.contiguous(), y = b.contiguous();
  if (x.nbytes() == 0) return true;  // an empty tensor may have a null data pointer (memcmp: UB)
  return std::memcmp(x.data_ptr(), y.data_ptr(), x.nbytes()) == 0;
}

// Random bytes reinterpreted as each dtype: covers NaN payloads, infinities, -0 and subnormals,
// which a value comparison would miss.
std::vector<std::pair<std::string, at::Tensor>> all_dtype_tensors() {
  at::manual_seed(7);
  const std::vector<std::pair<std::string, at::ScalarType>> kinds = {
      {"f64", at::kDouble},    {"f32", at::kFloat}, {"f16", at::kHalf},
      {"bf16", at::kBFloat16}, {"i64", at::kLong},  {"i32", at::kInt},
      {"i16", at::kShort},     {"i8", at::kChar},   {"u8", at::kByte}};
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& [name, st] : kinds) {
    const int64_t elem = c10::elementSize(st);
    at::Tensor raw = at::randint(0, 256, {3 * 5 * elem}, at::kByte);
    out.emplace_back(name, raw.view(st).view({3, 5}));
  }
  out.emplace_back("bool", at::randint(0, 2, {4, 2}, at::kByte).to(at::kBool));
  out.emplace_back("scalar", at::tensor(3.5, at::kDouble).reshape({}));
  out.emplace_back("empty", at::zeros({0, 3}, at::kFloat));
  // Non-contiguous input: the writer must store the logical order.
  out.emplace_back("transposed", at::arange(12, at::kInt).view({3, 4}).t());
  return out;
}

}  // namespace

TEST_F(Safetensors, RoundTripAllDtypesWithMetadata) {
  const auto tensors = all_dtype_tensors();
  const std::map<std::string, std::string> meta = {{"format", "pt"}, {"note", "c3 ✓"}};
  const std::string p = path("all.safetensors");
  c3::io::save_safetensors(p, tensors, meta);

  auto f = SafetensorsFile::open(p);
  EXPECT_EQ(f->metadata(), meta);
  ASSERT_EQ(f->tensors().size(), tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& [name, want] = tensors[i];
    EXPECT_EQ(f->tensors()[i].name, name) << "data must be in the given order";
    at::Tensor got = f->tensor(name);
    EXPECT_TRUE(bitwise_equal(got, want)) << name;
    EXPECT_EQ(f->bytes(name).second, want.nbytes()) << name;
  }
  std::set<DType> dtypes;
  for (const auto& t : f->tensors()) dtypes.insert(t.dtype);
  EXPECT_EQ(dtypes.size(), 10u) << "every dtype is exercised";

  // Header length is a multiple of 8, so every tensor starts 8-byte aligned.
  std::ifstream in(p, std::ios::binary);
  uint64_t n = 0;
  in.read(reinterpret_cast<char*>(&n), 8);
  EXPECT_EQ(n % 8, 0u);
  std::string header(n, '\0');
  in.read(header.data(), n);
  EXPECT_EQ(json::parse(header)["__metadata__"]["note"], "c3 ✓");
}

TEST_F(Safetensors, NoMetadataKeyWhenEmpty) {
  const std::string p = path("nometa.safetensors");
  c3::io::save_safetensors(p, {{"x", at::ones({2}, at::kFloat)}});
  std::ifstream in(p, std::ios::binary);
  uint64_t n = 0;
  in.read(reinterpret_cast<char*>(&n), 8);
  std::string header(n, '\0');
  in.read(header.data(), n);
  EXPECT_FALSE(json::parse(header).contains("__metadata__"));
  EXPECT_TRUE(SafetensorsFile::open(p)->metadata().empty());
}

TEST_F(Safetensors, ZeroCopyWhenAlignedAndTensorOutlivesFile) {
  const std::string p = path("zc.safetensors");
  c3::io::save_safetensors(p, {{"a", at::arange(10, at::kFloat)}, {"b", at::arange(6, at::kLong)}});
  auto f = SafetensorsFile::open(p);
  at::Tensor a = f->tensor("a"), b = f->tensor("b");
  EXPECT_EQ(a.data_ptr(), static_cast<const void*>(f->bytes("a").first));
  EXPECT_EQ(b.data_ptr(), static_cast<const void*>(f->bytes("b").first));
  f.reset();  // the tensors keep the mapping alive
  EXPECT_TRUE(at::equal(a, at::arange(10, at::kFloat)));
  EXPECT_TRUE(at::equal(b, at::arange(6, at::kLong)));
  // In-place edits are copy-on-write: allowed, and the file is unchanged.
  a.add_(1);
  EXPECT_TRUE(at::equal(SafetensorsFile::open(p)->tensor("a"), at::arange(10, at::kFloat)));
}

TEST_F(Safetensors, MisalignedDataIsCopied) {
  // Header of 9 bytes puts the data at offset 17: not aligned for F32.
  at::Tensor want = at::arange(4, at::kFloat);
  json h = {{"t", entry("F32", {4}, 0, 16)}};
  std::string text = h.dump();
  text.append((9 - text.size() % 8) % 8, ' ');  // force length % 8 == 1
  ASSERT_EQ(text.size() % 8, 1u);
  std::string data(reinterpret_cast<const char*>(want.data_ptr()), 16);
  auto f = SafetensorsFile::open(write_raw("mis.safetensors", text, data));
  at::Tensor got = f->tensor("t");
  EXPECT_NE(got.data_ptr(), static_cast<const void*>(f->bytes("t").first));
  EXPECT_TRUE(at::equal(got, want));
}

TEST_F(Safetensors, WriterRejectsDuplicateNames) {
  EXPECT_ERROR_HAS(c3::io::save_safetensors(path("dup.safetensors"),
                                            {{"w", at::ones({2})}, {"w", at::zeros({2})}}),
                   "'w'", "twice", "dup.safetensors");
  EXPECT_FALSE(fs::exists(path("dup.safetensors")));
}

TEST_F(Safetensors, WriterRejectsUnsupportedDtype) {
  EXPECT_ERROR_HAS(
      c3::io::save_safetensors(path("c.safetensors"), {{"z", at::ones({2}, at::kComplexFloat)}}),
      "'z'", "convert");
}

// --- golden checkpoints ------------------------------------------------------------------------

TEST_F(Safetensors, GoldenShardedCheckpointLoads) {
  const fs::path dir = c3::test::testdata("qwen2/qwen2-untied-mha-sharded");
  Checkpoint c = Checkpoint::open(dir.string());
  const json index = json::parse(std::ifstream(dir / "model.safetensors.index.json"));
  EXPECT_EQ(c.names().size(), index["weight_map"].size());
  std::set<std::string> files;
  for (const std::string& n : c.names()) {
    files.insert(c.file_of(n));
    EXPECT_EQ(c.file_of(n), (dir / index["weight_map"][n].get<std::string>()).string());
    at::Tensor t = c.tensor(n);
    EXPECT_EQ(t.scalar_type(), at::kFloat) << n;
    EXPECT_EQ(t.sizes().vec(), c.info(n).shape) << n;
  }
  EXPECT_EQ(files.size(), 7u);
  EXPECT_TRUE(c.contains("lm_head.weight"));
  EXPECT_ERROR_HAS(c.tensor("model.nope"), "model.nope", "qwen2-untied-mha-sharded");
}

TEST_F(Safetensors, GoldenBf16AndTiedCheckpointsLoad) {
  Checkpoint bf = Checkpoint::open(c3::test::testdata("qwen2/qwen2-bf16-mqa").string());
  at::Tensor emb = bf.tensor("model.embed_tokens.weight");
  EXPECT_EQ(emb.scalar_type(), at::kBFloat16);
  EXPECT_EQ(emb.dim(), 2);
  EXPECT_TRUE(at::isfinite(emb.to(at::kFloat)).all().item<bool>());
  EXPECT_GT(emb.to(at::kFloat).abs().sum().item<float>(), 0.f);

  Checkpoint tied = Checkpoint::open(c3::test::testdata("qwen2/qwen2-tied-gqa").string());
  EXPECT_FALSE(tied.contains("lm_head.weight"));
  EXPECT_TRUE(tied.contains("model.norm.weight"));
}

TEST_F(Safetensors, GoldenFilesAllOpen) {
  size_t n_files = 0;
  for (const auto& e : fs::recursive_directory_iterator(c3::test::testdata_dir())) {
    if (e.path().extension() != ".safetensors") continue;
    auto f = SafetensorsFile::open(e.path().string());
    EXPECT_FALSE(f->tensors().empty()) << e.path();
    for (const auto& t : f->tensors()) EXPECT_EQ(f->tensor(t.name).numel(), t.numel());
    ++n_files;
  }
  EXPECT_GE(n_files, 15u);  // 3 qwen2 models (one with 7 shards), expected files, c3-tiny
}

TEST_F(Safetensors, RewriteOfGoldenFileIsBitwiseEqual) {
  const std::string src = c3::test::testdata("qwen2/qwen2-bf16-mqa/model.safetensors").string();
  auto f = SafetensorsFile::open(src);
  std::vector<std::pair<std::string, at::Tensor>> ts;
  for (const auto& t : f->tensors()) ts.emplace_back(t.name, f->tensor(t.name));
  c3::io::save_safetensors(path("re.safetensors"), ts, f->metadata());
  auto g = SafetensorsFile::open(path("re.safetensors"));
  EXPECT_EQ(g->metadata(), f->metadata());
  ASSERT_EQ(g->tensors().size(), f->tensors().size());
  for (const auto& t : f->tensors())
    EXPECT_TRUE(bitwise_equal(g->tensor(t.name), f->tensor(t.name))) << t.name;
}

// --- bad files ---------------------------------------------------------------------------------

TEST_F(Safetensors, RejectsFileShorterThanLength) {
  const std::string p = path("short.safetensors");
  std::ofstream(p, std::ios::binary) << "abcde";
  EXPECT_ERROR_HAS(SafetensorsFile::open(p), "short.safetensors", "truncated", "8-byte");
}

TEST_F(Safetensors, RejectsMissingFile) {
  EXPECT_ERROR_HAS(SafetensorsFile::open(path("nope.safetensors")), "nope.safetensors",
                   "No such file");
}

TEST_F(Safetensors, RejectsHeaderLengthBeyondFile) {
  const std::string p = write_raw("beyond.safetensors", "{}", "", 1000);
  EXPECT_ERROR_HAS(SafetensorsFile::open(p), "beyond.safetensors", "header length 1000",
                   "beyond the end");
}

TEST_F(Safetensors, RejectsInsaneHeaderLength) {
  const std::string p = write_raw("huge.safetensors", "{}", "", int64_t{1} << 62);
  EXPECT_ERROR_HAS(SafetensorsFile::open(p), "huge.safetensors", "not sane");
}

TEST_F(Safetensors, RejectsTruncatedGoldenFile) {
  const std::string src = c3::test::testdata("qwen2/qwen2-tied-gqa/model.safetensors").string();
  std::ifstream in(src, std::ios::binary);
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string p = path("trunc.safetensors");
  std::ofstream(p, std::ios::binary) << all.substr(0, all.size() / 2);
  EXPECT_ERROR_HAS(SafetensorsFile::open(p), "trunc.safetensors", "tensor '", "truncated");
}

TEST_F(Safetensors, RejectsMalformedJson) {
  const std::string p = write_raw("bad.safetensors", "{\"a\": {\"dtype\": ", "");
  EXPECT_ERROR_HAS(SafetensorsFile::open(p), "bad.safetensors", "malformed");
  const std::string q = write_raw("arr.safetensors", "[1, 2]", "");
  EXPECT_ERROR_HAS(SafetensorsFile::open(q), "arr.safetensors", "not an object");
}

TEST_F(Safetensors, RejectsDuplicateNames) {
  const std::string e = entry("F32", {2}, 0, 8).dump();
  const std::string p =
      write_raw("dup.safetensors", "{\"w\": " + e + ", \"w\": " + e + "}", std::string(8, '\0'));
  EXPECT_ERROR_HAS(SafetensorsFile::open(p), "dup.safetensors", "'w'", "duplicate");
}

TEST_F(Safetensors, RejectsOverlappingRanges) {
  json h = {{"a", entry("F32", {4}, 0, 16)}, {"b", entry("F32", {4}, 8, 24)}};
  const std::string p = write_raw("overlap.safetensors", h, 24);
  EXPECT_ERROR_HAS(SafetensorsFile::open(p), "overlap.safetensors", "'a'", "'b'", "overlaps");
}

TEST_F(Safetensors, RejectsDtypeShapeRangeMismatch) {
  json h = {{"w", entry("F32", {2, 2}, 0, 12)}};
  const std::string p = write_raw("mismatch.safetensors", h, 12);
  EXPECT_ERROR_HAS(SafetensorsFile::open(p), "mismatch.safetensors", "'w'", "F32", "[2, 2]",
                   "16 bytes", "12 bytes");
}

TEST_F(Safetensors, RejectsRangesNotCoveringData) {
  json tail = {{"a", entry("F32", {4}, 0, 16)}};
  EXPECT_ERROR_HAS(SafetensorsFile::open(write_raw("tail.safetensors", tail, 32)),
                   "tail.safetensors", "[16, 32)", "no tensor", "cover");
  json gap = {{"a", entry("F32", {2}, 0, 8)}, {"b", entry("F32", {2}, 16, 24)}};
  EXPECT_ERROR_HAS(SafetensorsFile::open(write_raw("gap.safetensors", gap, 24)), "gap.safetensors",
                   "[8, 16)", "'b'", "cover");
}

TEST_F(Safetensors, RejectsRangeBeyondData) {
  json h = {{"a", entry("F32", {4}, 0, 16)}};
  EXPECT_ERROR_HAS(SafetensorsFile::open(write_raw("past.safetensors", h, 8)), "past.safetensors",
                   "'a'", "beyond the data section");
}

TEST_F(Safetensors, RejectsHugeShapeWithoutAllocating) {
  const auto t0 = std::chrono::steady_clock::now();
  json overflow = {{"big", entry("F32", {int64_t{1} << 40, int64_t{1} << 40}, 0, 16)}};
  EXPECT_ERROR_HAS(SafetensorsFile::open(write_raw("ovf.safetensors", overflow, 16)),
                   "ovf.safetensors", "'big'", "more elements");
  // No overflow, but 4 TiB claimed over 16 bytes of data.
  json huge = {{"big", entry("F32", {int64_t{1} << 20, int64_t{1} << 20}, 0, uint64_t{4} << 40)}};
  EXPECT_ERROR_HAS(SafetensorsFile::open(write_raw("huge.safetensors", huge, 16)),
                   "huge.safetensors", "'big'", "beyond the data section");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
}

TEST_F(Safetensors, RejectsBadEntryFields) {
  struct Case {
    json e;
    std::string expect;
  };
  const std::vector<Case> cases = {
      {{{"shape", {2}}, {"data_offsets", {0, 8}}}, "lacks 'dtype'"},
      {{{"dtype", "F32"}, {"data_offsets", {0, 8}}}, "lacks 'shape'"},
      {{{"dtype", "F32"}, {"shape", {2}}}, "lacks 'data_offsets'"},
      {{{"dtype", 3}, {"shape", {2}}, {"data_offsets", {0, 8}}}, "not a string"},
      {{{"dtype", "F8_E4M3"}, {"shape", {8}}, {"data_offsets", {0, 8}}}, "unsupported dtype"},
      {{{"dtype", "F32"}, {"shape", "2"}, {"data_offsets", {0, 8}}}, "not an array"},
      {{{"dtype", "F32"}, {"shape", {-2}}, {"data_offsets", {0, 8}}}, "negative"},
      {{{"dtype", "F32"}, {"shape", {2.5}}, {"data_offsets", {0, 8}}}, "non-integer"},
      {{{"dtype", "F32"}, {"shape", {2}}, {"data_offsets", {0}}}, "data_offsets"},
      {{{"dtype", "F32"}, {"shape", {2}}, {"data_offsets", {8, 0}}}, "end before"},
      {json::array({1, 2}), "not an object"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    json h = {{"t" + std::to_string(i), cases[i].e}};
    const std::string p = write_raw("f" + std::to_string(i) + ".safetensors", h, 8);
    EXPECT_ERROR_HAS(SafetensorsFile::open(p), cases[i].expect, "'t" + std::to_string(i) + "'", p);
  }
}

TEST_F(Safetensors, RejectsNonStringMetadata) {
  json h = {{"__metadata__", {{"step", 3}}}, {"a", entry("U8", {1}, 0, 1)}};
  EXPECT_ERROR_HAS(SafetensorsFile::open(write_raw("meta.safetensors", h, 1)), "meta.safetensors",
                   "'step'", "must be strings");
}

TEST_F(Safetensors, MissingTensorNamesFileAndTensor) {
  c3::io::save_safetensors(path("one.safetensors"), {{"x", at::ones({1})}});
  auto f = SafetensorsFile::open(path("one.safetensors"));
  EXPECT_EQ(f->find("y"), nullptr);
  EXPECT_ERROR_HAS(f->tensor("y"), "one.safetensors", "'y'");
}

// --- checkpoint folders ------------------------------------------------------------------------

TEST_F(Safetensors, CheckpointWithNeitherFileNamesFolder) {
  EXPECT_ERROR_HAS(Checkpoint::open(dir_.string()), dir_.string(), "model.safetensors",
                   "model.safetensors.index.json");
  EXPECT_ERROR_HAS(Checkpoint::open(path("absent")), "absent", "does not exist");
}

TEST_F(Safetensors, CheckpointIndexNamingMissingShard) {
  c3::io::save_safetensors(path("model-00001-of-00002.safetensors"), {{"a", at::ones({2})}});
  json index = {
      {"weight_map",
       {{"a", "model-00001-of-00002.safetensors"}, {"b", "model-00002-of-00002.safetensors"}}}};
  std::ofstream(path("model.safetensors.index.json")) << index.dump();
  EXPECT_ERROR_HAS(Checkpoint::open(dir_.string()), dir_.string(),
                   "model-00002-of-00002.safetensors", "'b'", "lacks shard");
}

TEST_F(Safetensors, CheckpointIndexNamingTensorItsShardLacks) {
  c3::io::save_safetensors(path("model-00001-of-00001.safetensors"), {{"a", at::ones({2})}});
  json index = {{"weight_map",
                 {{"a", "model-00001-of-00001.safetensors"},
                  {"missing.weight", "model-00001-of-00001.safetensors"}}}};
  std::ofstream(path("model.safetensors.index.json")) << index.dump();
  EXPECT_ERROR_HAS(Checkpoint::open(dir_.string()), dir_.string(), "'missing.weight'",
                   "model-00001-of-00001.safetensors", "no such tensor");
}

TEST_F(Safetensors, CheckpointIndexWithoutWeightMap) {
  std::ofstream(path("model.safetensors.index.json")) << R"({"metadata": {}})";
  EXPECT_ERROR_HAS(Checkpoint::open(dir_.string()), "model.safetensors.index.json", "weight_map");
}

TEST_F(Safetensors, CheckpointSingleFile) {
  c3::io::save_safetensors(path("model.safetensors"),
                           {{"b", at::ones({2})}, {"a", at::zeros({3}, at::kBFloat16)}});
  Checkpoint c = Checkpoint::open(dir_.string());
  EXPECT_EQ(c.names(), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(c.info("a").dtype, DType::BF16);
  EXPECT_EQ(c.bytes("a").second, 6u);
  EXPECT_TRUE(at::equal(c.tensor("b"), at::ones({2})));
}
