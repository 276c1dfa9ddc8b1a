// c3 plot: PNGs from saved results (an eval report's JSON, a training log), e.g. for results
// produced on a machine without gnuplot.
#include "cli/command.h"
#include "eval/plot.h"
#include "eval/report.h"
#include "util/error.h"

namespace c3::cli {
namespace {

void setup_plot(CLI::App& root) {
  auto* app = root.add_subcommand("plot", "Plot saved results: precision vs ratio, or loss curves");
  static std::vector<std::string> evals, labels;
  static std::string log, out, title;
  static bool no_paper = false;
  app->add_option("--eval", evals, "eval report JSON files (from c3 eval --json), one series each");
  app->add_option("--label", labels,
                  "a legend title per --eval file, in their order (default: each report's model)");
  app->add_option("--log", log, "training log (train_log.jsonl) for a loss-curve plot");
  app->add_option("-o,--output", out, "PNG to write")->required();
  app->add_option("--title", title, "plot title");
  app->add_flag("--no-paper", no_paper, "leave the paper's reference points out");
  app->callback([]() {
    C3_CHECK(evals.empty() != log.empty(), "c3 plot: give either --eval FILES or --log FILE");
    eval::PlotOptions po;
    po.title = title;
    if (!log.empty()) {
      eval::plot_loss_curves(log, out, po);
      return;
    }
    C3_CHECK(labels.empty() || labels.size() == evals.size(),
             "c3 plot: {} --label for {} --eval files; give one per file, in their order, or none",
             labels.size(), evals.size());
    std::vector<eval::PlotSeries> series;
    for (size_t i = 0; i < evals.size(); ++i) {
      const std::string label = labels.empty() ? "" : labels[i];
      series.push_back(eval::series_from_report(eval::read_report_json(evals[i]), label));
    }
    if (!no_paper)
      for (auto& p : eval::paper_reference_series(false)) series.push_back(p);
    eval::plot_precision_vs_ratio(series, out, po);
  });
}

}  // namespace

C3_REGISTER_COMMAND("plot", setup_plot);

}  // namespace c3::cli
