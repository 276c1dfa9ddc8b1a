// .c3 format version 2 on c3-tiny: plain-token chunks among latent ones come back in order and
// exactly, verification records round-trip, version 1 is still written when nothing needs 2 and
// still read, damaged version-2 metadata is refused naming the key, and files appear atomically.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "c3/document_codec.h"
#include "c3/latent_file.h"
#include "io/safetensors.h"
#include "testdata.h"
#include "util/atomic_file.h"
#include "util/error.h"

namespace c3 {
namespace {
namespace fs = std::filesystem;
using cascade::LatentFile;

fs::path out_dir() {
  const fs::path d = test::binary_dir() / "test_out" / "latent_file_v2";
  fs::create_directories(d);
  return d;
}

struct Tiny {
  cascade::LoadedC3 m =
      cascade::load_c3(test::testdata("c3/c3-tiny").string(), at::kFloat, at::kCPU);
  std::vector<std::string> texts = {"The river ran north. ", "Seven boats sailed at dawn. ",
                                    "A cold road led to the market. ", "Paper, stone, light."};
  std::vector<std::vector<int32_t>> ids;
  Tiny() {
    for (auto& t : texts) ids.push_back(m.tok->encode(t));
  }
  cascade::LatentMeta meta() const {
    cascade::LatentMeta meta;
    meta.model_fingerprint = m.fingerprint;
    meta.tokenizer_hash = m.tok->file_hash();
    meta.latent_len = m.model->latent_len();
    meta.hidden = m.model->config.decoder.hidden_size;
    meta.dtype = "F32";
    return meta;
  }
  cascade::Verification verification() const {
    cascade::Verification v;
    v.min_precision = 0.75;
    v.floor_tokens = 8;
    v.decode.max_new_tokens = 40;
    v.decode.no_repeat_ngram_size = 3;
    return v;
  }
  // Chunks 0 and 2 as latents, 1 and 3 as plain ids; `plain` selects which are plain.
  std::string write(const std::string& name, const std::vector<bool>& plain) {
    const std::string path = (out_dir() / name).string();
    torch::NoGradGuard ng;
    cascade::LatentWriter w(path, meta());
    for (size_t i = 0; i < texts.size(); ++i) {
      const int64_t bytes = static_cast<int64_t>(texts[i].size());
      if (plain[i]) {
        w.append_plain(ids[i], bytes, 1.0);
      } else {
        w.append_verified(m.model->compress({ids[i]})[0], bytes,
                          static_cast<int64_t>(ids[i].size()), 0.5 + 0.1 * static_cast<double>(i));
      }
    }
    w.set_verification(verification());
    w.set_source(0, 0, 0);
    w.finish();
    return path;
  }
  std::string decompress(const LatentFile& f, int64_t batch) {
    std::ostringstream out;
    cascade::DecompressStreamOptions o;
    o.batch_size = batch;
    o.progress = false;
    o.decode = cascade::decompress_options(f.meta.records.verification->decode);
    cascade::decompress_to_stream(m, f, out, o);
    return out.str();
  }
  std::string decode_alone(size_t i) {
    torch::NoGradGuard ng;
    auto o = cascade::decompress_options(verification().decode);
    auto row =
        cascade::decode_latents(m, m.model->compress({ids[i]}), {(int64_t)ids[i].size()}, o)[0];
    return m.tok->decode(std::vector<int32_t>(row.begin(), row.end()), false);
  }
};

TEST(LatentFileV2, MixedChunksComeBackInOrderAndPlainOnesExactly) {
  Tiny t;
  const std::string path = t.write("mixed.c3", {false, true, false, true});
  const LatentFile f = cascade::read_latents(path);
  EXPECT_EQ(f.meta.format_version, 2);
  EXPECT_EQ(f.meta.records.plain, (std::vector<uint8_t>{0, 1, 0, 1}));
  ASSERT_EQ(f.meta.records.precision.size(), 4u);
  EXPECT_DOUBLE_EQ(f.meta.records.precision[2], 0.7);
  ASSERT_TRUE(f.meta.records.verification.has_value());
  EXPECT_EQ(f.meta.records.verification->decode.no_repeat_ngram_size, 3);
  EXPECT_EQ(f.meta.records.verification->floor_tokens, 8);
  EXPECT_EQ(f.latents.size(0), 2);
  EXPECT_EQ(f.plain_tokens.numel(), static_cast<int64_t>(t.ids[1].size() + t.ids[3].size()));
  const std::string want = t.decode_alone(0) + t.texts[1] + t.decode_alone(2) + t.texts[3];
  EXPECT_EQ(t.decompress(f, 1), want);
  EXPECT_EQ(t.decompress(f, 8), want);
}

TEST(LatentFileV2, AllPlainFileHoldsNoLatents) {
  Tiny t;
  const LatentFile f = cascade::read_latents(t.write("plain.c3", {true, true, true, true}));
  EXPECT_EQ(f.latents.size(0), 0);
  EXPECT_EQ(t.decompress(f, 2), t.texts[0] + t.texts[1] + t.texts[2] + t.texts[3]);
}

TEST(LatentFileV2, UnverifiedFilesStayVersion1AndVersion1StillReads) {
  Tiny t;
  std::istringstream in(t.texts[0] + t.texts[1]);
  cascade::CompressOptions co;
  co.progress = false;
  const std::string path = (out_dir() / "v1.c3").string();
  cascade::compress_to_file(t.m, in, "in", path, co);
  auto raw = io::SafetensorsFile::open(path);
  EXPECT_EQ(raw->metadata().at("format_version"), "1");
  EXPECT_EQ(raw->metadata().count("chunk_storage"), 0u);
  const LatentFile f = cascade::read_latents(path);
  EXPECT_EQ(f.meta.format_version, 1);
  EXPECT_FALSE(f.meta.records.verification.has_value());
  // Decodes as before: each chunk's greedy output.
  std::ostringstream out;
  cascade::DecompressStreamOptions o;
  o.progress = false;
  const auto rows = cascade::decompress_to_stream(t.m, f, out, o);
  torch::NoGradGuard ng;
  const auto direct = cascade::decode_latents(t.m, f.latents, f.meta.chunk_tokens, o.decode);
  EXPECT_EQ(rows, direct);
  // A version-1 file made by the c3 of before this format (fuzz seed, L = 4, C = 8).
  const fs::path seed = test::source_dir() / "fuzz/corpus/latent_file/valid.c3";
  const LatentFile old = cascade::read_latents(seed.string());
  EXPECT_EQ(old.meta.format_version, 1);
  EXPECT_EQ(old.meta.records.plain, std::vector<uint8_t>(old.latents.size(0), 0));
}

// The fuzz seeds of version 2 (fuzz/make_seeds.py): the valid one reads, the damaged ones don't.
TEST(LatentFileV2, FuzzSeedsReadOrAreRefused) {
  const fs::path seeds = test::source_dir() / "fuzz/corpus/latent_file";
  const LatentFile f = cascade::read_latents((seeds / "v2_valid.c3").string());
  EXPECT_EQ(f.meta.records.plain, (std::vector<uint8_t>{0, 1, 0, 1}));
  EXPECT_EQ(f.plain_tokens.sum().item<int64_t>(), 7 + 8 + 9 + 10 + 11);
  EXPECT_DOUBLE_EQ(f.meta.records.verification->min_precision, 0.99);
  EXPECT_THROW(cascade::read_latents((seeds / "v2_truncated.c3").string()), Error);
  EXPECT_THROW(cascade::read_latents((seeds / "v2_bad_tokens.c3").string()), Error);
}

// Rewrites `src` with its tensors and metadata changed by `edit`, then expects read_latents to
// refuse it with a message holding `needle`.
void expect_refused(const std::string& src, const std::string& needle,
                    const std::function<void(std::map<std::string, std::string>&)>& edit) {
  auto f = io::SafetensorsFile::open(src);
  std::map<std::string, std::string> md = f->metadata();
  edit(md);
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto& t : f->tensors()) tensors.emplace_back(t.name, f->tensor(t.name));
  const std::string bad = (out_dir() / "bad.c3").string();
  io::save_safetensors(bad, tensors, md);
  try {
    cascade::read_latents(bad);
    FAIL() << "accepted; expected: " << needle;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("bad.c3"), std::string::npos) << e.what();
  }
}

TEST(LatentFileV2, DamagedMetadataIsRefusedNamingTheKey) {
  Tiny t;
  const std::string path = t.write("good.c3", {false, true, false, true});
  using Md = std::map<std::string, std::string>;
  expect_refused(path, "needs metadata 'chunk_storage'", [](Md& m) { m.erase("chunk_storage"); });
  expect_refused(path, "'chunk_storage' must be a list of 4 entries",
                 [](Md& m) { m["chunk_storage"] = R"(["latents","tokens"])"; });
  expect_refused(path, "must be \"latents\" or \"tokens\"",
                 [](Md& m) { m["chunk_storage"] = R"(["latents","tokens","latents","bits"])"; });
  expect_refused(path, "'chunk_precision' holds 1.5",
                 [](Md& m) { m["chunk_precision"] = "[1.5, 1, 1, 1]"; });
  expect_refused(path, "metadata 'verification' is not JSON",
                 [](Md& m) { m["verification"] = "{"; });
  expect_refused(path, "lacks the field 'decode'",
                 [](Md& m) { m["verification"] = R"({"min_precision":1,"floor_tokens":8})"; });
  expect_refused(path, "'chunk_precision' without 'verification'",
                 [](Md& m) { m.erase("verification"); });
  expect_refused(path, "'plain_tokens' must be I32",
                 [](Md& m) { m["chunk_tokens"] = R"([5, 1, 5, 1])"; });
  expect_refused(path, "must hold a tensor named 'latents' and nothing else", [](Md& m) {
    m["chunk_storage"] = R"(["latents","latents","latents","latents"])";
  });
  expect_refused(path, "reads versions 1 to 2; upgrade c3",
                 [](Md& m) { m["format_version"] = "3"; });
  // Truncated: the safetensors layer names the file.
  const std::string bytes = read_file(path);
  write_file_atomic(out_dir() / "cut.c3", bytes.substr(0, bytes.size() - 7));
  EXPECT_THROW(cascade::read_latents((out_dir() / "cut.c3").string()), Error);
}

TEST(LatentFileV2, PlainIdsOutsideTheVocabularyAreRefused) {
  Tiny t;
  t.ids[1][0] = 99999;
  const LatentFile f = cascade::read_latents(t.write("oov.c3", {false, true, false, true}));
  try {
    t.decompress(f, 4);
    FAIL() << "decoded an out-of-vocabulary id";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("chunk 1 holds token id 99999"), std::string::npos)
        << e.what();
  }
}

TEST(LatentFileV2, TheWriterRefusesAVerificationTheReaderWouldRefuse) {
  Tiny t;
  cascade::LatentWriter w((out_dir() / "floor0.c3").string(), t.meta());
  w.append_plain(t.ids[0], 10, 1.0);
  cascade::Verification v = t.verification();
  v.floor_tokens = 0;
  w.set_verification(v);
  try {
    w.finish();
    FAIL() << "wrote floor_tokens 0, which read_latents refuses";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("floor_tokens 0 (must be >= 1)"), std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(fs::exists(out_dir() / "floor0.c3"));
}

TEST(LatentFileV2, FileAppearsOnlyWhenFinished) {
  Tiny t;
  const fs::path path = out_dir() / "atomic.c3";
  write_file_atomic(path, std::string("old"));
  {
    cascade::LatentWriter w(path.string(), t.meta());
    w.append_plain(t.ids[0], 10, 1.0);
    // destroyed without finish(), as when compression fails half way
  }
  EXPECT_EQ(read_file(path), "old");
  for (const auto& e : fs::directory_iterator(out_dir()))
    EXPECT_EQ(e.path().filename().string().find("atomic.c3."), std::string::npos)
        << "left behind: " << e.path();
  t.write("atomic.c3", {true, true, true, true});
  EXPECT_NE(read_file(path), "old");
}

}  // namespace
}  // namespace c3
