// Tests of eval reporting: --bins parsing, table/Markdown/JSON rendering and the gnuplot PNGs.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <functional>
#include <iostream>
#include <sstream>

#include "eval/plot.h"
#include "eval/report.h"
#include "testdata.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/remove_tree.h"

namespace c3::eval {
namespace {
namespace fs = std::filesystem;

// A fresh folder under the build tree per test; the PNGs stay there for a human to look at.
fs::path scratch(const std::string& name) {
  const fs::path dir = test::binary_dir() / "test_out" / "eval" / name;
  c3::remove_tree(dir);
  fs::create_directories(dir);
  return dir;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no c3::Error thrown)";
}

EvalReport sample_report() {
  EvalReport r;
  r.model = "runs/tiny";
  r.latents = 32;
  r.data = "valid.jsonl.xz";
  r.meta["git"] = "abc123";
  const struct {
    int64_t lo, hi, tokens;
    double cp;
  } bins[] = {{64, 128, 96, 1.0}, {128, 256, 190, 0.93}, {256, 512, 380, 0.61}};
  for (const auto& x : bins) {
    BinStats b(std::to_string(x.lo) + "-" + std::to_string(x.hi), x.lo, x.hi, r.latents);
    for (int i = 0; i < 4; ++i) {
      PassageScore s{x.cp, x.cp - 0.05 * i, x.cp == 1.0, i < 2 ? 0.97 : NAN};
      b.add(s, x.tokens + i - 1);
    }
    b.seconds = 1.25 * x.lo / 64;
    r.bins.push_back(b);
  }
  return r;
}

TEST(ParseBins, Valid) {
  const auto bins = parse_bins("64-128,128-256, 512-1024 ");
  ASSERT_EQ(bins.size(), 3u);
  EXPECT_EQ(bins[0].label, "64-128");
  EXPECT_EQ(bins[0].lo, 64);
  EXPECT_EQ(bins[0].hi, 128);
  EXPECT_EQ(bins[2].label, "512-1024");
  EXPECT_EQ(bins[2].hi, 1024);
  EXPECT_EQ(parse_bins("0-1").at(0).hi, 1);
}

TEST(ParseBins, ErrorsNameTheBadPiece) {
  for (const char* bad :
       {"64-", "-128", "128-64", "64-64", "a-b", "64_128", "64--128", "+1-2", "1-2x", "1.5-3"}) {
    const std::string spec = std::string("32-64,") + bad + ",1024-2048";
    const std::string err = error_of([&] { parse_bins(spec); });
    EXPECT_NE(err.find(std::string("\"") + bad + "\""), std::string::npos) << err;
    EXPECT_NE(err.find("LO-HI"), std::string::npos) << err;
  }
  EXPECT_NE(error_of([] { parse_bins("64-128,"); }).find("bad bin \"\""), std::string::npos);
  EXPECT_NE(error_of([] { parse_bins(""); }).find("--bins is empty"), std::string::npos);
}

TEST(Report, TableIsAligned) {
  const std::string t = render_table(sample_report());
  std::cout << t;
  std::vector<std::string> lines;
  std::istringstream in(t);
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  ASSERT_EQ(lines.size(), 5u);  // model line, header, 3 bins
  EXPECT_NE(lines[0].find("L = 32"), std::string::npos);
  // Every row has the header's width, and right-aligned columns end at the same offsets.
  for (size_t i = 2; i < lines.size(); ++i) EXPECT_EQ(lines[i].size(), lines[1].size()) << lines[i];
  EXPECT_NE(lines[2].find("100.00%"), std::string::npos);
  EXPECT_NE(lines[2].find("3.02x"), std::string::npos);  // 96 tokens / 32 latents
  EXPECT_NE(lines[3].find("93.00%"), std::string::npos);
  EXPECT_EQ(lines[1].rfind("char precision") + 14, lines[2].find("100.00%") + 7);
}

TEST(Report, MarkdownTable) {
  const std::string md = render_markdown(sample_report());
  std::cout << md;
  EXPECT_NE(md.find("Model `runs/tiny`, L = 32 latents"), std::string::npos);
  EXPECT_NE(md.find("| bin | n | mean tokens | ratio | char precision |"), std::string::npos);
  EXPECT_NE(md.find("|---|---:|"), std::string::npos);
  EXPECT_NE(md.find("| 64-128 | 4 | 96.5 | 3.02× | 100.00% |"), std::string::npos);
}

// Both tables say how the text was decoded: greedy unless the run used beams, and the n-gram ban.
TEST(Report, TablesNameTheDecoding) {
  EvalReport r = sample_report();
  r.meta["no_repeat_ngram"] = 20;
  EXPECT_NE(render_table(r).find("greedy, no_repeat_ngram 20"), std::string::npos) << render_table(r);
  r.meta["num_beams"] = 4;
  r.meta["no_repeat_ngram"] = 0;
  EXPECT_NE(render_markdown(r).find(", beam search (4 beams)."), std::string::npos)
      << render_markdown(r);
  EXPECT_EQ(render_markdown(r).find("no_repeat_ngram"), std::string::npos) << render_markdown(r);
}

// The 95% interval of a bin's mean char precision: 1.96 x the sample standard deviation over
// sqrt(n), written to the JSON and read back, and a column of both tables.
TEST(Report, CharPrecisionConfidenceInterval) {
  BinStats b("64-128", 64, 128, 32);
  const double scores[] = {1.0, 0.9, 0.8, 0.5};
  for (double c : scores) {
    PassageScore s;
    s.char_precision = c;
    b.add(s, 100);
  }
  const double mean = 0.8, var = (0.04 + 0.01 + 0.0 + 0.09) / 3.0;
  EXPECT_NEAR(b.char_precision(), mean, 1e-12);
  EXPECT_NEAR(b.char_precision_ci95(), 1.96 * std::sqrt(var / 4.0), 1e-12);
  BinStats one("64-128", 64, 128, 32);
  one.add(PassageScore{}, 100);
  EXPECT_TRUE(std::isnan(one.char_precision_ci95())) << "one passage has no spread";

  EvalReport r;
  r.model = "m";
  r.latents = 32;
  r.bins = {b};
  const EvalReport back = report_from_json(report_to_json(r));
  EXPECT_NEAR(back.bins[0].char_precision_ci95(), b.char_precision_ci95(), 1e-12);
  EXPECT_NE(render_markdown(r).find("| 80.00% | ±21.17% |"), std::string::npos) << render_markdown(r);
  EXPECT_NE(render_table(r).find("+-21.17%"), std::string::npos) << render_table(r);
}

TEST(Report, NaNRendersAsDash) {
  EvalReport r;
  r.model = "m";
  r.latents = 8;
  r.bins.emplace_back("1-2", 1, 2, 8);
  const std::string t = render_table(r);
  EXPECT_NE(t.find("1-2"), std::string::npos);
  EXPECT_EQ(t.find("nan"), std::string::npos) << t;
  EXPECT_NE(t.find(" -"), std::string::npos);
}

TEST(Report, JsonRoundTripAndAtomicWrite) {
  const fs::path dir = scratch("json");
  const EvalReport r = sample_report();
  const auto j = report_to_json(r);
  EXPECT_EQ(j["model"], "runs/tiny");
  EXPECT_EQ(j["latents"], 32);
  ASSERT_EQ(j["bins"].size(), 3u);
  EXPECT_EQ(j["bins"][1]["bin"], "128-256");
  EXPECT_NEAR(j["bins"][1]["char_precision"].get<double>(), 0.93, 1e-12);
  EXPECT_NEAR(j["bins"][0]["token_accuracy"].get<double>(), 0.97, 1e-12);

  const fs::path path = dir / "eval.json";
  write_report_json(path, r);
  const EvalReport back = read_report_json(path);
  EXPECT_EQ(back.model, r.model);
  EXPECT_EQ(back.latents, 32);
  EXPECT_EQ(back.data, r.data);
  EXPECT_EQ(back.meta["git"], "abc123");
  ASSERT_EQ(back.bins.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(back.bins[i].bin, r.bins[i].bin);
    EXPECT_EQ(back.bins[i].lo, r.bins[i].lo);
    EXPECT_EQ(back.bins[i].n, r.bins[i].n);
    EXPECT_NEAR(back.bins[i].ratio(), r.bins[i].ratio(), 1e-12);
    EXPECT_NEAR(back.bins[i].char_precision(), r.bins[i].char_precision(), 1e-12);
    EXPECT_NEAR(back.bins[i].word_precision(), r.bins[i].word_precision(), 1e-12);
    EXPECT_NEAR(back.bins[i].exact_match(), r.bins[i].exact_match(), 1e-12);
    EXPECT_NEAR(back.bins[i].token_accuracy(), r.bins[i].token_accuracy(), 1e-12);
    EXPECT_DOUBLE_EQ(back.bins[i].seconds, r.bins[i].seconds);
  }
  // Rewriting leaves no temp files behind.
  write_report_markdown(dir / "eval.md", r);
  write_report_json(path, r);
  int n_files = 0;
  for (const auto& e : fs::directory_iterator(dir)) n_files += e.is_regular_file();
  EXPECT_EQ(n_files, 2);
  EXPECT_EQ(read_file(dir / "eval.md"), render_markdown(r));
}

TEST(Report, ReadErrorsNameFileAndKey) {
  const fs::path dir = scratch("json_errors");
  write_file_atomic(dir / "bad.json", "{not json");
  EXPECT_NE(error_of([&] { read_report_json(dir / "bad.json"); }).find("bad.json"),
            std::string::npos);
  write_file_atomic(dir / "nokey.json", R"({"model": "m", "bins": []})");
  const std::string err = error_of([&] { read_report_json(dir / "nokey.json"); });
  EXPECT_NE(err.find("\"latents\""), std::string::npos) << err;
  EXPECT_NE(err.find("nokey.json"), std::string::npos) << err;
}

bool is_png(const fs::path& p) {
  const std::string bytes = read_file(p);
  return bytes.size() > 8 && bytes.compare(0, 8, "\x89PNG\r\n\x1a\n") == 0;
}

TEST(Plot, PrecisionVsRatioPng) {
  const fs::path dir = scratch("plot");
  std::vector<PlotSeries> series = {series_from_report(sample_report(), "c3 tiny")};
  for (auto& s : paper_reference_series()) series.push_back(s);
  ASSERT_EQ(series.size(), 4u);
  EXPECT_EQ(series[0].title, "c3 tiny (L = 32)");
  ASSERT_EQ(series[0].points.size(), 3u);

  PlotOptions opt;
  opt.keep_script = true;
  const fs::path png = dir / "precision.png";
  plot_precision_vs_ratio(series, png, opt);
  ASSERT_TRUE(fs::exists(png));
  EXPECT_TRUE(is_png(png));
  EXPECT_GT(fs::file_size(png), 10000u);  // axes, 4 lines and a key: far more than a blank image
  const std::string script = read_file(dir / "precision.gp");
  EXPECT_NE(script.find("set output '" + png.string() + "'"), std::string::npos);
  EXPECT_NE(script.find("'paper: C3, 64 latents'"), std::string::npos);
  // Only the PNG and the kept script remain: temp files were cleaned up.
  int n_files = 0;
  for (const auto& e : fs::directory_iterator(dir)) n_files += e.is_regular_file();
  EXPECT_EQ(n_files, 2);
}

TEST(Plot, QuotesInTitlesAreEscaped) {
  PlotSeries s{"it's \"quoted\"\nand split", {{2, 0.5}, {4, 0.25}}};
  const std::string script = precision_plot_script({s}, "out's.png", {});
  EXPECT_NE(script.find("'it''s \"quoted\" and split'"), std::string::npos) << script;
  EXPECT_NE(script.find("set output 'out''s.png'"), std::string::npos);
  const fs::path png = scratch("quotes") / "it's.png";
  plot_precision_vs_ratio({s}, png);
  EXPECT_TRUE(is_png(png));
}

TEST(Plot, LossCurvesPngFromJsonl) {
  const fs::path dir = scratch("loss");
  std::string log;
  for (int step = 0; step <= 400; step += 2) {
    // Training lines every step, a valid-loss line every 50, a non-loss line, and a torn tail.
    log += "{\"step\": " + std::to_string(step) +
           ", \"loss\": " + std::to_string(6.0 * std::exp(-step / 80.0) + 0.05) +
           ", \"lr\": 0.001}\n";
    if (step % 50 == 0) {
      log += "{\"step\": " + std::to_string(step) +
             ", \"valid_loss\": " + std::to_string(6.2 * std::exp(-step / 90.0) + 0.08) + "}\n";
    }
  }
  log += "{\"event\": \"checkpoint\"}\n{\"step\": 402, \"lo";
  write_file_atomic(dir / "train.jsonl", log);
  const fs::path png = dir / "loss.png";
  plot_loss_curves(dir / "train.jsonl", png);
  EXPECT_TRUE(is_png(png));
  EXPECT_GT(fs::file_size(png), 10000u);

  write_file_atomic(dir / "empty.jsonl", "{\"step\": 1}\n");
  const std::string err = error_of([&] { plot_loss_curves(dir / "empty.jsonl", dir / "e.png"); });
  EXPECT_NE(err.find("\"loss\" or \"valid_loss\""), std::string::npos) << err;
  EXPECT_FALSE(fs::exists(dir / "e.png"));
}

TEST(Plot, MissingGnuplotSaysWhatToInstall) {
  const fs::path dir = scratch("missing");
  PlotOptions opt;
  opt.gnuplot = "/nonexistent/gnuplot";
  std::string err =
      error_of([&] { plot_precision_vs_ratio(paper_reference_series(), dir / "a.png", opt); });
  EXPECT_NE(err.find("gnuplot-nox"), std::string::npos) << err;
  opt.gnuplot = "c3-no-such-gnuplot";
  err = error_of([&] { plot_precision_vs_ratio(paper_reference_series(), dir / "a.png", opt); });
  EXPECT_NE(err.find("on PATH"), std::string::npos) << err;
  EXPECT_NE(err.find("gnuplot-nox"), std::string::npos) << err;
  EXPECT_FALSE(fs::exists(dir / "a.png"));
}

TEST(Plot, GnuplotFailureIsReported) {
  // /bin/false stands in for a gnuplot that exits non-zero; the old PNG must survive.
  const fs::path dir = scratch("failing");
  write_file_atomic(dir / "a.png", "old");
  PlotOptions opt;
  opt.gnuplot = "/bin/false";
  const std::string err =
      error_of([&] { plot_precision_vs_ratio(paper_reference_series(), dir / "a.png", opt); });
  EXPECT_NE(err.find("exit 1"), std::string::npos) << err;
  EXPECT_EQ(read_file(dir / "a.png"), "old");
}

}  // namespace
}  // namespace c3::eval
