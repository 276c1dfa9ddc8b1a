// Flag groups that several subcommands share: which model to load and how, and how to decode.
#pragma once
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <cstdint>
#include <istream>
#include <memory>
#include <string>
#include <vector>

#include "c3/c3_model.h"
#include "c3/document_codec.h"
#include "cli/cli_common.h"

namespace c3::cli {

struct ModelFlags {
  std::string model = default_model_dir();
  std::string device = "cpu";
  std::string dtype = "auto";
  int64_t batch = 8;
  void add(CLI::App* app) {
    app->add_option("--model", model, "C3 checkpoint folder (config.json, llm1/, tokenizer.json or qwen.tiktoken)")
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
    opts_ = {
        app->add_option("--beams", beams,
                        "beam search with this many beams (1 = greedy, as the paper); slower, and "
                        "it can recover where greedy decoding slips")
            ->capture_default_str()
            ->check(CLI::Range(int64_t{1}, int64_t{64})),
        app->add_option("--length-cap", length_cap,
                        "stop a chunk after this many times its source tokens (+16), as recorded "
                        "in the .c3 file; 0 = off")
            ->capture_default_str(),
        app->add_option("--no-repeat-ngram", no_repeat_ngram,
                        "ban repeated n-grams of this size (0 = off)")
            ->capture_default_str(),
        app->add_option("--max-new-tokens", max_new_tokens, "cap on generated tokens per chunk")
            ->capture_default_str(),
        app->add_flag("--no-stop", no_stop, "do not stop at <|im_end|>")};
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
  // The flags given on the command line, to lay over a verified file's recorded settings.
  cascade::DecodeOverrides overrides() const {
    cascade::DecodeOverrides o;
    auto given = [&](size_t k, auto& setting, const auto& value) {
      setting.name = opts_[k]->get_name();  // "--length-cap"
      if (opts_[k]->count() > 0) setting.value = value;
    };
    given(0, o.beams, beams);
    given(1, o.length_cap, length_cap);
    given(2, o.no_repeat_ngram, no_repeat_ngram);
    given(3, o.max_new_tokens, max_new_tokens);
    given(4, o.stop, !no_stop);
    return o;
  }

 private:
  std::vector<CLI::Option*> opts_;  // in the order overrides() reads them
};

// Opens IN ("-" = stdin) as a stream; errors name the file.
std::unique_ptr<std::istream> open_input(const std::string& path);

// --chunk-tokens above the model's own chunk size (c3_max_passage_tokens) asks for more tokens
// per latent than the model was made for; c3-small, for one, drops from 98% at 10x to 30% at 20x.
// Allowed (it is the user's experiment), but said once on stderr.
void warn_if_chunks_too_long(const cascade::LoadedC3& m, int64_t chunk_tokens);

}  // namespace c3::cli
