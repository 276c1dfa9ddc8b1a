// c3 compress | decompress | roundtrip: text -> .c3 latents -> text.
#include <chrono>
#include <fstream>
#include <iostream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "c3/document_codec.h"
#include "cli/cli_common.h"
#include "cli/command.h"
#include "eval/text_metrics.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/line_reader.h"

namespace c3::cli {
namespace {

struct ModelFlags {
  std::string model = default_model_dir();
  std::string device = "cpu";
  std::string dtype = "auto";
  int64_t batch = 8;
  void add(CLI::App* app) {
    app->add_option("--model", model, "C3 checkpoint folder (config.json, llm1/, tokenizer.json)")
        ->capture_default_str();
    app->add_option("--device", device, "cpu | cuda | cuda:N")->capture_default_str();
    app->add_option("--dtype", dtype, "f32 | bf16 | auto (bf16 on CUDA)")->capture_default_str();
    app->add_option("--batch", batch, "chunks per forward pass")->capture_default_str();
  }
  cascade::LoadedC3 load() const {
    at::Device d = parse_device(device);
    return cascade::load_c3(model, parse_dtype(dtype, d), d);
  }
};

struct DecodeFlags {
  int64_t no_repeat_ngram = 20;
  int64_t max_new_tokens = 4096;
  bool no_stop = false;
  double length_cap = 1.5;
  int64_t beams = 1;
  void add(CLI::App* app) {
    app->add_option("--beams", beams,
                    "beam search with this many beams (1 = greedy, as the paper); slower, and "
                    "it can recover where greedy decoding slips")
        ->capture_default_str()
        ->check(CLI::Range(int64_t{1}, int64_t{64}));
    app->add_option("--length-cap", length_cap,
                    "stop a chunk after this many times its source tokens (+16), as recorded in "
                    "the .c3 file; 0 = off")
        ->capture_default_str();
    app->add_option("--no-repeat-ngram", no_repeat_ngram, "ban repeated n-grams of this size (0 = off)")
        ->capture_default_str();
    app->add_option("--max-new-tokens", max_new_tokens, "cap on generated tokens per chunk")
        ->capture_default_str();
    app->add_flag("--no-stop", no_stop, "do not stop at <|im_end|>");
  }
  cascade::DecompressOptions options() const {
    cascade::DecompressOptions o;
    o.no_repeat_ngram_size = no_repeat_ngram;
    o.max_new_tokens = max_new_tokens;
    o.stop_at_im_end = !no_stop;
    o.length_cap = length_cap;
    o.num_beams = beams;
    return o;
  }
};

// Opens IN ("-" = stdin) as a stream; errors name the file.
std::unique_ptr<std::istream> open_input(const std::string& path) {
  if (path == "-") return std::make_unique<std::istream>(std::cin.rdbuf());
  auto f = std::make_unique<std::ifstream>(path, std::ios::binary);
  if (!*f) fail("cannot read '{}': no such file or not readable", path);
  return f;
}

// --chunk-tokens above the model's own chunk size (c3_max_passage_tokens) asks for more tokens
// per latent than the model was made for; c3-small, for one, drops from 98% at 10x to 30% at 20x.
// Allowed (it is the user's experiment), but said once on stderr.
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

// Compress + decompress in memory and score the result.
nlohmann::json roundtrip_one(cascade::LoadedC3& m, const std::string& text, const std::string& name,
                             const DecodeFlags& df, int64_t batch, int64_t chunk_tokens) {
  auto t0 = std::chrono::steady_clock::now();
  std::istringstream in(text);
  cascade::CompressOptions co;
  co.batch_size = batch;
  co.max_passage_tokens = chunk_tokens;
  co.progress = false;
  std::vector<at::Tensor> lat;
  std::vector<int64_t> source_lens;  // tokens per chunk
  auto r = cascade::compress_stream(
      m, in, name, co,
      [&](const at::Tensor& l, const std::vector<std::vector<int32_t>>& chunk_ids,
          const std::vector<int64_t>&) {
        lat.push_back(l);
        for (const auto& c : chunk_ids) source_lens.push_back(static_cast<int64_t>(c.size()));
      });
  at::Tensor all = at::cat(lat, 0);
  std::string out;
  std::vector<int64_t> ids;
  torch::NoGradGuard ng;
  for (int64_t i = 0; i < all.size(0); i += batch) {
    const int64_t b = std::min(batch, all.size(0) - i);
    cascade::DecompressOptions d = df.options();
    if (static_cast<int64_t>(source_lens.size()) == all.size(0))
      d.source_tokens.assign(source_lens.begin() + i, source_lens.begin() + i + b);
    auto gen = m.model->decompress(all.narrow(0, i, b), d);
    for (auto& row : gen) {
      out += m.tok->decode(std::vector<int32_t>(row.begin(), row.end()));
      ids.insert(ids.end(), row.begin(), row.end());
    }
  }
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const int64_t latents = r.chunks * m.model->latent_len();
  return {{"text", out},
          {"ids", ids},
          {"tokens", r.tokens},
          {"chunks", r.chunks},
          {"latents", latents},
          {"ratio", double(r.tokens) / latents},
          {"char_precision", eval::char_precision(out, text)},
          {"exact_match", out == text},
          {"seconds", s}};
}

void setup_roundtrip(CLI::App& root) {
  auto* app = root.add_subcommand(
      "roundtrip", "Compress then decompress text; print the regenerated text (or JSON with scores)");
  static ModelFlags mf;
  static DecodeFlags df;
  static std::string in = "-";
  static bool json = false, jsonl = false;
  static int64_t chunk_tokens = 0;
  mf.add(app);
  df.add(app);
  app->add_option("input", in, "text file (or JSONL with --jsonl), - for stdin")->capture_default_str();
  app->add_flag("--json", json, "print one JSON object: text, ids, tokens, latents, ratio, "
                "char_precision, seconds");
  app->add_flag("--jsonl", jsonl, "input is JSON lines {\"text\": ...}; print one JSON object per line");
  app->add_option("--chunk-tokens", chunk_tokens,
                  "max tokens per chunk (0 = the model's c3_max_passage_tokens)");
  app->callback([&]() {
    cascade::LoadedC3 m = mf.load();
    warn_if_chunks_too_long(m, chunk_tokens);
    if (jsonl) {
      CorpusReader reader({in});
      std::string text;
      while (reader.next(text)) {
        auto j = roundtrip_one(m, text, reader.where(), df, mf.batch, chunk_tokens);
        std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n" << std::flush;
      }
      return;
    }
    auto stream = open_input(in);
    std::stringstream ss;
    ss << stream->rdbuf();
    auto j = roundtrip_one(m, ss.str(), in == "-" ? "stdin" : in, df, mf.batch, chunk_tokens);
    if (json) {
      std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    } else {
      std::cout << j["text"].get<std::string>() << "\n";
      std::fprintf(stderr, "%lld tokens -> %lld latents (%.1fx), char precision %.2f%%, %.2f s\n",
                   (long long)j["tokens"].get<int64_t>(), (long long)j["latents"].get<int64_t>(),
                   j["ratio"].get<double>(), 100 * j["char_precision"].get<double>(),
                   j["seconds"].get<double>());
    }
  });
}

}  // namespace

C3_REGISTER_COMMAND("compress", setup_compress);
C3_REGISTER_COMMAND("decompress", setup_decompress);
C3_REGISTER_COMMAND("roundtrip", setup_roundtrip);

}  // namespace c3::cli
