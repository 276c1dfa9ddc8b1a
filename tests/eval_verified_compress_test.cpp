// Verified compression on c3-tiny (random weights, so it reconstructs nothing exactly): at P = 1
// every chunk is halved down to the floor and stored plain, and the text comes back exactly; at
// P = 0 nothing is cut and the recorded precisions are those decompression really gives.
#include <gtest/gtest.h>

#include <filesystem>
#include <sstream>

#include "c3/latent_file.h"
#include "eval/text_metrics.h"
#include "eval/verified_compress.h"
#include "testdata.h"
#include "util/error.h"

namespace c3 {
namespace {
namespace fs = std::filesystem;

struct Outcome {
  eval::VerifiedResult r;
  cascade::LatentFile f;
};

class VerifiedCompress : public ::testing::Test {
 protected:
  cascade::LoadedC3 m =
      cascade::load_c3(test::testdata("c3/c3-tiny").string(), at::kFloat, at::kCPU);
  std::string text;
  void SetUp() override {
    for (int i = 0; i < 6; ++i)
      text += "Paragraph " + std::to_string(i) + ": the quiet river ran under an old bridge.\n\n";
  }
  Outcome compress(double p, int64_t floor) {
    const std::string path = (test::binary_dir() / "test_out" / "verified.c3").string();
    fs::create_directories(fs::path(path).parent_path());
    std::istringstream in(text);
    cascade::CompressOptions co;
    co.max_passage_tokens = 40;
    co.progress = false;
    co.batch_size = 3;
    eval::VerifyOptions v;
    v.min_precision = p;
    v.floor_tokens = floor;
    v.decode.max_new_tokens = 60;
    Outcome run;
    run.r = eval::compress_verified_to_file(m, in, "in", path, co, v);
    run.f = cascade::read_latents(path);
    return run;
  }
  std::vector<std::string> decompress_chunks(const cascade::LatentFile& f, std::string* joined) {
    std::ostringstream out;
    cascade::DecompressStreamOptions o;
    o.progress = false;
    o.batch_size = 3;
    o.decode = cascade::decompress_options(f.meta.records.verification->decode);
    std::vector<std::string> texts;
    for (const auto& row : cascade::decompress_to_stream(m, f, out, o))
      texts.push_back(m.tok->decode(std::vector<int32_t>(row.begin(), row.end()), false));
    *joined = out.str();
    return texts;
  }
};

TEST_F(VerifiedCompress, FullPrecisionHalvesToTheFloorAndComesBackExactly) {
  const Outcome run = compress(1.0, 6);
  const auto& rec = run.f.meta.records;
  EXPECT_GT(run.r.source.chunks, 1);
  EXPECT_EQ(run.r.latent_chunks, 0) << "a random model reconstructed a chunk exactly";
  EXPECT_GT(run.r.plain_chunks, run.r.source.chunks) << "failing chunks were not halved";
  EXPECT_GT(run.r.encodes, run.r.source.chunks);
  for (size_t i = 0; i < rec.plain.size(); ++i) {
    EXPECT_TRUE(rec.plain[i]);
    EXPECT_DOUBLE_EQ(rec.precision[i], 1.0);
    // Stored plain only where a half would fall below the floor: ceil(n / 2) < 6.
    EXPECT_LE(run.f.meta.chunk_tokens[i], 10) << "chunk " << i;
  }
  EXPECT_EQ(rec.verification->floor_tokens, 6);
  EXPECT_DOUBLE_EQ(rec.verification->min_precision, 1.0);
  EXPECT_EQ(rec.verification->decode.max_new_tokens, 60);
  EXPECT_EQ(rec.verification->decode.device, "cpu");
  std::string joined;
  decompress_chunks(run.f, &joined);
  EXPECT_EQ(joined, text);
  EXPECT_DOUBLE_EQ(run.r.ratio(8), double(run.r.source.tokens) / double(run.r.plain_tokens));
}

TEST_F(VerifiedCompress, ZeroPrecisionCutsNothingAndRecordsWhatDecompressionGives) {
  const Outcome run = compress(0.0, 0);
  const auto& rec = run.f.meta.records;
  EXPECT_EQ(run.r.plain_chunks, 0);
  EXPECT_EQ(run.r.latent_chunks, run.r.source.chunks);
  EXPECT_EQ(run.r.encodes, run.r.source.chunks);
  EXPECT_EQ(rec.verification->floor_tokens, 8) << "0 means L";
  std::string joined;
  const auto chunks = decompress_chunks(run.f, &joined);
  size_t at = 0;
  ASSERT_EQ(chunks.size(), rec.precision.size());
  for (size_t i = 0; i < chunks.size(); ++i) {
    const std::string src = text.substr(at, run.f.meta.chunk_bytes[i]);
    at += run.f.meta.chunk_bytes[i];
    EXPECT_DOUBLE_EQ(rec.precision[i], eval::char_precision(chunks[i], src)) << "chunk " << i;
    EXPECT_LT(rec.precision[i], 1.0);
  }
}

TEST_F(VerifiedCompress, FloorAboveTheChunkStoresFailuresPlainAtOnce) {
  const Outcome run = compress(1.0, 1000);
  EXPECT_EQ(run.r.encodes, run.r.source.chunks);
  EXPECT_EQ(run.r.plain_chunks, run.r.source.chunks);
  EXPECT_THROW(compress(1.5, 0), Error);
}

}  // namespace
}  // namespace c3
