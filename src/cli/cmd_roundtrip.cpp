// c3 roundtrip: text -> latents -> text in memory; prints the ratio, the precision and the time,
// the regenerated text, and a word diff where it differs from the source.
#include <cstdio>
#include <iostream>
#include <sstream>

#include "cli/command.h"
#include "cli/model_flags.h"
#include "eval/roundtrip.h"
#include "eval/word_diff.h"
#include "util/line_reader.h"

namespace c3::cli {
namespace {

constexpr int kDiffContext = 6;  // unchanged words shown on each side of an edit

void print_json(const eval::RoundtripResult& r) {
  std::cout << r.to_json().dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n"
            << std::flush;
}

// The human view: a summary line, the regenerated text, then the differences if any.
void print_human(const eval::RoundtripResult& r, const std::string& source) {
  std::fprintf(stderr, "%lld tokens -> %lld latents (%.1fx), char precision %.2f%%%s, %.2f s\n",
               (long long)r.tokens, (long long)r.latents, r.ratio, 100 * r.char_precision,
               r.exact_match ? " (exact)" : "", r.seconds);
  std::fflush(stderr);
  std::cout << r.text << "\n" << std::flush;
  if (r.exact_match) return;
  const eval::WordDiff d = eval::word_diff(source, r.text, kDiffContext);
  std::fprintf(stderr,
               "\ndifferences from the source ([-source words-] {+regenerated words+}): %lld of "
               "%lld words changed, %lld inserted\n%s\n",
               (long long)d.changed, (long long)d.words, (long long)d.inserted, d.marked.c_str());
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
    eval::RoundtripOptions o;
    o.batch_size = mf.batch;
    o.max_passage_tokens = chunk_tokens;
    o.decode = df.options();
    if (jsonl) {
      CorpusReader reader({in});
      std::string text;
      while (reader.next(text)) print_json(eval::roundtrip_text(m, text, reader.where(), o));
      return;
    }
    auto stream = open_input(in);
    std::stringstream ss;
    ss << stream->rdbuf();
    const std::string source = ss.str();
    auto r = eval::roundtrip_text(m, source, in == "-" ? "stdin" : in, o);
    if (json)
      print_json(r);
    else
      print_human(r, source);
  });
}

}  // namespace

C3_REGISTER_COMMAND("roundtrip", setup_roundtrip);

}  // namespace c3::cli
