// .c3 files in memory: compress_to_bytes gives exactly the bytes compress_to_file writes, and
// parse_latents reads them as read_latents reads the file, refusing damaged bytes by name.
#include <gtest/gtest.h>

#include <filesystem>
#include <sstream>

#include "c3/document_codec.h"
#include "c3/latent_file.h"
#include "testdata.h"
#include "util/atomic_file.h"
#include "util/error.h"

namespace c3 {
namespace {
namespace fs = std::filesystem;

TEST(LatentBytes, EqualTheFileAndReadBack) {
  cascade::LoadedC3 m =
      cascade::load_c3(test::testdata("c3/c3-tiny").string(), at::kFloat, at::Device(at::kCPU));
  const fs::path dir = test::binary_dir() / "test_out" / "latent_bytes";
  fs::create_directories(dir);
  const std::string text = "A first paragraph, long enough to need two chunks of it.\n\nAnd a "
                           "second one, with \xc3\xa9 and \xe2\x82\xac in it.";
  for (const char* dtype : {"BF16", "F32"}) {
    cascade::CompressOptions co;
    co.max_passage_tokens = 12;  // several chunks
    co.progress = false;
    co.dtype = dtype;
    const fs::path file = dir / (std::string(dtype) + ".c3");
    std::istringstream in(text);
    const auto on_disk = cascade::compress_to_file(m, in, "t", file.string(), co);
    cascade::CompressResult in_memory;
    const std::string bytes = cascade::compress_to_bytes(m, text, "t", co, &in_memory);
    EXPECT_GT(on_disk.chunks, 2);
    EXPECT_EQ(in_memory.chunks, on_disk.chunks);
    EXPECT_EQ(in_memory.tokens, on_disk.tokens);
    ASSERT_EQ(bytes, read_file(file)) << dtype;

    const cascade::LatentFile a = cascade::read_latents(file.string());
    const cascade::LatentFile b = cascade::parse_latents(bytes, "request");
    EXPECT_TRUE(a.latents.equal(b.latents));
    EXPECT_EQ(b.meta.chunk_tokens, a.meta.chunk_tokens);
    EXPECT_EQ(b.meta.chunk_bytes, a.meta.chunk_bytes);
    EXPECT_EQ(b.meta.model_fingerprint, m.fingerprint);
    EXPECT_EQ(b.meta.source_bytes, static_cast<int64_t>(text.size()));
  }
}

TEST(LatentBytes, DamagedBytesAreRefusedByName) {
  cascade::LoadedC3 m =
      cascade::load_c3(test::testdata("c3/c3-tiny").string(), at::kFloat, at::Device(at::kCPU));
  cascade::CompressOptions co;
  co.progress = false;
  const std::string bytes = cascade::compress_to_bytes(m, "Some text to compress.", "t", co);
  auto expect_error = [](const std::string& b, const std::string& needle) {
    try {
      cascade::parse_latents(b, "the request's latents");
      FAIL() << "accepted: " << needle;
    } catch (const Error& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("the request's latents"), std::string::npos) << what;
      EXPECT_NE(what.find(needle), std::string::npos) << what;
    }
  };
  expect_error("", "truncated");
  expect_error(bytes.substr(0, bytes.size() - 2), "beyond the data section");
  expect_error(std::string(8, '\0') + "{}", "malformed");
  std::string other = bytes;
  other.replace(other.find("c3-latents"), 10, "c3-latentz");
  expect_error(other, "not a .c3 latent file");
}

}  // namespace
}  // namespace c3
