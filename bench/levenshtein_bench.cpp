// Google Benchmark of the bit-parallel Levenshtein on eval-sized passages, against the plain DP.
#include <benchmark/benchmark.h>

#include <random>

#include "eval/levenshtein.h"

namespace {

// A random mostly-ASCII passage of n code points and a copy with ~2% single-code-point edits:
// what a good reconstruction looks like.
std::pair<std::u32string, std::u32string> passage_pair(size_t n) {
  static const std::u32string alphabet = U"abcdefghijklmnopqrstuvwxyz      ,.ETAOINéü中文";
  std::mt19937_64 rng(n);
  std::u32string a(n, U' ');
  for (auto& c : a) c = alphabet[rng() % alphabet.size()];
  std::u32string b = a;
  for (size_t e = 0; e < n / 50; ++e) {
    const size_t pos = rng() % b.size();
    switch (rng() % 3) {
      case 0:
        b[pos] = alphabet[rng() % alphabet.size()];
        break;
      case 1:
        b.insert(b.begin() + pos, alphabet[rng() % alphabet.size()]);
        break;
      default:
        b.erase(b.begin() + pos);
    }
  }
  return {a, b};
}

void BM_Levenshtein(benchmark::State& state) {
  const auto [a, b] = passage_pair(size_t(state.range(0)));
  for (auto _ : state) benchmark::DoNotOptimize(c3::eval::levenshtein(a, b));
  state.SetItemsProcessed(state.iterations() * int64_t(a.size()));  // code points of the reference
}
BENCHMARK(BM_Levenshtein)->Arg(1 << 10)->Arg(1 << 12)->Arg(1 << 14)->Unit(benchmark::kMicrosecond);

void BM_LevenshteinDp(benchmark::State& state) {
  const auto [a, b] = passage_pair(size_t(state.range(0)));
  for (auto _ : state) benchmark::DoNotOptimize(c3::eval::levenshtein_dp(a, b));
  state.SetItemsProcessed(state.iterations() * int64_t(a.size()));
}
BENCHMARK(BM_LevenshteinDp)->Arg(1 << 10)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
