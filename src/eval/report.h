// An eval's results by length bin: the --bins parser and the stdout, Markdown and JSON renderings.
#pragma once
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "eval/text_metrics.h"

namespace c3::eval {

// A passage-length bin in the model's tokens: lo <= tokens < hi, so "64-128,128-256" tiles.
struct TokenBin {
  std::string label;  // "64-128"
  int64_t lo = 0;
  int64_t hi = 0;
};

// Parses a --bins value such as "64-128,128-256" (spaces around pieces are allowed), keeping the
// order given. Throws c3::Error naming the bad piece unless each is LO-HI with 0 <= LO < HI.
std::vector<TokenBin> parse_bins(std::string_view spec);

// One evaluation of one model: its latent count and a BinStats per requested bin.
struct EvalReport {
  std::string model;  // the model folder or name, as the user gave it
  int64_t latents = 0;
  std::string data;  // the evaluation data file
  std::vector<BinStats> bins;
  // Free-form provenance written as-is under "meta" (git commit, device, date, max_docs, ...).
  nlohmann::ordered_json meta = nlohmann::ordered_json::object();
};

// An aligned plain-text table for the terminal: model line, then one row per bin.
std::string render_table(const EvalReport& r);

// A GitHub Markdown table with a one-line caption, for docs/ and notes.
std::string render_markdown(const EvalReport& r);

// {model, latents, data, bins: [BinStats::to_json()...], meta}.
nlohmann::ordered_json report_to_json(const EvalReport& r);
// The inverse; throws c3::Error naming the missing or mistyped key.
EvalReport report_from_json(const nlohmann::ordered_json& j);

// Atomic writers (temp file + rename, see util/atomic_file.h) and the JSON reader.
void write_report_json(const std::filesystem::path& path, const EvalReport& r);
void write_report_markdown(const std::filesystem::path& path, const EvalReport& r);
EvalReport read_report_json(const std::filesystem::path& path);

}  // namespace c3::eval
