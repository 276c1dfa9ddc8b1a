// Parses --bins and renders eval results as a terminal table, Markdown and JSON.
#include "eval/report.h"

#include <fmt/format.h>

#include <charconv>
#include <cmath>

#include "util/atomic_file.h"
#include "util/error.h"

namespace c3::eval {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Whole-string non-negative integer; from_chars rejects signs, spaces and trailing junk for us.
bool parse_count(std::string_view s, int64_t& out) {
  if (s.empty()) return false;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size() && out >= 0;
}

std::string pct(double x) { return std::isfinite(x) ? fmt::format("{:.2f}%", 100 * x) : "-"; }
std::string num(double x, int decimals) {
  return std::isfinite(x) ? fmt::format("{:.{}f}", x, decimals) : "-";
}

// The columns shared by the terminal and Markdown tables, one row of cells per bin.
struct Table {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
};

// How the text was decoded, from the report's meta (older reports lack the keys).
std::string decoding_of(const EvalReport& r) {
  const int64_t beams = r.meta.value("num_beams", int64_t{1});
  const int64_t ngram = r.meta.value("no_repeat_ngram", int64_t{0});
  std::string s = beams > 1 ? fmt::format("beam search ({} beams)", beams) : std::string("greedy");
  if (ngram > 0) s += fmt::format(", no_repeat_ngram {}", ngram);
  return s;
}

// `times` and `pm` are the ratio and plus-minus signs: ASCII for the terminal table, whose
// columns are padded by bytes.
Table make_table(const EvalReport& r, std::string_view times, std::string_view pm) {
  Table t;
  t.header = {"bin",
              "n",
              "mean tokens",
              "ratio",
              "char precision",
              std::string(pm) + " 95%",
              "exact match",
              "word precision",
              "token accuracy",
              "seconds"};
  for (const BinStats& b : r.bins) {
    t.rows.push_back({b.bin, std::to_string(b.n), num(b.mean_tokens(), 1),
                      std::isfinite(b.ratio()) ? num(b.ratio(), 2) + std::string(times) : "-",
                      pct(b.char_precision()),
                      std::isfinite(b.char_precision_ci95()) ? std::string(pm) + pct(b.char_precision_ci95()) : "-",
                      pct(b.exact_match()), pct(b.word_precision()),
                      pct(b.token_accuracy()), num(b.seconds, 1)});
  }
  return t;
}

template <typename T>
T required(const nlohmann::ordered_json& j, const char* key, const char* where) {
  C3_CHECK(j.is_object() && j.contains(key), "eval report: {} has no key \"{}\"", where, key);
  try {
    return j.at(key).get<T>();
  } catch (const nlohmann::ordered_json::exception& e) {
    fail("eval report: key \"{}\" of {} has the wrong type: {}", key, where, e.what());
  }
}

// Reports write NaN as null; read null back as NaN.
double number_or_nan(const nlohmann::ordered_json& j, const char* key) {
  if (!j.contains(key) || j.at(key).is_null()) return std::numeric_limits<double>::quiet_NaN();
  C3_CHECK(j.at(key).is_number(), "eval report: bin key \"{}\" must be a number or null, got {}",
           key, j.at(key).dump());
  return j.at(key).get<double>();
}

}  // namespace

std::vector<TokenBin> parse_bins(std::string_view spec) {
  std::vector<TokenBin> bins;
  const std::string_view all = spec;
  C3_CHECK(!trim(spec).empty(),
           "--bins is empty: expected LO-HI pieces, e.g. --bins 64-128,128-256");
  while (true) {
    const size_t comma = spec.find(',');
    const std::string_view piece = trim(spec.substr(0, comma));
    const size_t dash = piece.find('-');
    int64_t lo = 0, hi = 0;
    const bool ok = dash != std::string_view::npos && parse_count(piece.substr(0, dash), lo) &&
                    parse_count(piece.substr(dash + 1), hi) && lo < hi;
    C3_CHECK(ok,
             "bad bin \"{}\" in --bins \"{}\": each piece must be LO-HI with integers "
             "0 <= LO < HI (token counts, LO inclusive, HI exclusive), e.g. --bins 64-128,128-256",
             piece, all);
    bins.push_back({fmt::format("{}-{}", lo, hi), lo, hi});
    if (comma == std::string_view::npos) break;
    spec.remove_prefix(comma + 1);
  }
  return bins;
}

std::string render_table(const EvalReport& r) {
  const Table t = make_table(r, "x", "+-");
  std::vector<size_t> width(t.header.size());
  for (size_t c = 0; c < t.header.size(); ++c) {
    width[c] = t.header[c].size();
    for (const auto& row : t.rows) width[c] = std::max(width[c], row[c].size());
  }
  // The bin label reads best left-aligned; numbers right-aligned so the decimals line up.
  auto line = [&](const std::vector<std::string>& cells) {
    std::string s;
    for (size_t c = 0; c < cells.size(); ++c) {
      if (c > 0) s += "  ";
      s += c == 0 ? fmt::format("{:<{}}", cells[c], width[c])
                  : fmt::format("{:>{}}", cells[c], width[c]);
    }
    return s + "\n";
  };
  std::string out = fmt::format("model {}  L = {} latents", r.model, r.latents);
  if (!r.data.empty()) out += fmt::format("  data {}", r.data);
  out += "  " + decoding_of(r);
  out += "\n" + line(t.header);
  for (const auto& row : t.rows) out += line(row);
  return out;
}

std::string render_markdown(const EvalReport& r) {
  const Table t = make_table(r, "×", "±");
  std::string out = fmt::format("Model `{}`, L = {} latents", r.model, r.latents);
  if (!r.data.empty()) out += fmt::format(", data `{}`", r.data);
  out += ", " + decoding_of(r);
  out += ".\n\n|";
  for (const auto& h : t.header) out += " " + h + " |";
  out += "\n|";
  for (size_t c = 0; c < t.header.size(); ++c) out += c == 0 ? "---|" : "---:|";
  out += "\n";
  for (const auto& row : t.rows) {
    out += "|";
    for (const auto& cell : row) out += " " + cell + " |";
    out += "\n";
  }
  return out;
}

nlohmann::ordered_json report_to_json(const EvalReport& r) {
  nlohmann::ordered_json bins = nlohmann::ordered_json::array();
  for (const BinStats& b : r.bins) bins.push_back(b.to_json());
  return nlohmann::ordered_json{{"model", r.model},
                                {"latents", r.latents},
                                {"data", r.data},
                                {"bins", bins},
                                {"meta", r.meta}};
}

EvalReport report_from_json(const nlohmann::ordered_json& j) {
  EvalReport r;
  r.model = required<std::string>(j, "model", "the top level");
  r.latents = required<int64_t>(j, "latents", "the top level");
  if (j.contains("data")) r.data = required<std::string>(j, "data", "the top level");
  if (j.contains("meta")) r.meta = j.at("meta");
  const auto bins = required<nlohmann::ordered_json>(j, "bins", "the top level");
  C3_CHECK(bins.is_array(), "eval report: \"bins\" must be an array, got {}", bins.type_name());
  for (const auto& jb : bins) {
    const auto label = required<std::string>(jb, "bin", "a bin");
    const TokenBin range = parse_bins(label).at(0);
    BinStats b(range.label, range.lo, range.hi,
               jb.contains("latents") ? required<int64_t>(jb, "latents", "a bin") : r.latents);
    b.set_means(required<int64_t>(jb, "n", "a bin"), number_or_nan(jb, "mean_tokens"),
                number_or_nan(jb, "char_precision"), number_or_nan(jb, "word_precision"),
                number_or_nan(jb, "exact_match"), number_or_nan(jb, "token_accuracy"),
                number_or_nan(jb, "char_precision_ci95"));
    b.seconds = required<double>(jb, "seconds", "a bin");
    r.bins.push_back(std::move(b));
  }
  return r;
}

void write_report_json(const std::filesystem::path& path, const EvalReport& r) {
  write_file_atomic(path, report_to_json(r).dump(2) + "\n");
}

void write_report_markdown(const std::filesystem::path& path, const EvalReport& r) {
  write_file_atomic(path, render_markdown(r));
}

EvalReport read_report_json(const std::filesystem::path& path) {
  nlohmann::ordered_json j;
  try {
    j = nlohmann::ordered_json::parse(read_file(path));
  } catch (const nlohmann::ordered_json::parse_error& e) {
    fail("{}: not valid JSON ({}); expected an eval report written by `c3 eval --json`",
         path.string(), e.what());
  }
  try {
    return report_from_json(j);
  } catch (const Error& e) {
    fail("{}: {}", path.string(), e.what());
  }
}

}  // namespace c3::eval
