// The speed bench: times compress, decompress and prefill on random passages, medians of repeats.
#include "eval/speed_bench.h"

#include <fmt/format.h>
#include <sys/resource.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <random>

#include "model/device_memory.h"
#include "model/kernel_trace.h"
#include "tokenizer/tokenizer_files.h"
#include "model/linear.h"
#include "model/qwen2_model.h"
#include "util/error.h"

namespace c3::eval {
namespace {

void sync(at::Device d) {
  if (d.is_cuda()) torch::cuda::synchronize(d.index() < 0 ? -1 : d.index());
}

// CUDA allocator peaks (allocated, reserved); {-1, -1} on the CPU.
std::pair<int64_t, int64_t> cuda_peaks(at::Device d) {
  if (!d.is_cuda()) return {-1, -1};
  const model::DeviceMemory m = model::device_memory(d);
  return {m.peak_allocated_bytes, m.peak_reserved_bytes};
}

void reset_cuda_peak(at::Device d) { model::reset_device_peak(d); }

int64_t max_rss_bytes() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<int64_t>(ru.ru_maxrss) * 1024;  // Linux reports KiB
}

// Times `fn` after `warmup` untimed calls; returns the per-call seconds of `repeats` calls.
std::vector<double> time_calls(at::Device d, int64_t warmup, int64_t repeats,
                               const std::function<void()>& fn) {
  for (int64_t i = 0; i < warmup; ++i) fn();
  sync(d);
  std::vector<double> secs;
  for (int64_t i = 0; i < repeats; ++i) {
    sync(d);
    auto t0 = std::chrono::steady_clock::now();
    fn();
    sync(d);
    secs.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return secs;
}

// Random ids below the first special token, so no passage contains <img>, <|im_end|>, ...
std::vector<std::vector<int32_t>> random_passages(const tokenizer::BpeTokenizer& tok, int64_t n,
                                                  int64_t len, uint64_t seed) {
  int32_t hi = static_cast<int32_t>(tok.vocab_size());
  for (const auto& a : tok.added_tokens())
    if (tok.is_special(a.id)) hi = std::min(hi, a.id);
  C3_CHECK(hi > 1, "the tokenizer has no ordinary tokens below its special ones");
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int32_t> dist(0, hi - 1);
  std::vector<std::vector<int32_t>> out(n, std::vector<int32_t>(len));
  for (auto& row : out)
    for (auto& id : row) id = dist(rng);
  return out;
}

int64_t numel_of(torch::nn::Module& m) {
  int64_t n = 0;
  for (auto& p : m.parameters()) n += p.numel();
  return n;
}

std::string human_bytes(double b) {
  if (b < 0) return "n/a";
  if (b >= 1e9) return fmt::format("{:.2f} GB", b / 1e9);
  return fmt::format("{:.1f} MB", b / 1e6);
}

}  // namespace

double median(std::vector<double> v) {
  C3_CHECK(!v.empty(), "median of no values (--repeats must be at least 1)");
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

cascade::C3Model random_init_cascade(const model::Qwen2Config& encoder,
                                     const model::Qwen2Config& decoder, int64_t latents,
                                     const std::string& tokenizer, at::ScalarType dtype,
                                     at::Device device) {
  C3_CHECK(latents > 0, "--random-init: L must be positive, got {}", latents);
  auto tok = std::make_shared<tokenizer::BpeTokenizer>(tokenizer::load_tokenizer(tokenizer));
  cascade::C3Config c;
  c.encoder = encoder;
  c.decoder = decoder;
  c.latent_token_len = latents;
  c.contexts_compression_llm_hidden_size = encoder.hidden_size;
  c.im_start_token = tok->token_id("<img>");
  c.im_end_token = tok->token_id("</img>");
  c.im_patch_token = tok->token_id("<imgpad>");
  c.decoder.eos_token_id = {tok->token_id("<|im_end|>")};
  c.encoder.vocab_size = std::max<int64_t>(c.encoder.vocab_size, tok->vocab_size());
  c.decoder.vocab_size = std::max<int64_t>(c.decoder.vocab_size, tok->vocab_size());
  // Construct the parameters directly in the target dtype: half the bytes to fill, no copy.
  const caffe2::TypeMeta saved = c10::get_default_dtype();
  c10::set_default_dtype(c10::scalarTypeToTypeMeta(dtype));
  cascade::C3Model m{nullptr};
  try {
    torch::NoGradGuard ng;
    // Linear weights (nearly all of them) are made on the device, then drawn there.
    model::ParameterPlacement place(device, dtype);
    m = cascade::C3Model(c, tok);
  } catch (...) {
    c10::set_default_dtype(saved);
    throw;
  }
  c10::set_default_dtype(saved);
  m->to(device, dtype);
  model::init_weights(*m, 0.02);
  m->eval();
  m->fuse_projections();
  return m;
}

BenchReport run_speed_bench(cascade::C3Model& m, const SpeedBenchOptions& o,
                            const nlohmann::json& meta) {
  C3_CHECK(o.batch >= 1 && o.passage_tokens >= 1 && o.new_tokens >= 1 && o.repeats >= 1,
           "bench: --batch, --passage-tokens, --new-tokens and --repeats must be >= 1");
  torch::NoGradGuard ng;
  m->eval();
  const at::Device dev = m->device();
  BenchReport r;
  r.meta = meta;
  const cascade::C3Config& cfg = m->config;
  const int64_t L = cfg.latent_token_len;
  const int64_t P = static_cast<int64_t>(m->prompt_ids().size());
  const int64_t elem = m->Q->weight.element_size();

  // Limits at these shapes.
  auto& enc_model = *m->encoder->model;
  const int64_t enc_all = numel_of(*m->encoder), enc_emb = enc_model.embed_tokens->weight.numel();
  const int64_t enc_head = m->encoder->lm_head ? m->encoder->lm_head->weight.numel() : 0;
  const int64_t proj = numel_of(*m->mm_projector);
  r.encoder_flops_per_token = 2.0 * double(enc_all - enc_emb - enc_head + proj);
  const int64_t dec_all = numel_of(*m->decoder);  // includes Q and the projector
  const int64_t dec_cascade = numel_of(*m->Q) + proj;
  // Tied: the embedding matrix is read once, as lm_head. Untied: lm_head is read, the embedding
  // table only at one row per token.
  const int64_t dec_emb_unread = m->decoder->lm_head ? m->decoder->model->embed_tokens->weight.numel() : 0;
  r.decoder_bytes_per_step = double(dec_all - dec_cascade - dec_emb_unread) * elem;

  r.limits = limits_for_device(cuda_device_name(dev));
  r.meta["device"] = dev.str();
  r.meta["device_name"] = r.limits.device_name;
  r.meta["card"] = r.limits.card;
  r.meta["dtype"] = std::string(c10::toString(m->Q->weight.scalar_type()));
  r.meta["latents"] = L;
  r.meta["decoder_prompt_tokens"] = P;
  r.meta["encoder_params"] = enc_all;
  r.meta["decoder_params"] = dec_all - dec_cascade;
  r.meta["cascade_params"] = dec_cascade;
  r.meta["batch"] = o.batch;
  r.meta["passage_tokens"] = o.passage_tokens;
  r.meta["new_tokens"] = o.new_tokens;
  r.meta["repeats"] = o.repeats;
  r.meta["warmup"] = o.warmup;
  r.meta["torch_threads"] = at::get_num_threads();

  auto passages = random_passages(m->tok(), o.batch, o.passage_tokens, o.seed);
  std::vector<int64_t> batches = {1};
  if (o.batch > 1) batches.push_back(o.batch);
  reset_cuda_peak(dev);

  auto add_row = [&](const std::string& step, int64_t b, int64_t ngram,
                     const std::vector<double>& secs, double tokens_per_call) {
    BenchRow row;
    row.step = step;
    row.batch = b;
    row.ngram = ngram;
    row.seconds = median(secs);
    row.min_seconds = *std::min_element(secs.begin(), secs.end());
    row.passages_per_s = b / row.seconds;
    row.tokens_per_s = tokens_per_call / row.seconds;
    row.peak_bytes = cuda_peaks(dev).first;
    r.rows.push_back(row);
    if (o.on_row) o.on_row(row);
  };

  for (int64_t b : batches) {
    std::vector<std::vector<int32_t>> ctx(passages.begin(), passages.begin() + b);
    // Compress.
    at::Tensor latents;
    reset_cuda_peak(dev);
    auto secs = time_calls(dev, o.warmup, o.repeats, [&] { latents = m->compress(ctx); });
    TORCH_CHECK(latents.dim() == 3 && latents.size(0) == b && latents.size(1) == L,
                "bench: compress returned ", latents.sizes());
    add_row("compress", b, 0, secs, double(b * o.passage_tokens));
    // Prefill: the decoder prompt's forward pass and the first token.
    cascade::DecompressOptions pre;
    pre.max_new_tokens = 1;
    pre.no_repeat_ngram_size = 0;
    pre.stop_at_im_end = false;
    reset_cuda_peak(dev);
    secs = time_calls(dev, o.warmup, o.repeats, [&] { m->decompress(latents, pre); });
    add_row("prefill", b, 0, secs, double(b * P));
    // Decompress: exactly new_tokens per row. The n-gram variants are interleaved call by call
    // (after each one's warm-up), so a drift in clocks or host load hits them alike and the
    // ban's cost can be read from pairs of neighbouring calls.
    const size_t V = o.ngram_sizes.size();
    std::vector<cascade::DecompressOptions> variants(V);
    for (size_t v = 0; v < V; ++v) {
      variants[v].max_new_tokens = o.new_tokens;
      variants[v].no_repeat_ngram_size = o.ngram_sizes[v];
      variants[v].stop_at_im_end = false;
    }
    std::vector<std::vector<int64_t>> out;
    auto check_out = [&] {
      TORCH_CHECK(static_cast<int64_t>(out.size()) == b, "bench: decompress returned ", out.size(),
                  " rows for a batch of ", b);
      for (const auto& row : out)
        TORCH_CHECK(static_cast<int64_t>(row.size()) == o.new_tokens, "bench: a row generated ",
                    row.size(), " tokens with the stop disabled; expected ", o.new_tokens);
    };
    reset_cuda_peak(dev);
    for (size_t v = 0; v < V; ++v)
      for (int64_t i = 0; i < o.warmup; ++i) out = m->decompress(latents, variants[v]);
    std::vector<std::vector<double>> dsecs(V);
    for (int64_t rep = 0; rep < o.repeats; ++rep) {
      for (size_t v = 0; v < V; ++v) {
        const auto one = time_calls(dev, 0, 1, [&] { out = m->decompress(latents, variants[v]); });
        check_out();
        dsecs[v].push_back(one[0]);
      }
    }
    for (size_t v = 0; v < V; ++v)
      add_row("decompress", b, o.ngram_sizes[v], dsecs[v], double(b * o.new_tokens));
    if (!o.trace_prefix.empty()) {
      // Untimed: the profiler slows the host side down.
      auto traced = [&](const std::string& name, const std::function<void()>& fn) {
        model::KernelTrace trace;
        sync(dev);
        trace.start();
        fn();
        sync(dev);
        trace.stop(fmt::format("{}-{}.json", o.trace_prefix, name));
      };
      traced(fmt::format("compress-b{}", b), [&] { latents = m->compress(ctx); });
      for (size_t v = 0; v < V; ++v)
        traced(fmt::format("decompress-b{}-ngram{}", b, o.ngram_sizes[v]),
               [&] { out = m->decompress(latents, variants[v]); });
    }
    const auto base = std::find(o.ngram_sizes.begin(), o.ngram_sizes.end(), int64_t{0});
    if (base != o.ngram_sizes.end()) {
      const size_t v0 = static_cast<size_t>(base - o.ngram_sizes.begin());
      for (size_t v = 0; v < V; ++v) {
        if (o.ngram_sizes[v] == 0) continue;
        std::vector<double> ratios;
        for (int64_t rep = 0; rep < o.repeats; ++rep)
          ratios.push_back(dsecs[v][rep] / dsecs[v0][rep] - 1.0);
        r.ban_costs.push_back({b, o.ngram_sizes[v], median(ratios)});
      }
    }
  }
  // Whole-run peaks: resetting per step loses them, so take the largest step peak.
  auto [alloc, reserved] = cuda_peaks(dev);
  for (const auto& row : r.rows) alloc = std::max(alloc, row.peak_bytes);
  r.peak_allocated_bytes = alloc;
  r.peak_reserved_bytes = reserved;
  r.max_rss_bytes = max_rss_bytes();
  return r;
}

nlohmann::json bench_report_json(const BenchReport& r) {
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& x : r.rows)
    rows.push_back({{"step", x.step},
                    {"batch", x.batch},
                    {"no_repeat_ngram_size", x.ngram},
                    {"seconds", x.seconds},
                    {"min_seconds", x.min_seconds},
                    {"passages_per_s", x.passages_per_s},
                    {"tokens_per_s", x.tokens_per_s},
                    {"peak_bytes", x.peak_bytes}});
  nlohmann::json bans = nlohmann::json::array();
  for (const auto& c : r.ban_costs)
    bans.push_back({{"batch", c.batch},
                    {"no_repeat_ngram_size", c.ngram},
                    {"median_cost", c.median_ratio_minus_1}});
  return {{"meta", r.meta},
          {"rows", rows},
          {"ban_costs", bans},
          {"memory",
           {{"peak_allocated_bytes", r.peak_allocated_bytes},
            {"peak_reserved_bytes", r.peak_reserved_bytes},
            {"max_rss_bytes", r.max_rss_bytes}}},
          {"limits",
           {{"reference", r.limits.describe()},
            {"card", r.limits.card},
            {"known", r.limits.known},
            {"flops", r.limits.flops},
            {"bandwidth_bytes_per_s", r.limits.bandwidth},
            {"encoder_flops_per_token", r.encoder_flops_per_token},
            {"decoder_bytes_per_step", r.decoder_bytes_per_step},
            {"compress_tokens_per_s", r.compress_limit_tokens_per_s()},
            {"decode_tokens_per_s_batch1", r.decode_floor_tokens_per_s()}}}};
}

std::string render_bench_table(const BenchReport& r) {
  std::string s;
  s += fmt::format("c3 bench  device {}  dtype {}  L {}  passage {} tok  new {} tok  median of {}\n",
                   r.meta.value("device", "?"), r.meta.value("dtype", "?"),
                   r.meta.value("latents", 0), r.meta.value("passage_tokens", 0),
                   r.meta.value("new_tokens", 0), r.meta.value("repeats", 0));
  s += fmt::format("{:<11} {:>5} {:>6} {:>11} {:>12} {:>13} {:>11} {:>12}\n", "step", "batch",
                   "ngram", "median ms", "passages/s", "tokens/s", "peak mem", "limit");
  for (const auto& x : r.rows) {
    std::string limit = "";
    if (x.step == "compress") limit = fmt::format("{:.0f}", r.compress_limit_tokens_per_s());
    if (x.step == "decompress")
      limit = fmt::format("{:.0f}", x.batch * r.decode_floor_tokens_per_s());
    s += fmt::format("{:<11} {:>5} {:>6} {:>11.2f} {:>12.2f} {:>13.1f} {:>11} {:>12}\n", x.step,
                     x.batch, x.step == "decompress" ? std::to_string(x.ngram) : "-",
                     x.seconds * 1e3, x.passages_per_s, x.tokens_per_s,
                     human_bytes(double(x.peak_bytes)), limit);
  }
  for (const auto& c : r.ban_costs)
    s += fmt::format("n-gram ban {} at batch {}: {:+.1f}% of decode time (median of paired calls)\n",
                     c.ngram, c.batch, 100 * c.median_ratio_minus_1);
  s += fmt::format("memory: CUDA peak allocated {}, peak reserved {}; process max RSS {}\n",
                   human_bytes(double(r.peak_allocated_bytes)),
                   human_bytes(double(r.peak_reserved_bytes)), human_bytes(double(r.max_rss_bytes)));
  s += fmt::format(
      "limits ({}): compress <= {:.0f} tok/s ({:.3g} GFLOP/token, attention left out); decode "
      "floor {:.3g} ms/step = {:.0f} tok/s per row ({:.3g} GB of weights per step; x batch while "
      "weight-bound)\n",
      r.limits.describe(), r.compress_limit_tokens_per_s(), r.encoder_flops_per_token / 1e9,
      1e3 / r.decode_floor_tokens_per_s(), r.decode_floor_tokens_per_s(),
      r.decoder_bytes_per_step / 1e9);
  return s;
}

nlohmann::json dump_greedy_ids(cascade::C3Model& m, const std::string& text,
                               int64_t max_new_tokens, int64_t no_repeat_ngram_size) {
  torch::NoGradGuard ng;
  m->eval();
  std::vector<int32_t> ctx = m->tok().encode(text);
  C3_CHECK(!ctx.empty(), "--dump-ids: the text tokenized to no tokens");
  at::Tensor latents = m->compress({ctx});
  cascade::DecompressOptions d;
  d.max_new_tokens = max_new_tokens;
  d.no_repeat_ngram_size = no_repeat_ngram_size;
  d.stop_at_im_end = true;
  auto out = m->decompress(latents, d);
  return {{"context_ids", std::vector<int64_t>(ctx.begin(), ctx.end())},
          {"encoder_input_ids", m->encoder_input_ids(ctx)},
          {"prompt_ids", m->prompt_ids()},
          {"latent_len", m->latent_len()},
          {"im_end_id", m->im_end_id()},
          {"output_ids", out.at(0)},
          {"output_text", m->tok().decode(std::vector<int32_t>(out[0].begin(), out[0].end()))},
          {"no_repeat_ngram_size", no_repeat_ngram_size},
          {"max_new_tokens", max_new_tokens},
          {"dtype", std::string(c10::toString(m->Q->weight.scalar_type()))},
          {"device", m->device().str()}};
}

}  // namespace c3::eval
