// Writes gnuplot scripts with inline data and runs gnuplot to render them to PNG atomically.
#include "eval/plot.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <nlohmann/json.hpp>

#include "util/atomic_file.h"
#include "util/error.h"
#include "util/line_reader.h"

extern char** environ;

namespace c3::eval {
namespace fs = std::filesystem;
namespace {

// gnuplot single-quoted strings take no escapes except '' for a quote; newlines would end the
// command, so they become spaces.
std::string quote(std::string_view s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "''";
    } else {
      out += (c == '\n' || c == '\r') ? ' ' : c;
    }
  }
  return out + "'";
}

// pngcairo anti-aliases and is in gnuplot-nox; the libgd `png` terminal is the fallback.
std::string terminal_preamble(const fs::path& output, const PlotOptions& opt) {
  return fmt::format(
      "if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {{\n"
      "  set terminal pngcairo size {0},{1} noenhanced font 'sans,11' linewidth 1.5\n"
      "}} else {{\n"
      "  set terminal png size {0},{1} noenhanced\n"
      "}}\n"
      "set output {2}\n",
      opt.width, opt.height, quote(output.string()));
}

// Each series becomes a datablock `$sN`, so the script is self-contained and re-runnable.
std::string datablocks(const std::vector<PlotSeries>& series, double y_scale) {
  std::string out;
  for (size_t i = 0; i < series.size(); ++i) {
    out += fmt::format("$s{} << EOD\n", i);
    for (const auto& [x, y] : series[i].points) out += fmt::format("{} {}\n", x, y * y_scale);
    out += "EOD\n";
  }
  return out;
}

bool is_executable(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec) && ::access(p.c_str(), X_OK) == 0;
}

// The program's full path: as given when it names a path, else the first hit on PATH.
std::string find_program(const std::string& name) {
  const std::string hint = fmt::format(
      "gnuplot not found (looked for \"{}\"{}): plots need it. HINT: install it, e.g. "
      "`sudo apt-get install gnuplot-nox`, or skip the plot option",
      name, name.find('/') == std::string::npos ? " on PATH" : "");
  if (name.find('/') != std::string::npos) {
    C3_CHECK(is_executable(name), "{}", hint);
    return name;
  }
  const char* path = std::getenv("PATH");
  std::string_view dirs = path ? path : "/usr/local/bin:/usr/bin:/bin";
  while (true) {
    const size_t colon = dirs.find(':');
    const std::string dir(dirs.substr(0, colon));
    const fs::path candidate = fs::path(dir.empty() ? "." : dir) / name;
    if (is_executable(candidate)) return candidate.string();
    if (colon == std::string_view::npos) break;
    dirs.remove_prefix(colon + 1);
  }
  fail("{}", hint);
}

// Temp files beside the target (same filesystem, so the final rename is atomic), removed on exit.
struct TempFiles {
  std::vector<fs::path> paths;
  fs::path make(const fs::path& target, const std::string& suffix) {
    static std::atomic<int> counter{0};
    fs::path p = target.parent_path() / fmt::format(".{}.tmp.{}.{}{}", target.filename().string(),
                                                    ::getpid(), counter++, suffix);
    paths.push_back(p);
    return p;
  }
  ~TempFiles() {
    std::error_code ec;
    for (const auto& p : paths) fs::remove(p, ec);
  }
};

std::string tail(const std::string& s, size_t n) {
  return s.size() <= n ? s : "..." + s.substr(s.size() - n);
}

// Runs `gnuplot script`, with its stdout and stderr captured to a file for the error message.
void run_gnuplot(const std::string& program, const fs::path& script, const fs::path& log) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  std::string arg0 = program, arg1 = script.string();
  char* argv[] = {arg0.data(), arg1.data(), nullptr};
  pid_t pid = 0;
  const int err = posix_spawn(&pid, program.c_str(), &actions, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  C3_CHECK(err == 0, "could not start {}: {}. HINT: install gnuplot-nox", program,
           std::strerror(err));
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    C3_CHECK(errno == EINTR, "waiting for {} failed: {}", program, std::strerror(errno));
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::string msg;
    try {
      msg = read_file(log);
    } catch (const Error&) {
    }
    fail("{} failed on {} ({}): {}", program, script.string(),
         WIFEXITED(status) ? fmt::format("exit {}", WEXITSTATUS(status)) : "killed by a signal",
         tail(msg, 2000));
  }
}

// The common tail of both plots: the script goes to a temp file, gnuplot renders a temp PNG, we
// check that it is a PNG and rename it over the target.
void render_png(const fs::path& png, const PlotOptions& opt,
                const std::function<std::string(const fs::path&)>& script_for) {
  C3_CHECK(!png.filename().empty(), "plot path \"{}\" names no file", png.string());
  const fs::path dir = png.parent_path().empty() ? fs::path(".") : png.parent_path();
  C3_CHECK(fs::is_directory(dir), "cannot write plot {}: folder {} does not exist", png.string(),
           dir.string());
  const std::string program = find_program(opt.gnuplot);
  if (opt.keep_script) {
    fs::path gp = png;
    write_file_atomic(gp.replace_extension(".gp"), script_for(png));
  }
  TempFiles tmp;
  const fs::path tmp_png = tmp.make(png, ".png");
  const fs::path script = tmp.make(png, ".gp");
  const fs::path log = tmp.make(png, ".log");
  write_file_atomic(script, script_for(tmp_png));
  run_gnuplot(program, script, log);

  std::string bytes;
  try {
    bytes = read_file(tmp_png);
  } catch (const Error&) {
    fail("{} exited cleanly but wrote no image for {}", program, png.string());
  }
  static const std::string kSignature = "\x89PNG\r\n\x1a\n";
  C3_CHECK(bytes.compare(0, kSignature.size(), kSignature) == 0,
           "{} wrote {} bytes for {} that are not a PNG", program, bytes.size(), png.string());
  // Durable before visible: fsync the data, rename, then fsync the folder.
  const int fd = ::open(tmp_png.c_str(), O_RDONLY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
  std::error_code ec;
  fs::rename(tmp_png, png, ec);
  C3_CHECK(!ec, "cannot rename {} to {}: {}", tmp_png.string(), png.string(), ec.message());
  fsync_dir(dir);
}

}  // namespace

PlotSeries series_from_report(const EvalReport& r, const std::string& title) {
  PlotSeries s;
  s.title = fmt::format("{} (L = {})", title.empty() ? r.model : title, r.latents);
  for (const BinStats& b : r.bins) {
    if (b.n > 0 && std::isfinite(b.ratio()) && std::isfinite(b.char_precision())) {
      s.points.emplace_back(b.ratio(), b.char_precision());
    }
  }
  return s;
}

std::vector<PlotSeries> paper_reference_series(bool with_deepseek_ocr) {
  // Fox English pages, 600-700 ... 1200-1300 text tokens (Liu & Qiu 2025, via C3-SPEC.md).
  std::vector<PlotSeries> out = {
      {"paper: C3, 32 latents", {{21.0, .997}, {26.4, .988}, {33.0, .988}, {39.4, .933}}, true},
      {"paper: C3, 64 latents", {{10.5, .997}, {13.2, .997}, {16.5, .997}, {19.7, .984}}, true},
  };
  if (with_deepseek_ocr) {
    out.push_back({"paper: DeepSeek-OCR, 64 vision tokens",
                   {{10.5, .965}, {13.2, .838}, {16.5, .793}, {19.7, .591}},
                   true});
  }
  return out;
}

std::string precision_plot_script(const std::vector<PlotSeries>& series, const fs::path& output,
                                  const PlotOptions& opt) {
  std::vector<PlotSeries> sorted = series;
  for (auto& s : sorted) std::sort(s.points.begin(), s.points.end());  // lines run left to right
  std::string out = terminal_preamble(output, opt);
  out += fmt::format(
      "set title {}\n"
      "set xlabel 'compression ratio (text tokens / latents)'\n"
      "set ylabel 'char precision (%)'\n"
      "set yrange [0:102]\n"
      "set ytics 10\n"
      "set xrange [0:*]\n"
      "set grid\n"
      "set key bottom left box opaque\n",
      quote(opt.title.empty() ? "Reconstruction precision vs compression ratio" : opt.title));
  out += datablocks(sorted, 100.0);
  std::vector<std::string> plots;
  for (size_t i = 0; i < sorted.size(); ++i) {
    // Our series: solid lines, filled circles. Reference series: dashed, hollow squares.
    const char* style = sorted[i].reference ? "dt 2 lw 1.5 pt 4 ps 1.2" : "dt 1 lw 2.5 pt 7 ps 1.4";
    plots.push_back(fmt::format("$s{} using 1:2 with linespoints {} title {}", i, style,
                                quote(sorted[i].title)));
  }
  // An empty plot command is a gnuplot error: draw an invisible point so the axes still render.
  if (plots.empty()) plots.push_back("NaN notitle");
  out += "plot " + fmt::format("{}", fmt::join(plots, ", \\\n     ")) + "\n";
  return out;
}

std::string loss_plot_script(const std::vector<PlotSeries>& curves, const fs::path& output,
                             const PlotOptions& opt) {
  std::string out = terminal_preamble(output, opt);
  out += fmt::format(
      "set title {}\n"
      "set xlabel 'step'\n"
      "set ylabel 'loss'\n"
      "set logscale y\n"
      "set grid xtics ytics mytics\n"
      "set key top right box opaque\n",
      quote(opt.title.empty() ? "Training loss" : opt.title));
  out += datablocks(curves, 1.0);
  std::vector<std::string> plots;
  for (size_t i = 0; i < curves.size(); ++i) {
    if (curves[i].points.empty()) continue;  // e.g. no valid loss logged yet
    // Dense curves read better as lines; sparse ones (valid loss every K steps) get markers.
    const char* style = curves[i].points.size() > 50 ? "lines lw 1.5" : "linespoints lw 2 pt 7";
    plots.push_back(
        fmt::format("$s{} using 1:2 with {} title {}", i, style, quote(curves[i].title)));
  }
  out += "plot " + fmt::format("{}", fmt::join(plots, ", \\\n     ")) + "\n";
  return out;
}

void plot_precision_vs_ratio(const std::vector<PlotSeries>& series, const fs::path& png,
                             const PlotOptions& opt) {
  render_png(png, opt,
             [&](const fs::path& out) { return precision_plot_script(series, out, opt); });
}

void plot_loss_curves(const fs::path& jsonl, const fs::path& png, const PlotOptions& opt,
                      const std::string& step_key, const std::vector<std::string>& keys) {
  std::vector<PlotSeries> curves(keys.size());
  for (size_t k = 0; k < keys.size(); ++k) curves[k].title = keys[k];
  LineReader reader(jsonl.string());
  std::string line;
  size_t n_points = 0;
  while (reader.next(line)) {
    const auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object() || !j.contains(step_key) || !j.at(step_key).is_number()) continue;
    const double step = j.at(step_key).get<double>();
    for (size_t k = 0; k < keys.size(); ++k) {
      if (!j.contains(keys[k]) || !j.at(keys[k]).is_number()) continue;
      const double v = j.at(keys[k]).get<double>();
      if (!std::isfinite(v) || v <= 0) continue;  // a log axis cannot show it
      curves[k].points.emplace_back(step, v);
      ++n_points;
    }
  }
  C3_CHECK(n_points > 0,
           "{}: no line has a numeric \"{}\" and a positive \"{}\": nothing to plot. HINT: pass "
           "the JSONL log written by `c3 train`",
           jsonl.string(), step_key, fmt::format("{}", fmt::join(keys, "\" or \"")));
  render_png(png, opt, [&](const fs::path& out) { return loss_plot_script(curves, out, opt); });
}

}  // namespace c3::eval
