// c3 compress | decompress: text -> .c3 latents -> text; with --min-precision, verified.
#include <chrono>
#include <cstdio>
#include <iostream>
#include <sstream>

#include "c3/document_codec.h"
#include "cli/command.h"
#include "cli/model_flags.h"
#include "eval/text_metrics.h"
#include "eval/verified_compress.h"
#include "util/atomic_file.h"

namespace c3::cli {
namespace {

std::string slurp(const std::string& path) {
  auto in = open_input(path);
  std::ostringstream s;
  s << in->rdbuf();
  return s.str();
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void setup_compress(CLI::App& root) {
  auto* app = root.add_subcommand("compress", "Compress text into a .c3 latent file");
  static ModelFlags mf;
  static DecodeFlags df;
  static std::string in = "-", out;
  static int64_t chunk_tokens = 0, verify_floor = 0;
  static double min_precision = -1;
  static std::string latent_dtype = "bf16";
  mf.add(app);
  app->add_option("input", in, "text file, or - for stdin")->capture_default_str();
  app->add_option("-o,--output", out, "output .c3 file")->required();
  app->add_option("--chunk-tokens", chunk_tokens,
                  "max tokens per chunk (0 = the model's c3_max_passage_tokens)");
  app->add_option("--latent-dtype", latent_dtype, "bf16 | f32 for the stored latents")
      ->capture_default_str();
  app->add_option("--min-precision", min_precision,
                  "verify: decode each chunk after encoding it and cut any chunk below this char "
                  "precision (0..1) into halves, down to --verify-floor, below which it is stored "
                  "as plain tokens; the file records each chunk's precision. The check decodes with "
                  "the decode flags below, and decompress will too")
      ->check(CLI::Range(0.0, 1.0));
  app->add_option("--verify-floor", verify_floor,
                  "with --min-precision: smallest half tried, in tokens (0 = the model's latent "
                  "count L)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  df.add(app);  // with --min-precision: how the check decodes (decompress then does the same)
  app->callback([&]() {
    cascade::LoadedC3 m = mf.load();
    warn_if_chunks_too_long(m, chunk_tokens);
    auto stream = open_input(in);
    cascade::CompressOptions o;
    o.max_passage_tokens = chunk_tokens;
    o.batch_size = mf.batch;
    o.dtype = latent_dtype == "f32" ? "F32" : "BF16";
    const int64_t L = m.model->latent_len();
    auto t0 = std::chrono::steady_clock::now();
    if (min_precision < 0) {
      auto r = cascade::compress_to_file(m, *stream, in, out, o);
      std::fprintf(stderr, "%s: %lld tokens in %lld chunks -> %lld latents (%.1fx), %.2f s\n",
                   out.c_str(), (long long)r.tokens, (long long)r.chunks, (long long)(r.chunks * L),
                   double(r.tokens) / double(r.chunks * L), seconds_since(t0));
      return;
    }
    eval::VerifyOptions v;
    v.min_precision = min_precision;
    v.floor_tokens = verify_floor;
    v.decode = df.options();
    auto r = eval::compress_verified_to_file(m, *stream, in, out, o, v);
    std::fprintf(stderr,
                 "%s: %lld tokens -> %lld chunks as latents + %lld as plain tokens (%lld tokens) "
                 "= %lld slots (%.2fx); every chunk >= %.2f%% char precision (lowest %.2f%%); "
                 "%lld chunk encodings, %.2f s\n",
                 out.c_str(), (long long)r.source.tokens, (long long)r.latent_chunks,
                 (long long)r.plain_chunks, (long long)r.plain_tokens,
                 (long long)(r.latent_chunks * L + r.plain_tokens), r.ratio(L),
                 100.0 * min_precision, 100.0 * r.lowest_precision, (long long)r.encodes,
                 seconds_since(t0));
  });
}

// Says what a verified file records, and which decode settings decompression uses.
cascade::DecompressOptions verified_settings(const cascade::LatentFile& f, const std::string& in,
                                             const cascade::LoadedC3& m, const DecodeFlags& df) {
  const cascade::ChunkRecords& rec = f.meta.records;
  const cascade::Verification& v = *rec.verification;
  std::fprintf(stderr,
               "%s: %zu chunks (%lld as plain tokens), verified when written: every chunk >= "
               "%.2f%% char precision, lowest %.2f%% (%s, %s, beams %lld, no_repeat_ngram %lld, "
               "length_cap %g)\n",
               in.c_str(), rec.plain.size(), (long long)rec.n_plain(), 100.0 * v.min_precision,
               100.0 * rec.lowest_precision(), v.decode.device.c_str(), v.decode.dtype.c_str(),
               (long long)v.decode.num_beams, (long long)v.decode.no_repeat_ngram_size,
               v.decode.length_cap);
  std::vector<std::string> warnings;
  cascade::DecompressOptions o =
      cascade::decode_over_recorded(v.decode, df.overrides(), m, &warnings);
  for (const std::string& w : warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());
  return o;
}

void setup_decompress(CLI::App& root) {
  auto* app = root.add_subcommand("decompress", "Regenerate text from a .c3 latent file");
  static ModelFlags mf;
  static DecodeFlags df;
  static std::string in, out, reference;
  mf.add(app);
  df.add(app);
  app->add_option("input", in, ".c3 file")->required();
  app->add_option("-o,--output", out, "output text file (default: stdout)");
  app->add_option("--reference", reference,
                  "the source text: also print the output's char precision against it (stderr)");
  app->callback([&]() {
    cascade::LatentFile f = cascade::read_latents(in);
    cascade::LoadedC3 m = mf.load();
    cascade::check_latents_match(f, in, m.fingerprint, m.model->latent_len(),
                                 m.model->config.decoder.hidden_size);
    cascade::DecompressStreamOptions o;
    o.batch_size = mf.batch;
    o.decode = f.meta.records.verification ? verified_settings(f, in, m, df) : df.options();
    if (!reference.empty()) {
      std::ostringstream text;  // kept whole, to score it
      cascade::decompress_to_stream(m, f, text, o);
      if (out.empty()) {
        std::cout << text.str();
      } else {
        write_file_atomic(out, text.str());
      }
      const std::string ref = slurp(reference);
      std::fprintf(stderr, "%s: char precision %.4f%% against %s (%s)\n", in.c_str(),
                   100.0 * eval::char_precision(text.str(), ref), reference.c_str(),
                   text.str() == ref ? "exact" : "not exact");
    } else if (out.empty()) {
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
