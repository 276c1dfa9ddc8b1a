// Input helpers shared by compress, decompress and roundtrip.
#include "cli/model_flags.h"

#include <cstdio>
#include <fstream>
#include <iostream>

#include "util/error.h"

namespace c3::cli {

std::unique_ptr<std::istream> open_input(const std::string& path) {
  if (path == "-") return std::make_unique<std::istream>(std::cin.rdbuf());
  auto f = std::make_unique<std::ifstream>(path, std::ios::binary);
  if (!*f) fail("cannot read '{}': no such file or not readable", path);
  return f;
}

void warn_if_chunks_too_long(const cascade::LoadedC3& m, int64_t chunk_tokens) {
  const int64_t own = m.model->config.max_passage_tokens;
  if (chunk_tokens > own)
    std::fprintf(stderr,
                 "warning: --chunk-tokens %lld is above this model's chunk size %lld "
                 "(c3_max_passage_tokens in its config.json, %.0f tokens per latent); "
                 "expect lower fidelity, see its MODEL_CARD.md\n",
                 static_cast<long long>(chunk_tokens), static_cast<long long>(own),
                 double(own) / double(m.model->latent_len()));
}


}  // namespace c3::cli
