// PNG plots through gnuplot: precision against compression ratio, and training loss curves.
#pragma once
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "eval/report.h"

namespace c3::eval {

// One line of the precision plot: (compression ratio, char precision in [0, 1]) points.
struct PlotSeries {
  std::string title;
  std::vector<std::pair<double, double>> points;
  bool reference = false;  // published numbers, not ours: drawn dashed with hollow markers
};

struct PlotOptions {
  std::string title;                // empty: a default title for the kind of plot
  int width = 960, height = 600;    // pixels
  std::string gnuplot = "gnuplot";  // the program: a bare name is looked up on PATH
  bool keep_script = false;         // also write the script as <png stem>.gp, for tweaking
};

// The report's bins as one series titled "<title or model> (L = <latents>)"; bins with no
// passages are left out.
PlotSeries series_from_report(const EvalReport& r, const std::string& title = "");

// The paper's Fox English results (C3-SPEC.md, "Results to beat"): C3 with 32 and with 64
// latents, and DeepSeek-OCR with 64 vision tokens when `with_deepseek_ocr`.
std::vector<PlotSeries> paper_reference_series(bool with_deepseek_ocr = true);

// Char precision (%) against compression ratio, one line per series, written atomically to `png`
// (gnuplot renders to a temp file beside it, which is then renamed). Throws c3::Error when gnuplot
// is missing (saying to install gnuplot-nox) or fails (with its message).
void plot_precision_vs_ratio(const std::vector<PlotSeries>& series,
                             const std::filesystem::path& png, const PlotOptions& opt = {});

// Loss curves of a JSONL training log (plain or .xz): x = `step_key`, one line per key of `keys`
// on a log-scale y. Lines missing a key, non-positive values (no log) and unparsable lines (a
// crash can truncate the last one) are skipped; a log with no point at all throws c3::Error.
void plot_loss_curves(const std::filesystem::path& jsonl, const std::filesystem::path& png,
                      const PlotOptions& opt = {}, const std::string& step_key = "step",
                      const std::vector<std::string>& keys = {"loss", "valid_loss"});

// The gnuplot scripts the two functions above run, writing to `output`: exposed for tests and
// for anyone who wants to restyle a plot by hand.
std::string precision_plot_script(const std::vector<PlotSeries>& series,
                                  const std::filesystem::path& output, const PlotOptions& opt);
std::string loss_plot_script(const std::vector<PlotSeries>& curves,
                             const std::filesystem::path& output, const PlotOptions& opt);

}  // namespace c3::eval
