// `c3 tokenize` (text <-> ids, JSON lines or plain, plus a speed benchmark),
// `c3 tokenizer train` (learn a byte-level BPE on a JSONL corpus) and
// `c3 tokenizer convert` (qwen.tiktoken -> tokenizer.json).
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "tokenizer/bpe_tokenizer.h"
#include "tokenizer/bpe_trainer.h"
#include "tokenizer/encode_bench.h"
#include "tokenizer/tiktoken_file.h"
#include "tokenizer/tokenizer_files.h"
#include "tokenizer/utf8.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/line_reader.h"

namespace c3::cli {
namespace {

using tokenizer::BpeTokenizer;

struct TokenizeOptions {
  std::string tokenizer;      // tokenizer.json, qwen.tiktoken or a model folder
  bool decode = false;        // ids -> text instead of text -> ids
  bool plain = false;         // raw text on stdin (all of it is one text) instead of JSON lines
  bool lossy = false;         // replace invalid UTF-8 with U+FFFD instead of failing
  bool skip_special = false;  // decode: drop special tokens
  std::string bench;          // benchmark: encode every text of this JSONL(.xz) file
  int threads = 0;            // benchmark threads (0: all cores)
  int repeat = 3;             // benchmark passes (the first runs with cold word caches)
};

// Buffered stdout: one fwrite per ~1 MB instead of one per line.
class Out {
 public:
  ~Out() { flush(); }
  std::string buf;
  void maybe_flush() {
    if (buf.size() > (1 << 20)) flush();
  }
  void flush() {
    if (!buf.empty() && std::fwrite(buf.data(), 1, buf.size(), stdout) != buf.size())
      fail("cannot write to stdout");
    buf.clear();
    std::fflush(stdout);
  }
};

void append_ids(std::string& out, const std::vector<int32_t>& ids) {
  out += '[';
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) out += ", ";
    fmt::format_to(std::back_inserter(out), "{}", ids[i]);
  }
  out += ']';
}

std::string read_stdin() {
  std::string s;
  char buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), stdin)) > 0) s.append(buf, n);
  if (std::ferror(stdin)) fail("cannot read stdin");
  return s;
}

std::vector<int32_t> ids_from_json(const nlohmann::json& j, const std::string& where) {
  const nlohmann::json* arr = &j;
  if (j.is_object() && j.contains("ids")) arr = &j.at("ids");
  if (!arr->is_array()) fail("{}: expected {{\"ids\": [...]}} or a JSON array of ids", where);
  std::vector<int32_t> ids;
  ids.reserve(arr->size());
  for (const auto& v : *arr) {
    if (!v.is_number_integer()) fail("{}: ids must be integers, got {}", where, v.dump());
    ids.push_back(v.get<int32_t>());
  }
  return ids;
}

// Checks a raw input line: invalid UTF-8 is an error naming the line and byte, unless --lossy.
void check_utf8(std::string& line, int64_t line_no, bool lossy) {
  size_t bad = tokenizer::find_invalid_utf8(line);
  if (bad == std::string::npos) return;
  if (lossy) {
    line = tokenizer::to_valid_utf8(line);
    return;
  }
  fail("stdin line {}: invalid UTF-8 at byte offset {} (byte 0x{:02X}). Fix the input or pass "
       "--lossy to replace bad bytes with U+FFFD", line_no, bad, uint8_t(line[bad]));
}

void run_jsonl(const TokenizeOptions& o, const BpeTokenizer& tok) {
  LineReader in("-");
  Out out;
  std::string line;
  std::vector<int32_t> ids;
  while (in.next(line)) {
    const int64_t ln = in.line_number();
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;  // blank lines
    check_utf8(line, ln, o.lossy);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::parse_error& e) {
      fail("stdin line {}: not JSON (at byte {}): {}", ln, e.byte, clip_json_error(e.what()));
    } catch (const nlohmann::json::exception& e) {  // e.g. a number out of range (1e999)
      fail("stdin line {}: not valid JSON: {}", ln, clip_json_error(e.what()));
    }
    if (o.decode) {
      std::string text = tok.decode(ids_from_json(j, fmt::format("stdin line {}", ln)),
                                    o.skip_special);
      out.buf += "{\"text\": ";
      out.buf += nlohmann::json(text).dump();
      out.buf += "}\n";
    } else {
      if (!j.is_object() || !j.contains("text") || !j.at("text").is_string())
        fail("stdin line {}: expected an object with a string \"text\", got {}", ln,
             line.substr(0, 80));
      ids.clear();
      tok.encode_to(j.at("text").get_ref<const std::string&>(), ids);
      out.buf += "{\"ids\": ";
      append_ids(out.buf, ids);
      out.buf += "}\n";
    }
    out.maybe_flush();
  }
}

void run_plain(const TokenizeOptions& o, const BpeTokenizer& tok) {
  std::string in = read_stdin();
  Out out;
  if (o.decode) {
    std::vector<int32_t> ids;
    size_t first = in.find_first_not_of(" \t\r\n");
    if (first != std::string::npos && in[first] == '[') {
      try {
        ids = ids_from_json(nlohmann::json::parse(in), "stdin");
      } catch (const nlohmann::json::parse_error& e) {
        fail("stdin: not a JSON array of ids (at byte {}): {}", e.byte,
             clip_json_error(e.what()));
      } catch (const nlohmann::json::exception& e) {
        fail("stdin: not a JSON array of ids: {}", clip_json_error(e.what()));
      }
    } else {
      // Whitespace- or comma-separated integers.
      size_t i = 0;
      while (i < in.size()) {
        char ch = in[i];
        if (ch == ' ' || ch == ',' || ch == '\n' || ch == '\t' || ch == '\r') {
          ++i;
          continue;
        }
        size_t used = 0;
        long v = 0;
        try {
          v = std::stol(in.substr(i, 12), &used);
        } catch (const std::exception&) {
          fail("stdin: expected integer ids at byte offset {}", i);
        }
        ids.push_back(static_cast<int32_t>(v));
        i += used;
      }
    }
    out.buf = tok.decode(ids, o.skip_special);
    return;
  }
  std::vector<int32_t> ids;
  try {
    ids = o.lossy ? tok.encode_lossy(in) : tok.encode(in);
  } catch (const Error& e) {
    fail("stdin: {}", e.what());
  }
  append_ids(out.buf, ids);
  out.buf += '\n';
}

// Encodes every text of a file on N threads, R passes, and prints one JSON line.
void run_bench(const TokenizeOptions& o, const BpeTokenizer& tok) {
  auto texts = tokenizer::read_texts(o.bench);
  auto r = tokenizer::bench_encode(tok, texts, o.threads, o.repeat);
  std::printf("{\"bench\": \"tokenize\", \"tokenizer\": %s, \"file\": %s, %s\n",
              nlohmann::json(o.tokenizer).dump().c_str(), nlohmann::json(o.bench).dump().c_str(),
              r.json().c_str() + 1);
}

void run_tokenize(const TokenizeOptions& o) {
  BpeTokenizer tok = tokenizer::load_tokenizer(o.tokenizer);
  if (!o.bench.empty()) return run_bench(o, tok);
  if (o.plain) return run_plain(o, tok);
  run_jsonl(o, tok);
}

struct TrainOptions {
  std::vector<std::string> corpus;  // JSONL(.xz) files
  std::string out;                  // tokenizer.json to write
  tokenizer::BpeTrainerOptions t;
  double max_mb = 0;  // MB (10^6 bytes) of text to read; 0 = all
};

void run_train(TrainOptions& o) {
  o.t.max_bytes = static_cast<int64_t>(o.max_mb * 1e6);
  tokenizer::BpeTrainer trainer(o.t);
  trainer.add_corpus(o.corpus);
  trainer.train_to_file(o.out);
  const auto& s = trainer.stats();
  nlohmann::ordered_json r = {
      {"out", o.out}, {"vocab_size", s.vocab_size}, {"merges", s.merges},
      {"texts", s.texts}, {"bytes", s.bytes}, {"words", s.words},
      {"distinct_words", s.distinct_words}, {"pruned_words", s.pruned_words},
      {"bytes_per_token", s.tokens ? double(s.bytes) / s.tokens : 0.0},
      {"count_s", s.count_seconds}, {"merge_s", s.merge_seconds}};
  std::printf("%s\n", r.dump().c_str());
  if (s.vocab_size < o.t.vocab_size)
    std::fprintf(stderr, "c3: warning: only %lld tokens: no pair is seen --min-frequency %lld "
                 "times any more. Give more text or lower --min-frequency.\n",
                 static_cast<long long>(s.vocab_size), static_cast<long long>(o.t.min_frequency));
}

// Writes the HF tokenizer.json equivalent to a qwen.tiktoken (tests check that it gives the same
// ids as the tiktoken path).
void run_convert(const std::string& from, const std::string& out) {
  const tokenizer::TokenizerFiles f = tokenizer::find_tokenizer(from);
  C3_CHECK(f.tiktoken(), "--from '{}': expected a qwen.tiktoken (or a folder holding one); "
           "'{}' is already a tokenizer.json", from, f.main);
  const tokenizer::TiktokenFile tik = tokenizer::read_tiktoken(f.main);
  const std::string json = tokenizer::tiktoken_to_hf_json(tik);
  write_file_atomic(out, json);
  std::printf("%s\n", nlohmann::ordered_json(
                          {{"from", f.main}, {"out", out}, {"ranks", tik.tokens.size()},
                           {"special_tokens", tokenizer::qwen_special_tokens().size()},
                           {"bytes", json.size()}})
                          .dump()
                          .c_str());
}

void setup_tokenize(CLI::App& root) {
  auto o = std::make_shared<TokenizeOptions>();
  CLI::App* cmd = root.add_subcommand(
      "tokenize", "Text to token ids and back with an HF tokenizer.json or a qwen.tiktoken. "
                  "Default: JSON lines "
                  "{\"text\": ...} on stdin -> {\"ids\": [...]} lines on stdout");
  cmd->add_option("--tokenizer", o->tokenizer,
                  "tokenizer.json (byte-level BPE), qwen.tiktoken, or a model folder with one")
      ->required();
  cmd->add_flag("--decode", o->decode, "Ids to text: {\"ids\": [...]} lines -> {\"text\": ...}");
  cmd->add_flag("--plain", o->plain,
                "All of stdin is one raw text -> one JSON array of ids (with --decode: ids as a "
                "JSON array or separated by spaces/commas -> raw text)");
  cmd->add_flag("--lossy", o->lossy, "Replace invalid UTF-8 with U+FFFD instead of failing");
  cmd->add_flag("--skip-special", o->skip_special, "With --decode: leave out special tokens");
  cmd->add_option("--bench", o->bench,
                  "Benchmark: encode every text of this JSONL(.xz) file, print one JSON line "
                  "with MB/s and tokens/s");
  cmd->add_option("--threads", o->threads, "Benchmark threads (0: all cores)")
      ->capture_default_str();
  cmd->add_option("--repeat", o->repeat, "Benchmark passes; the first one has cold caches")
      ->capture_default_str();
  cmd->callback([o] { run_tokenize(*o); });
}

void setup_tokenizer(CLI::App& root) {
  auto o = std::make_shared<TrainOptions>();
  CLI::App* cmd = root.add_subcommand("tokenizer", "Tokenizer tools");
  cmd->require_subcommand(1);
  CLI::App* train = cmd->add_subcommand(
      "train", "Learn a byte-level BPE (Qwen2 pre-tokenizer, NFC) on JSONL corpus files and "
               "write tokenizer.json with the special tokens <|endoftext|> <|im_start|> "
               "<|im_end|> <img> </img> <imgpad> after the learned vocabulary");
  train->add_option("--corpus", o->corpus, "JSONL files with {\"text\": ...} lines (.xz ok)")
      ->required()
      ->expected(1, -1);
  train->add_option("--out", o->out, "tokenizer.json to write (atomically)")->required();
  train->add_option("--vocab-size", o->t.vocab_size,
                    "Total tokens: 256 bytes + merges + 6 special tokens")
      ->capture_default_str();
  train->add_option("--min-frequency", o->t.min_frequency, "Never merge a rarer pair")
      ->capture_default_str();
  train->add_option("--max-mb", o->max_mb, "Read at most this many MB of text (0: all)")
      ->capture_default_str();
  train->add_option("--max-words", o->t.max_words,
                    "Distinct words kept while counting (bounds memory; the rarest are dropped)")
      ->capture_default_str();
  train->callback([o] { run_train(*o); });

  static std::string convert_from, convert_out;
  CLI::App* convert = cmd->add_subcommand(
      "convert", "Write the HF tokenizer.json equivalent to a qwen.tiktoken (byte-level vocabulary, "
                 "merges ordered by rank, QWenTokenizer's special tokens), so that HF tokenizers "
                 "reads the checkpoint too");
  convert->add_option("--from", convert_from, "qwen.tiktoken, or a model folder holding one")
      ->required();
  convert->add_option("--out", convert_out, "tokenizer.json to write (atomically)")->required();
  convert->callback([] { run_convert(convert_from, convert_out); });
}

}  // namespace

C3_REGISTER_COMMAND("tokenize", setup_tokenize);
C3_REGISTER_COMMAND("tokenizer", setup_tokenizer);

}  // namespace c3::cli
