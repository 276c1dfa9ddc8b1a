// c3 compress | decompress: text -> .c3 latents -> text.
#include <chrono>
#include <cstdio>
#include <iostream>

#include "c3/document_codec.h"
#include "cli/command.h"
#include "cli/model_flags.h"
#include "util/atomic_file.h"

namespace c3::cli {
namespace {

void setup_compress(CLI::App& root) {
  auto* app = root.add_subcommand("compress", "Compress text into a .c3 latent file");
  static ModelFlags mf;
  static std::string in = "-", out;
  static int64_t chunk_tokens = 0;
  static std::string latent_dtype = "bf16";
  mf.add(app);
  app->add_option("input", in, "text file, or - for stdin")->capture_default_str();
  app->add_option("-o,--output", out, "output .c3 file")->required();
  app->add_option("--chunk-tokens", chunk_tokens,
                  "max tokens per chunk (0 = the model's c3_max_passage_tokens)");
  app->add_option("--latent-dtype", latent_dtype, "bf16 | f32 for the stored latents")
      ->capture_default_str();
  app->callback([&]() {
    cascade::LoadedC3 m = mf.load();
    warn_if_chunks_too_long(m, chunk_tokens);
    auto stream = open_input(in);
    cascade::CompressOptions o;
    o.max_passage_tokens = chunk_tokens;
    o.batch_size = mf.batch;
    o.dtype = latent_dtype == "f32" ? "F32" : "BF16";
    auto t0 = std::chrono::steady_clock::now();
    auto r = cascade::compress_to_file(m, *stream, in, out, o);
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::fprintf(stderr, "%s: %lld tokens in %lld chunks -> %lld latents (%.1fx), %.2f s\n",
                 out.c_str(), (long long)r.tokens, (long long)r.chunks,
                 (long long)(r.chunks * m.model->latent_len()),
                 double(r.tokens) / (r.chunks * m.model->latent_len()), s);
  });
}

void setup_decompress(CLI::App& root) {
  auto* app = root.add_subcommand("decompress", "Regenerate text from a .c3 latent file");
  static ModelFlags mf;
  static DecodeFlags df;
  static std::string in, out;
  mf.add(app);
  df.add(app);
  app->add_option("input", in, ".c3 file")->required();
  app->add_option("-o,--output", out, "output text file (default: stdout)");
  app->callback([&]() {
    cascade::LatentFile f = cascade::read_latents(in);
    cascade::LoadedC3 m = mf.load();
    cascade::check_latents_match(f, in, m.fingerprint, m.model->latent_len(),
                                 m.model->config.decoder.hidden_size);
    cascade::DecompressStreamOptions o;
    o.batch_size = mf.batch;
    o.decode = df.options();
    if (out.empty()) {
      cascade::decompress_to_stream(m, f, std::cout, o);
    } else {
      write_file_atomic(out, [&](std::ostream& os) { cascade::decompress_to_stream(m, f, os, o); });
    }
  });
}

}  // namespace

C3_REGISTER_COMMAND("compress", setup_compress);
C3_REGISTER_COMMAND("decompress", setup_decompress);

}  // namespace c3::cli
