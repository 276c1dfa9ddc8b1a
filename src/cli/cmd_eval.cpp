// c3 eval: fidelity against compression ratio, per passage-length bin.
#include <glob.h>

#include <iostream>

#include "cli/cli_common.h"
#include "cli/command.h"
#include "eval/evaluator.h"
#include "eval/plot.h"
#include "eval/report.h"

namespace c3::cli {
namespace {

void setup_eval(CLI::App& root) {
  auto* app = root.add_subcommand("eval", "Measure fidelity against compression ratio on held-out text");
  static std::string model = default_model_dir(), device = "cpu", dtype = "auto";
  static std::vector<std::string> data;
  static std::string bins = "64-128,128-256,256-512,512-1024,1024-1280";
  static std::string json_out, md_out, png_out, title;
  static bool no_paper = false;
  static eval::EvalOptions o;
  app->add_option("--model", model, "C3 checkpoint folder")->capture_default_str();
  app->add_option("--data", data, "JSONL(.xz) evaluation files")->required();
  app->add_option("--bins", bins, "passage-length bins in tokens, LO-HI,...")->capture_default_str();
  app->add_option("--per-bin", o.per_bin, "passages per bin")->capture_default_str();
  app->add_option("--max-docs", o.max_docs, "documents read at most (0 = all)")->capture_default_str();
  app->add_option("--batch", o.batch, "passages per forward pass")->capture_default_str();
  app->add_option("--no-repeat-ngram", o.no_repeat_ngram, "n-gram ban while decoding (0 = off)")
      ->capture_default_str();
  app->add_option("--beams", o.num_beams, "beam search with this many beams (1 = greedy)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{64}));
  app->add_flag("--exact-length", o.exact_length,
                "decode each passage's own token count (<|im_end|> banned before it), as a .c3 "
                "file's recorded chunk lengths allow. A failed passage of the right length scores "
                "higher char precision by chance: compare only with runs that use it too");
  app->add_option("--seed", o.seed, "passage-cutting seed")->capture_default_str();
  app->add_option("--device", device, "cpu | cuda")->capture_default_str();
  app->add_option("--dtype", dtype, "f32 | bf16 | auto")->capture_default_str();
  app->add_option("--json", json_out, "write the report as JSON");
  app->add_option("--markdown", md_out, "write the report as a Markdown table");
  app->add_option("--plot", png_out, "write a precision-vs-ratio PNG");
  app->add_option("--title", title, "series title in the plot");
  app->add_flag("--no-paper", no_paper, "leave the paper's reference points out of the plot");
  app->callback([]() {
    at::Device d = parse_device(device);
    cascade::LoadedC3 m = cascade::load_c3(model, parse_dtype(dtype, d), d);
    o.data = data;
    o.bins = eval::parse_bins(bins);
    eval::EvalReport r = eval::evaluate(m, o, model);
    r.meta["fingerprint"] = m.fingerprint;
    std::cout << eval::render_table(r);
    if (!json_out.empty()) eval::write_report_json(json_out, r);
    if (!md_out.empty()) eval::write_report_markdown(md_out, r);
    if (!png_out.empty()) {
      std::vector<eval::PlotSeries> s = {eval::series_from_report(r, title)};
      if (!no_paper)
        for (auto& p : eval::paper_reference_series(false)) s.push_back(p);
      eval::plot_precision_vs_ratio(s, png_out);
    }
  });
}

}  // namespace

C3_REGISTER_COMMAND("eval", setup_eval);

}  // namespace c3::cli
