// c3.evaluate: fidelity against compression ratio over texts held in Python, per passage-length
// bin; the same report as `c3 eval --json`, as a dict.
#include <pybind11/stl.h>

#include "arguments.h"
#include "bindings.h"
#include "cascade.h"
#include "eval/evaluator.h"
#include "eval/report.h"
#include "gil.h"
#include "json_value.h"
#include "util/error.h"

namespace c3::python {

namespace {

// bins: "64-128,128-256" as `c3 eval --bins` takes it, or a list of (lo, hi) pairs.
std::vector<eval::TokenBin> bins_arg(const py::handle& bins) {
  if (py::isinstance<py::str>(bins)) return eval::parse_bins(bins.cast<std::string>());
  std::string spec;
  try {
    for (const py::handle pair : bins) {
      const auto lo_hi = pair.cast<std::pair<int64_t, int64_t>>();
      spec += fmt::format("{}{}-{}", spec.empty() ? "" : ",", lo_hi.first, lo_hi.second);
    }
  } catch (const py::cast_error&) {
    throw py::type_error("bins must be a str like '64-128,128-256' or a list of (lo, hi) pairs");
  }
  return eval::parse_bins(spec);
}

}  // namespace

void bind_evaluate(py::module_& m) {
  m.def(
      "evaluate",
      [](Cascade& model, const py::object& texts, const py::object& bins, int64_t per_bin,
         int64_t batch, int64_t beams, int64_t no_repeat_ngram, bool token_accuracy, uint64_t seed,
         bool progress, bool exact_length) {
        eval::EvalOptions o;
        const std::vector<std::string> docs = texts_arg(texts, "texts");
        o.bins = bins_arg(bins);
        o.per_bin = per_bin;
        o.batch = batch;
        C3_CHECK(beams >= 1 && beams <= 64, "beams={}: expected 1 (greedy) to 64", beams);
        o.num_beams = beams;
        o.no_repeat_ngram = no_repeat_ngram;
        o.exact_length = exact_length;
        o.token_accuracy = token_accuracy;
        o.seed = seed;
        o.progress = progress;
        eval::EvalReport r;
        {
          NoGil no_gil;
          std::lock_guard<std::mutex> lock(model.mutex());
          size_t next = 0;
          r = eval::evaluate(model.loaded(), o, model.loaded().dir, [&](std::string& text) {
            if (next == docs.size()) return false;
            text = docs[next++];
            return true;
          });
        }
        r.data = fmt::format("{} texts from Python", docs.size());
        r.meta["fingerprint"] = model.loaded().fingerprint;
        return json_value(eval::report_to_json(r));
      },
      py::arg("model"), py::arg("texts"),
      py::arg("bins") = "64-128,128-256,256-512,512-1024,1024-1280", py::arg("per_bin") = 32,
      py::arg("batch") = 16, py::arg("beams") = 1, py::arg("no_repeat_ngram") = 20,
      py::arg("token_accuracy") = true, py::arg("seed") = 0, py::arg("progress") = false,
      py::arg("exact_length") = false,
      "Cuts passages of each bin's length from the texts (in order, seeded), round-trips them "
      "through the model and scores them: the report of `c3 eval --json` as a dict (model, "
      "latents, data, bins: [{bin, n, mean_tokens, latents, ratio, char_precision, "
      "char_precision_ci95, exact_match, word_precision, token_accuracy, seconds}], meta). "
      "exact_length: decode each passage's own token count, as `c3 eval --exact-length`.");
}

}  // namespace c3::python
